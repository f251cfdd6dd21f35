//! `build-package`: the project's tests, a JUnit report, then the release build.
//!
//! `cargo test` runs with its normal output passed through; the result lines
//! (`test name ... ok|FAILED|ignored`) and failure sections are turned into
//! JUnit XML in `build/junit-reports/` for CI systems (stable Rust's test
//! harness has no JUnit output of its own). Only when every test passed is the
//! project binary built with `--release`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, ToolError};
use crate::project::ProjectDir;

/// Where the JUnit report goes, relative to the project.
pub const JUNIT_DIR: &str = "build/junit-reports";

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Suite (test binary) name.
    pub suite: String,
    /// Test name.
    pub name: String,
    /// `ok`, `FAILED` or `ignored`.
    pub outcome: String,
    /// Captured output of a failed test.
    pub output: String,
}

/// Parses libtest's human output into test cases.
pub fn parse_libtest(output: &str) -> Vec<TestCase> {
    let mut cases: Vec<TestCase> = Vec::new();
    let mut suite = String::from("tests");
    let mut failure: Option<(String, String)> = None;
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed
            .strip_prefix("Running ")
            .or_else(|| trimmed.strip_prefix("Doc-tests "))
        {
            suite = rest.split(" (").next().unwrap_or(rest).to_string();
            failure = None;
            continue;
        }
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            failure = Some((name.to_string(), String::new()));
            continue;
        }
        if let Some((name, text)) = failure.as_mut() {
            if line == "failures:" || line.starts_with("---- ") {
                let name = name.clone();
                let text = std::mem::take(text);
                if let Some(case) = cases
                    .iter_mut()
                    .rev()
                    .find(|c| c.name == name && c.outcome == "FAILED")
                {
                    case.output = text;
                }
                failure = None;
            } else {
                text.push_str(line);
                text.push('\n');
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, outcome)) = rest.rsplit_once(" ... ")
        {
            let outcome = outcome
                .split(|c: char| !c.is_ascii_alphabetic())
                .next()
                .unwrap_or(outcome);
            if matches!(outcome, "ok" | "FAILED" | "ignored") {
                cases.push(TestCase {
                    suite: suite.clone(),
                    name: name.to_string(),
                    outcome: outcome.to_string(),
                    output: String::new(),
                });
            }
        }
    }
    cases
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML for the cases, one `<testsuite>` per test binary.
pub fn junit_xml(cases: &[TestCase]) -> String {
    let mut suites: Vec<&str> = cases.iter().map(|c| c.suite.as_str()).collect();
    suites.dedup();
    let failures = cases.iter().filter(|c| c.outcome == "FAILED").count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{}\" failures=\"{failures}\">\n",
        cases.len()
    );
    for suite in suites {
        let in_suite: Vec<&TestCase> = cases.iter().filter(|c| c.suite == suite).collect();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            xml_escape(suite),
            in_suite.len(),
            in_suite.iter().filter(|c| c.outcome == "FAILED").count(),
            in_suite.iter().filter(|c| c.outcome == "ignored").count()
        ));
        for case in in_suite {
            let attrs = format!(
                "name=\"{}\" classname=\"{}\"",
                xml_escape(&case.name),
                xml_escape(suite)
            );
            match case.outcome.as_str() {
                "FAILED" => xml.push_str(&format!(
                    "    <testcase {attrs}>\n      <failure message=\"test failed\">{}</failure>\n    </testcase>\n",
                    xml_escape(&case.output)
                )),
                "ignored" => xml.push_str(&format!("    <testcase {attrs}>\n      <skipped/>\n    </testcase>\n")),
                _ => xml.push_str(&format!("    <testcase {attrs}/>\n")),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Runs the tests (writing the JUnit report), then builds the release binary.
pub fn build_package(project: &ProjectDir) -> Result<PathBuf> {
    // Cargo reports each test binary ("Running tests/x.rs") on stderr and the
    // harness reports results on stdout: read both, in order, from one pipe.
    let (reader, writer) =
        std::io::pipe().map_err(|e| ToolError::failed(format!("cannot create a pipe: {e}")))?;
    let writer_err = writer
        .try_clone()
        .map_err(|e| ToolError::failed(format!("cannot create a pipe: {e}")))?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["test", "--color", "never"])
        .args(project.cargo_feature_args())
        .current_dir(&project.root)
        .stdout(writer)
        .stderr(writer_err);
    let mut child = cmd
        .spawn()
        .map_err(|e| ToolError::failed(format!("could not run cargo test: {e}")))?;
    drop(cmd); // closes our copies of the pipe's write end
    let mut output = String::new();
    let mut echo = std::io::stderr();
    for line in BufReader::new(reader)
        .lines()
        .map_while(std::result::Result::ok)
    {
        let _ = writeln!(echo, "{line}");
        output.push_str(&line);
        output.push('\n');
    }
    let status = child
        .wait()
        .map_err(|e| ToolError::failed(format!("cargo test: {e}")))?;
    let cases = parse_libtest(&output);
    let report = write_report(&project.root, &cases)?;
    if !status.success() {
        let failed: Vec<&str> = cases
            .iter()
            .filter(|c| c.outcome == "FAILED")
            .map(|c| c.name.as_str())
            .collect();
        return Err(ToolError::failed(format!(
            "tests failed ({}); nothing was packaged. Report: {}",
            if failed.is_empty() {
                "cargo test exited with an error".to_string()
            } else {
                failed.join(", ")
            },
            report.display()
        )));
    }
    project.build_binary(true)
}

fn write_report(root: &Path, cases: &[TestCase]) -> Result<PathBuf> {
    let dir = root.join(JUNIT_DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| ToolError::failed(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("junit.xml");
    std::fs::write(&path, junit_xml(cases))
        .map_err(|e| ToolError::failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "
running 2 tests
test config::tests::a ... ok
test b ... FAILED

failures:

---- b stdout ----
thread 'b' panicked at src/lib.rs:3:5:
left <> right & \"quoted\"

failures:
    b

test result: FAILED. 1 passed; 1 failed; 0 ignored
     Running tests/hello_world.rs (target/debug/deps/hello_world-123)

running 1 test
test hello_world_runs ... ignored, slow
";

    #[test]
    fn parses_results_and_failure_output() {
        let cases = parse_libtest(OUTPUT);
        let summary: Vec<(&str, &str, &str)> = cases
            .iter()
            .map(|c| (c.suite.as_str(), c.name.as_str(), c.outcome.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("tests", "config::tests::a", "ok"),
                ("tests", "b", "FAILED"),
                ("tests/hello_world.rs", "hello_world_runs", "ignored")
            ]
        );
        assert!(
            cases[1].output.contains("left <> right"),
            "{:?}",
            cases[1].output
        );
        let xml = junit_xml(&cases);
        assert!(
            xml.contains("<testsuites tests=\"3\" failures=\"1\">"),
            "{xml}"
        );
        assert!(
            xml.contains("left &lt;&gt; right &amp; &quot;quoted&quot;"),
            "{xml}"
        );
        assert!(xml.contains("<testcase name=\"hello_world_runs\" classname=\"tests/hello_world.rs\">\n      <skipped/>"), "{xml}");
    }
}

//! Every shell command the README and the tutorial show, run in order as a
//! new user would run them, so the documentation cannot drift from what
//! works (issue 16).
//!
//! Each ```` ```sh ```` block of `README.md` and `docs/tutorial.md` is split
//! into commands (continuation lines joined, comments dropped) and each
//! command runs through `bash` and must exit 0. A plain ```` ``` ```` block
//! right after a `sh` block is the output it shows: each of its lines must be
//! in the block's stdout. The test's only liberties, each for a reason:
//! - `cargo install --path crates/bigflow-cli` installs into a temporary root
//!   with `--debug --offline`, so it reuses the suite's build instead of a
//!   release build of the tool;
//! - commands a user runs in the checkout (`cargo run -p …`, `cargo install`)
//!   run in the workspace root, with `BIGFLOW_WAREHOUSE` in a temporary
//!   directory so the checkout stays clean; every other command runs in a
//!   temporary directory (where `start-project` creates the project, and
//!   `cd` moves);
//! - `scripts/test` is not run: it is the suite running this test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// One `sh` block: its commands and, when one follows, the output it shows.
#[derive(Debug, PartialEq)]
struct Block {
    line: usize,
    commands: Vec<String>,
    expected: Option<Vec<String>>,
}

/// The `sh` blocks of a Markdown document.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```sh" {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut commands = Vec::new();
        let mut pending = String::new();
        i += 1;
        while i < lines.len() && lines[i].trim() != "```" {
            let text = strip_comment(lines[i]);
            match text.strip_suffix('\\') {
                Some(head) => {
                    pending.push_str(head);
                    pending.push(' ');
                }
                None => {
                    pending.push_str(text);
                    let command = pending.trim().to_string();
                    if !command.is_empty() {
                        commands.push(command);
                    }
                    pending.clear();
                }
            }
            i += 1;
        }
        i += 1;
        // A plain block right after (blank lines allowed) is the output.
        let mut j = i;
        while j < lines.len() && lines[j].trim().is_empty() {
            j += 1;
        }
        let mut expected = None;
        if j < lines.len() && lines[j].trim() == "```" {
            let mut out = Vec::new();
            j += 1;
            while j < lines.len() && lines[j].trim() != "```" {
                if !lines[j].trim().is_empty() {
                    out.push(lines[j].to_string());
                }
                j += 1;
            }
            expected = Some(out);
            i = j + 1;
        }
        blocks.push(Block {
            line,
            commands,
            expected,
        });
    }
    blocks
}

/// `line` without a shell comment: a `#` at the start or after whitespace,
/// outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_space) = (false, false, true);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return line[..i].trim_end(),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

/// Where the documented commands run, and what they have run so far.
struct Session {
    root: PathBuf,
    tmp: tempfile::TempDir,
    cwd: PathBuf,
    ran: usize,
}

impl Session {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path().join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        Session {
            root: workspace_root().canonicalize().unwrap(),
            cwd,
            tmp,
            ran: 0,
        }
    }

    fn tool_root(&self) -> PathBuf {
        self.tmp.path().join("tool")
    }

    /// Runs `command` (from `doc`, block at `line`); returns its stdout.
    fn run(&mut self, doc: &str, line: usize, command: &str) -> String {
        // `cd DIR` (alone or before `&&`) moves the session.
        let mut command = command;
        if let Some(rest) = command.strip_prefix("cd ") {
            let (dir, tail) = match rest.split_once("&&") {
                Some((dir, tail)) => (dir.trim(), tail.trim()),
                None => (rest.trim(), ""),
            };
            self.cwd = self.cwd.join(dir);
            assert!(
                self.cwd.is_dir(),
                "{doc}:{line}: `cd {dir}`: no such directory"
            );
            if tail.is_empty() {
                return String::new();
            }
            command = tail;
        }
        if command == "scripts/test" {
            return String::new();
        }
        let mut script = command.to_string();
        let in_checkout =
            command.starts_with("cargo run -p ") || command.starts_with("cargo install ");
        if command.starts_with("cargo install --path ") {
            script.push_str(&format!(
                " --debug --offline --quiet --root '{}'",
                self.tool_root().display()
            ));
        }
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(&script)
            .current_dir(if in_checkout { &self.root } else { &self.cwd })
            .env("CARGO_TARGET_DIR", target_dir())
            .env("CARGO_NET_OFFLINE", "true")
            .env(
                "BIGFLOW_WAREHOUSE",
                self.tmp.path().join("checkout-warehouse"),
            )
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env_remove("bf_env")
            .env_remove("BIGFLOW_LOG_FORMAT");
        if !in_checkout {
            cmd.env_remove("BIGFLOW_WAREHOUSE");
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.tool_root().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{doc}:{line}: `{command}` exited with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.ran += 1;
        stdout
    }

    /// Runs every `sh` block of `doc` (relative to the workspace root);
    /// returns each command with its stdout.
    fn run_doc(&mut self, doc: &str) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.root.join(doc)).unwrap();
        let mut outputs = Vec::new();
        for block in sh_blocks(&text) {
            let mut stdout = String::new();
            for command in &block.commands {
                let out = self.run(doc, block.line, command);
                stdout.push_str(&out);
                outputs.push((command.clone(), out));
            }
            for expected in block.expected.iter().flatten() {
                assert!(
                    stdout.lines().any(|l| l.trim_end() == expected.trim_end()),
                    "{doc}:{}: the documented output line {expected:?} is not in what the commands printed:\n{stdout}",
                    block.line
                );
            }
        }
        outputs
    }
}

fn stdout_of<'a>(outputs: &'a [(String, String)], needle: &str) -> &'a str {
    outputs
        .iter()
        .find(|(c, _)| c.contains(needle))
        .map(|(_, o)| o.as_str())
        .unwrap_or_else(|| panic!("no documented command contains {needle:?}"))
}

#[test]
fn blocks_are_parsed_with_continuations_comments_and_outputs() {
    let md = "text\n```sh\ncargo run -- a \\\n  'b # c'   # note\n\n# a comment\nx && y\n```\n\n```\nout 1\n\nout 2\n```\n```rust\nfn f() {}\n```\n```sh\nz\n```\nprose\n```\nnot output\n```\n";
    assert_eq!(
        sh_blocks(md),
        vec![
            Block {
                line: 2,
                commands: vec!["cargo run -- a    'b # c'".into(), "x && y".into()],
                expected: Some(vec!["out 1".into(), "out 2".into()]),
            },
            Block {
                line: 18,
                commands: vec!["z".into()],
                expected: None,
            },
        ]
    );
}

#[test]
fn readme_commands_work_as_written() {
    let mut session = Session::new();
    let outputs = session.run_doc("README.md");
    assert!(
        stdout_of(&outputs, "polish_ports").contains("GDANSK")
            && stdout_of(&outputs, "polish_ports").contains("GDYNIA"),
        "the README says the query prints GDANSK and GDYNIA"
    );
    assert!(stdout_of(&outputs, "bigflow run --workflow hello_world").contains("Hello world on "),);
    assert!(session.ran >= 5, "only {} commands ran", session.ran);
    assert!(Path::new(&session.cwd).ends_with("my_project"));
}

#[test]
fn tutorial_commands_work_as_written() {
    let mut session = Session::new();
    let outputs = session.run_doc("docs/tutorial.md");
    assert!(
        stdout_of(&outputs, "warehouse query").contains("GDANSK"),
        "the tutorial's query reads what internationalports wrote"
    );
    assert!(stdout_of(&outputs, "bigflow pv").starts_with("0.dev1-g"));
    assert!(session.cwd.join(".dags").is_dir() && session.cwd.join(".image").is_dir());
    assert!(session.ran >= 10, "only {} commands ran", session.ran);
}

//! The `bigflow` tool's hostile-input suite: generated `bigflow.toml`
//! documents and argument vectors for the commands that read the project
//! without compiling it (build-dags with a missing binary, deploy-*, logs,
//! project-version, release, start-project), run in a scratch directory.
//! Oracle: exit 0, 1 or 2 within a time limit, no panic, and nothing outside
//! the scratch directory changes: every file the case started with is still
//! there with the same content.
//!
//! Deterministic by default; `BIGFLOW_FUZZ_CASES` sets the number of cases
//! (default 1000) and `PROPTEST_RNG_SEED` the seed. The case count is printed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bigflow_testkit::fuzz;
use proptest::prelude::*;

const CASE_LIMIT: Duration = Duration::from_secs(30);

/// A `bigflow.toml`: a valid one, a near miss, or hostile text.
fn project_file() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("\"demo\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"Demo Project\"".to_string()),
        Just("3".to_string()),
        "\"\\PC{0,10}\"",
    ];
    let repo = prop_oneof![
        Just("europe-west1-docker.pkg.dev/p/r/demo".to_string()),
        Just("{gcp_project_id}/demo".to_string()),
        Just("UPPER/Case".to_string()),
        Just("".to_string()),
        Just("a:b:c/d".to_string()),
        "[a-z0-9./:_-]{0,20}",
    ];
    let deployment = (repo, prop_oneof![Just(""), Just("prod"), Just("{env}{env}")]).prop_map(
        |(repo, project)| {
            format!(
                "[deployment]\nmaster = \"dev\"\n[deployment.dev]\ngcp_project_id = \"{project}\"\ndocker_repository = \"{repo}\"\ndags_bucket = \"b-{{env}}\"\n[deployment.prod]\ngcp_project_id = \"x\"\n"
            )
        },
    );
    let doubling = (1usize..40).prop_map(|levels| {
        let mut doc =
            String::from("[project]\nname = \"demo\"\n[deployment.dev]\nd0 = \"abcdefgh\"\n");
        for n in 1..=levels {
            doc.push_str(&format!("d{n} = \"{{d{0}}}{{d{0}}}\"\n", n - 1));
        }
        doc
    });
    prop_oneof![
        4 => (name, deployment).prop_map(|(n, d)| format!("[project]\nname = {n}\n{d}")),
        1 => doubling,
        1 => Just("[project]\nname = \"demo\"\nunknown = 1\n".to_string()),
        1 => "\\PC{0,80}",
        1 => Just(String::new()),
    ]
}

fn argument() -> impl Strategy<Value = OsString> {
    let words = prop_oneof![
        Just("build-dags"),
        Just("deploy-dags"),
        Just("deploy-image"),
        Just("deploy"),
        Just("logs"),
        Just("project-version"),
        Just("pv"),
        Just("release"),
        Just("start-project"),
        Just("--config"),
        Just("-c"),
        Just("--workflow"),
        Just("-w"),
        Just("--start-time"),
        Just("-t"),
        Just("--dags-dir"),
        Just("--image-dir"),
        Just("--dags-bucket"),
        Just("--docker-repository"),
        Just("--clear-dags-folder"),
        Just("--help"),
        Just("dev"),
        Just("prod"),
        Just("nope"),
        Just("wf"),
        Just("NOW"),
        Just("2020-01-01"),
        Just("9999-12-31 23:59:59"),
        Just("0000-01-01"),
        Just("."),
        Just(".."),
        Just("src"),
        Just("out"),
        Just(""),
        Just("fn"),
        Just("my-project"),
        Just("Upper"),
    ]
    .prop_map(OsString::from);
    prop_oneof![
        6 => words,
        1 => "\\PC{0,10}".prop_map(OsString::from),
        1 => Just(fuzz::not_utf8(b"x\xff")),
    ]
}

/// Every file under `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

fn check(toml: &str, args: &[OsString]) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = scratch.path().join("project");
    std::fs::create_dir_all(root.join("src")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.join("out")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("bigflow.toml"), toml).map_err(|e| e.to_string())?;
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").map_err(|e| e.to_string())?;
    std::fs::write(root.join("out/keep.txt"), "user data\n").map_err(|e| e.to_string())?;
    let before = snapshot(scratch.path());
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("bigflow"));
    cmd.args(args)
        // build-dags must not compile anything: a missing prebuilt binary.
        .args(
            args.first()
                .filter(|a| *a == "build-dags")
                .map(|_| ["--binary", "missing-binary"])
                .unwrap_or_default(),
        )
        .current_dir(&root)
        .env_remove("bf_env")
        .env("GIT_CEILING_DIRECTORIES", scratch.path())
        // No network: anything that would reach a cloud API fails fast.
        .env("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("bf_auth_method", "none");
    let (status, stderr) = fuzz::run_with_limit(&mut cmd, CASE_LIMIT)?;
    fuzz::exited_cleanly(status, &stderr)?;
    let after = snapshot(scratch.path());
    for (path, content) in &before {
        if after.get(path) != Some(content) {
            return Err(format!(
                "{} was removed or changed (stderr: {stderr})",
                path.display()
            ));
        }
    }
    Ok(())
}

#[test]
fn project_files_and_argument_vectors() {
    let mut runner = fuzz::runner(1000, 64);
    let ran = std::cell::Cell::new(0u32);
    let strategy = (project_file(), proptest::collection::vec(argument(), 1..6));
    let result = runner.run(&strategy, |(toml, args)| {
        ran.set(ran.get() + 1);
        check(&toml, &args)
            .map_err(|e| TestCaseError::fail(format!("{e}\nbigflow.toml:\n{toml}\nargs: {args:?}")))
    });
    eprintln!("fuzz bigflow.toml and tool arguments: {} cases", ran.get());
    if let Err(e) = result {
        panic!("{e}");
    }
}

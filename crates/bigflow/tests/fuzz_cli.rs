//! The project binary's hostile-input suite: generated argument vectors (valid
//! commands, near misses, extreme runtimes and numbers, text that is not
//! UTF-8) and `bf_env` values, run against a real project binary (the
//! `broken_project` example with a valid definition). Oracle: the process
//! exits 0, 1 or 2 within a time limit, and never prints a panic.
//!
//! Deterministic by default; `BIGFLOW_FUZZ_CASES` sets the number of cases
//! (default 1000) and `PROPTEST_RNG_SEED` the seed. The case count is printed.

mod common;

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use bigflow_testkit::fuzz;
use common::example_binary;
use proptest::prelude::*;

/// Longest one invocation may take (a debug binary on a loaded machine).
const CASE_LIMIT: Duration = Duration::from_secs(30);

/// One argument: a flag, a value users give, or something hostile.
fn argument() -> impl Strategy<Value = OsString> {
    let flags = prop_oneof![
        Just("run"),
        Just("list"),
        Just("manifest"),
        Just("config"),
        Just("warehouse"),
        Just("query"),
        Just("help"),
        Just("--workflow"),
        Just("-w"),
        Just("--job"),
        Just("-j"),
        Just("--runtime"),
        Just("-r"),
        Just("--config"),
        Just("-c"),
        Just("--parallelism"),
        Just("-p"),
        Just("--retries"),
        Just("--dry-run"),
        Just("--start-time"),
        Just("--log-format"),
        Just("--log-level"),
        Just("--format"),
        Just("--help"),
        Just("--"),
        Just("-"),
    ]
    .prop_map(OsString::from);
    let values = prop_oneof![
        Just("wf"),
        Just("wf.ok"),
        Just("wf."),
        Just(".ok"),
        Just("wf.ok.extra"),
        Just("ok"),
        Just("dev"),
        Just("default"),
        Just("json"),
        Just("text"),
        Just("trace"),
        Just("bigflow=debug,[{"),
        Just("2020-01-01"),
        Just("2020-01-01 10:00:00"),
        Just("0000-01-01"),
        Just("0001-01-01 00:00:00"),
        Just("9999-12-31 23:59:59"),
        Just("2020-02-30"),
        Just("0"),
        Just("65535"),
        Just("65536"),
        Just("-1"),
        Just("18446744073709551616"),
        Just(""),
        Just("SELECT 1"),
        Just("../../etc"),
        Just("é"),
    ]
    .prop_map(OsString::from);
    prop_oneof![
        3 => flags,
        3 => values,
        1 => "\\PC{0,12}".prop_map(OsString::from),
        1 => Just(fuzz::not_utf8(b"wf\xff\xfe")),
        1 => Just(fuzz::not_utf8(b"\xc3")),
        1 => Just(OsString::from("x".repeat(100_000))),
    ]
}

/// An invocation: arguments and the `bf_env` value (`None`: unset).
fn invocation() -> impl Strategy<Value = (Vec<OsString>, Option<OsString>)> {
    let leading = prop_oneof![
        Just(vec!["run".to_string(), "--dry-run".to_string()]),
        Just(vec!["run".to_string()]),
        Just(vec!["list".to_string()]),
        Just(vec!["manifest".to_string()]),
        Just(vec!["config".to_string()]),
        Just(vec![]),
    ];
    let bf_env = prop_oneof![
        4 => Just(None),
        1 => Just(Some(OsString::from("dev"))),
        1 => Just(Some(OsString::from("nope"))),
        1 => Just(Some(OsString::new())),
        1 => Just(Some(fuzz::not_utf8(b"\xff"))),
    ];
    (leading, proptest::collection::vec(argument(), 0..7), bf_env).prop_map(|(lead, rest, env)| {
        let mut args: Vec<OsString> = lead.into_iter().map(OsString::from).collect();
        args.extend(rest);
        (args, env)
    })
}

/// Runs the binary; `Err` says what was wrong.
fn check(
    binary: &std::path::Path,
    args: &[OsString],
    bf_env: Option<&OsString>,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .current_dir(dir.path())
        .env("BIGFLOW_LOG", "warn")
        .env_remove("BIGFLOW_LOG_FORMAT");
    match bf_env {
        Some(v) => cmd.env("bf_env", v),
        None => cmd.env_remove("bf_env"),
    };
    let (status, stderr) = fuzz::run_with_limit(&mut cmd, CASE_LIMIT)?;
    fuzz::exited_cleanly(status, &stderr)
}

#[test]
fn argument_vectors() {
    let binary = example_binary();
    // Each shrinking step starts a process; a few dozen are enough.
    let mut runner = fuzz::runner(1000, 64);
    let ran = std::cell::Cell::new(0u32);
    let result = runner.run(&invocation(), |(args, bf_env)| {
        ran.set(ran.get() + 1);
        check(&binary, &args, bf_env.as_ref())
            .map_err(|e| TestCaseError::fail(format!("{e}\nargs: {args:?}, bf_env: {bf_env:?}")))
    });
    eprintln!("fuzz argument vectors: {} cases", ran.get());
    if let Err(e) = result {
        panic!("{e}");
    }
}

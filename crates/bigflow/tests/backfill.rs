//! `backfill`: every runtime of a workflow's schedule in a range, oldest
//! first; depends_on_past stops at the first failure; a run history under
//! .bigflow/runs resumes; bad ranges are usage errors (exit 2).

mod common;

use std::path::Path;

use assert_cmd::Command;

/// The backfill example project, run in `dir` (where its .bigflow/ goes).
fn project(dir: &Path) -> Command {
    let mut cmd = Command::new(common::named_example_binary("backfill_project"));
    cmd.current_dir(dir)
        .env("BIGFLOW_LOG", "warn")
        .env_remove("bf_env")
        .env_remove("FAIL_AT");
    cmd
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Out {
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Durations and log timestamps vary from run to run.
macro_rules! snapshot {
    ($name:expr, $text:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\d+\.\d\ds\)", "[secs])");
        settings.add_filter(r"(?m)^\d{4}-\d\d-\d\dT[0-9:.]+Z ", "[time] ");
        settings.bind(|| insta::assert_snapshot!($name, $text));
    }};
}

fn backfill(dir: &Path, args: &[&str]) -> Out {
    run(project(dir).arg("backfill").args(args))
}

#[test]
fn hourly_backfill_crosses_a_month_end_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--workflow",
        "hourly",
        "--start-time",
        "2020-01-31 22:00:00",
        "--end-time",
        "2020-02-01 01:30:00",
    ];
    let out = backfill(tmp.path(), &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "load 2020-01-31 22:00:00\nload 2020-01-31 23:00:00\nload 2020-02-01 00:00:00\nload 2020-02-01 01:00:00\n"
    );
    snapshot!("hourly_backfill", out.stderr);
    // The history makes a second call a no-op.
    let again = backfill(tmp.path(), &args);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, "");
    snapshot!("hourly_backfill_again", again.stderr);
    let history = std::fs::read_to_string(tmp.path().join(".bigflow/runs/hourly.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(
        history.starts_with(
            r#"{"runtime":"2020-01-31 22:00:00","config":"default","status":"succeeded","finished_at":"#
        ),
        "{history}"
    );
    // --rerun runs them all again.
    let rerun = backfill(tmp.path(), &[&args[..], &["--rerun"]].concat());
    assert_eq!(rerun.code, Some(0), "{}", rerun.stderr);
    assert_eq!(rerun.stdout, out.stdout);
}

#[test]
fn daily_backfill_over_a_leap_day_and_dry_run() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--workflow",
        "daily",
        "--start-time",
        "2020-02-27 06:00:00",
        "--end-time",
        "2020-03-02",
    ];
    let plan = backfill(tmp.path(), &[&args[..], &["--dry-run"]].concat());
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    snapshot!("daily_plan", plan.stdout);
    assert!(
        !tmp.path().join(".bigflow").exists(),
        "a dry run records nothing"
    );
    let out = backfill(tmp.path(), &args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "extract 2020-02-28 00:00:00\ntransform 2020-02-28 00:00:00\n\
         extract 2020-02-29 00:00:00\ntransform 2020-02-29 00:00:00\n\
         extract 2020-03-01 00:00:00\ntransform 2020-03-01 00:00:00\n\
         extract 2020-03-02 00:00:00\ntransform 2020-03-02 00:00:00\n"
    );
    let replan = backfill(tmp.path(), &[&args[..], &["--dry-run"]].concat());
    snapshot!("daily_plan_after_run", replan.stdout);
}

#[test]
fn depends_on_past_stops_at_the_first_failure_and_a_second_call_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--workflow",
        "daily",
        "--start-time",
        "2020-01-30",
        "--end-time",
        "2020-02-02",
    ];
    let failed = run(project(tmp.path())
        .arg("backfill")
        .args(args)
        .env("FAIL_AT", "2020-01-31 00:00:00"));
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert_eq!(
        failed.stdout,
        "extract 2020-01-30 00:00:00\ntransform 2020-01-30 00:00:00\n"
    );
    snapshot!("daily_stops_at_failure", failed.stderr);
    // Fixed: the same command skips 01-30 and resumes at 01-31.
    let resumed = backfill(tmp.path(), &args);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(
        resumed.stdout,
        "extract 2020-01-31 00:00:00\ntransform 2020-01-31 00:00:00\n\
         extract 2020-02-01 00:00:00\ntransform 2020-02-01 00:00:00\n\
         extract 2020-02-02 00:00:00\ntransform 2020-02-02 00:00:00\n"
    );
    snapshot!("daily_resumed", resumed.stderr);
}

#[test]
fn without_depends_on_past_a_failure_does_not_stop_later_runtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--workflow",
        "independent",
        "--start-time",
        "2020-01-30",
        "--end-time",
        "2020-02-01",
    ];
    let out = run(project(tmp.path())
        .arg("backfill")
        .args(args)
        .env("FAIL_AT", "2020-01-31 00:00:00"));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "report 2020-01-30 00:00:00\nreport 2020-02-01 00:00:00\n"
    );
    snapshot!("independent_continues", out.stderr);
    let retried = backfill(tmp.path(), &args);
    assert_eq!(retried.code, Some(0), "{}", retried.stderr);
    assert_eq!(retried.stdout, "report 2020-01-31 00:00:00\n");
}

#[test]
fn bad_ranges_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut errors = String::new();
    for (start, end) in [
        ("2020-02-01", "2020-01-31"),
        ("2020-13-01", "2020-12-31"),
        ("2020-01-01", "tomorrow"),
        ("2020-01-01 25:00:00", "2020-01-02"),
        ("2020-01-01", "2021-12-31 00:00:00"),
    ] {
        let out = backfill(
            tmp.path(),
            &[
                "--workflow",
                "hourly",
                "--start-time",
                start,
                "--end-time",
                end,
            ],
        );
        assert_eq!(out.code, Some(2), "{start} {end}: {}", out.stderr);
        assert_eq!(out.stdout, "");
        errors.push_str(&out.stderr);
    }
    let unknown = backfill(
        tmp.path(),
        &[
            "--workflow",
            "nope",
            "--start-time",
            "2020-01-01",
            "--end-time",
            "2020-01-02",
        ],
    );
    assert_eq!(unknown.code, Some(2));
    errors.push_str(&unknown.stderr);
    let missing = backfill(
        tmp.path(),
        &["--workflow", "daily", "--start-time", "2020-01-01"],
    );
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.contains("--end-time"), "{}", missing.stderr);
    insta::assert_snapshot!("bad_ranges", errors);
    assert!(!tmp.path().join(".bigflow").exists());
}

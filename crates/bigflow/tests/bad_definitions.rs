//! Every definition or configuration mistake: one clear message, exit code 2,
//! no panic. Drives the `broken_project` example binary (built by `cargo test`).

mod common;

use std::process::Command;

use common::example_binary;

fn run(broken: &str) -> (i32, String) {
    let out = Command::new(example_binary())
        .args(["run", "--workflow", "wf", "--runtime", "2020-01-01"])
        .env("BROKEN", broken)
        .env("BIGFLOW_LOG", "warn")
        .env_remove("bf_env")
        .output()
        .expect("the broken_project example is built by cargo test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_mistake_is_named() {
    let cases = [
        (
            "cycle",
            2,
            "error: invalid workflow definition: workflow 'cyclic' has a cycle: a -> b -> c -> a\n",
        ),
        (
            "duplicate_job",
            2,
            "error: invalid workflow definition: workflow 'dup' has two different jobs with id 'a'; job ids must be unique within a workflow\n",
        ),
        (
            "duplicate_workflow",
            2,
            "error: two workflows have the id 'same'; workflow ids must be unique within a project\n",
        ),
        (
            "bad_id",
            2,
            "error: invalid workflow definition: job id 'load-data' is not an identifier; use letters, digits and '_' (not starting with a digit)\n",
        ),
        (
            "unknown_dependency",
            2,
            "error: invalid workflow definition: workflow 'wf': dependency ok -> missing names unknown job 'missing'; add it with .job(...) first\n",
        ),
        (
            "bad_cron",
            2,
            "error: invalid workflow definition: workflow 'wf': invalid schedule_interval '0 25 * * *': ",
        ),
        (
            "config_cycle",
            2,
            "error: cyclic reference in config 'dev': a -> b -> a\n",
        ),
        (
            "config_missing_key",
            2,
            "error: property 'bucket' of config 'dev': unknown placeholder '{project}'; config 'dev' defines: bucket, env\n",
        ),
    ];
    for (broken, code, message) in cases {
        let (got_code, err) = run(broken);
        assert_eq!(got_code, code, "{broken}: {err}");
        assert!(
            err.starts_with(message),
            "{broken}: expected {message:?}, got {err:?}"
        );
        assert!(!err.contains("panicked"), "{broken}: {err}");
    }
}

#[test]
fn a_failing_job_exits_1_with_its_error() {
    let (code, err) = run("failing_job");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("job fails attempt 1 failed: no input for this runtime"),
        "{err}"
    );
    assert!(
        err.ends_with("error: workflow wf at 2020-01-01 00:00:00: fails failed\n"),
        "{err}"
    );
}

#[test]
fn a_valid_project_runs() {
    let (code, err) = run("none");
    assert_eq!(code, 0, "{err}");
}

#[cfg(unix)]
#[test]
fn text_that_is_not_utf8_is_a_usage_error() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let garbled = OsStr::from_bytes(b"wf\xff\xfe");
    let out = Command::new(example_binary())
        .arg("run")
        .arg("--workflow")
        .arg(garbled)
        .env("BIGFLOW_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: argument 3 ('wf\u{fffd}\u{fffd}') is not valid UTF-8; names, runtimes and configs are text\n"
    );
    let out = Command::new(example_binary())
        .args(["run", "--workflow", "wf", "--dry-run"])
        .env("bf_env", garbled)
        .env("BIGFLOW_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: the environment variable bf_env ('wf\u{fffd}\u{fffd}') is not valid UTF-8; set it to an environment's name or unset it\n"
    );
}

#[test]
fn warehouse_without_the_bigquery_feature_names_the_feature() {
    // The example is built without features: no embedded warehouse.
    let out = Command::new(example_binary())
        .args(["warehouse", "query", "SELECT 1"])
        .env("BIGFLOW_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "error: this project binary was built without the `bigquery` feature, which `warehouse` needs"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The example project's binary, driven as a user would: output, exit codes,
//! ordering, parallelism, timeouts, retries and every bad input.

use assert_cmd::Command;
use chrono::NaiveTime;

fn bin() -> Command {
    let mut cmd = Command::cargo_bin("bigflow-examples").unwrap();
    cmd.env_remove("bf_env")
        .env_remove("BIGFLOW_LOG_FORMAT")
        .env("BIGFLOW_LOG", "warn");
    cmd
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hello_world_prints_runtime_then_goodbye() {
    let (code, out, err) = run(&[
        "run",
        "--workflow",
        "hello_world",
        "--runtime",
        "2020-08-01 10:00:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Hello world on 2020-08-01 10:00:00!\nGoodbye!\n");
    assert!(
        err.contains("hello_world  succeeded         1"),
        "summary table on stderr: {err}"
    );
}

#[test]
fn one_job_and_date_only_runtime() {
    let (code, out, _) = run(&[
        "run",
        "--job",
        "hello_world.hello_world",
        "--runtime",
        "2020-08-01",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Hello world on 2020-08-01 00:00:00!\n")
    );
}

/// (job, started, finished) from the graph example's output.
fn timeline(out: &str) -> Vec<(String, NaiveTime, NaiveTime)> {
    let mut starts = Vec::new();
    let mut rows = Vec::new();
    for line in out.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let time = NaiveTime::parse_from_str(parts[3], "%H:%M:%S%.3f").unwrap();
        match parts[1] {
            "started" => starts.push((parts[0].to_string(), time)),
            "finished" => {
                let (_, start) = starts.iter().find(|(j, _)| j == parts[0]).unwrap().clone();
                rows.push((parts[0].to_string(), start, time));
            }
            other => panic!("unexpected line {other}"),
        }
    }
    rows
}

#[test]
fn graph_runs_in_bigflow_order_sequentially() {
    let (code, out, err) = run(&[
        "run",
        "--workflow",
        "graph_workflow",
        "--runtime",
        "2020-01-01",
    ]);
    assert_eq!(code, 0, "{err}");
    let t = timeline(&out);
    let order: Vec<&str> = t.iter().map(|(j, ..)| j.as_str()).collect();
    assert_eq!(order, ["job1", "job2", "job3", "job4"]);
    for pair in t.windows(2) {
        assert!(
            pair[1].1 >= pair[0].2,
            "{} starts after {} finished: {out}",
            pair[1].0,
            pair[0].0
        );
    }
}

#[test]
fn graph_overlaps_independent_jobs_with_parallelism_2() {
    let (code, out, err) = run(&[
        "run",
        "--workflow",
        "graph_workflow",
        "--parallelism",
        "2",
        "--runtime",
        "2020-01-01",
    ]);
    assert_eq!(code, 0, "{err}");
    let t = timeline(&out);
    let get = |id: &str| t.iter().find(|(j, ..)| j == id).unwrap().clone();
    let (job1, job2, job3, job4) = (get("job1"), get("job2"), get("job3"), get("job4"));
    assert!(
        job2.1 >= job1.2 && job3.1 >= job1.2,
        "job2 and job3 wait for job1: {out}"
    );
    assert!(
        job3.1 < job2.2 && job2.1 < job3.2,
        "job2 and job3 overlap: {out}"
    );
    assert!(
        job4.1 >= job2.2 && job4.1 >= job3.2,
        "job4 waits for both: {out}"
    );
}

#[test]
fn timeout_stops_the_job_and_failure_exits_1() {
    let (code, out, err) = run(&[
        "run",
        "--workflow",
        "reliability_workflow",
        "--runtime",
        "2020-01-01",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("job flaky attempt 1 failed: transient failure on attempt 1"),
        "{err}"
    );
    assert!(err.contains("job too_slow attempt 1 failed: execution timeout of 1s exceeded; the attempt was stopped"), "{err}");
    assert!(err.contains("too_slow  timed out         1"), "{err}");
    assert!(err.contains("error: workflow reliability_workflow at 2020-01-01 00:00:00: flaky failed, too_slow timed out"), "{err}");
    // The shell and its child were killed, not left running.
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 314"])
        .output()
        .unwrap();
    assert!(
        !left.status.success(),
        "processes left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn retries_when_asked() {
    let (code, out, err) = run(&[
        "run",
        "--job",
        "reliability_workflow.flaky",
        "--retries",
        "--runtime",
        "2020-01-01",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "flaky succeeded on attempt 2\n");
    assert!(err.contains("flaky  succeeded         2"), "{err}");
}

#[test]
fn config_envs_from_flag_and_variable() {
    let (code, out, _) = run(&["run", "-w", "config_workflow", "-r", "2020-01-01"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "env=dev project=my-project-dev bucket=my-project-dev-bucket max_workers=2\n"
        )
    );
    let (code, out, _) = run(&[
        "run",
        "-w",
        "config_workflow",
        "-r",
        "2020-01-01",
        "--config",
        "prod",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "env=prod project=my-project-prod bucket=my-project-prod-bucket max_workers=50\n"
        )
    );
    let out = bin()
        .args(["run", "-w", "config_workflow", "-r", "2020-01-01"])
        .env("bf_env", "prod")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("env=prod "));
}

#[test]
fn external_program_gets_runtime_and_env() {
    let (code, out, err) = run(&[
        "run",
        "-w",
        "external_workflow",
        "-r",
        "2020-01-02 03:04:05",
        "-c",
        "dev",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "external program: runtime=2020-01-02 03:04:05 env=dev\n"
    );
}

#[test]
fn resources_are_found_from_any_directory() {
    let out = bin()
        .args(["run", "-w", "resources_workflow", "-r", "2020-01-01"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("This file ships in resources/"));
}

#[test]
fn json_logs_are_cloud_logging_entries() {
    let out = bin()
        .args([
            "--log-format",
            "json",
            "--log-level",
            "info",
            "run",
            "-w",
            "hello_world",
            "-r",
            "2020-08-01",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let entry: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(entry["severity"], "INFO");
    assert_eq!(entry["message"], "running job hello_world (attempt 1/1)");
    let labels = &entry["logging.googleapis.com/labels"];
    assert_eq!(labels["workflow_id"], "hello_world");
    assert_eq!(labels["job_id"], "hello_world");
    assert_eq!(labels["runtime"], "2020-08-01 00:00:00");
}

// The snapshots hold the default feature set's workflows (`bigflow build`
// with BIGFLOW_NO_DEFAULT_FEATURES=1 runs these tests without them).
#[cfg(feature = "spark-connect")]
#[test]
fn list_manifest_and_dry_run() {
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("list", out);
    let (code, out, _) = run(&["manifest", "--start-time", "2020-08-01 10:00:00"]);
    assert_eq!(code, 0);
    let mut manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The hourly factory depends on the machine's zone; checked in unit tests.
    manifest["workflows"][3]["start_date"] = "<zone dependent>".into();
    insta::assert_json_snapshot!("manifest", manifest);
    let (code, out, _) = run(&[
        "run",
        "-w",
        "graph_workflow",
        "-r",
        "2020-01-01",
        "-p",
        "2",
        "--dry-run",
    ]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("dry_run", out);
}

#[test]
fn bad_input_gets_one_clear_message_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--workflow", "nope"],
            "error: unknown workflow 'nope'; known workflows: hello_world, graph_workflow",
        ),
        (
            &["run", "--job", "hello_world.nope"],
            "error: workflow 'hello_world' has no job 'nope'; its jobs: hello_world, say_goodbye",
        ),
        (
            &["run", "--job", "hello_world"],
            "error: --job 'hello_world' must be WORKFLOW_ID.JOB_ID",
        ),
        (
            &["run", "-w", "hello_world", "--runtime", "2020-13-01"],
            "error: invalid runtime '2020-13-01': no such date",
        ),
        (
            &["run", "-w", "hello_world", "--runtime", "yesterday"],
            "error: invalid runtime 'yesterday': wrong format",
        ),
        (
            &["run", "-w", "config_workflow", "--config", "stage"],
            "error: unknown config environment 'stage'; known environments: dev, prod",
        ),
        (
            &["run"],
            "error: the following required arguments were not provided",
        ),
        (
            &["run", "-w", "hello_world", "--parallelism", "0"],
            "error: invalid value '0' for '--parallelism",
        ),
        (
            &["manifest", "--start-time", "noon"],
            "error: invalid runtime 'noon'",
        ),
        (
            &["frobnicate"],
            "error: unrecognized subcommand 'frobnicate'",
        ),
    ];
    for (args, expected) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.starts_with(expected),
            "{args:?}: expected {expected:?}, got {err:?}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
        assert_eq!(out, "", "{args:?}");
    }
}

fn pyspark_venv() -> Option<std::path::PathBuf> {
    let cache = std::env::var_os("BIGFLOW_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/bigflow")
        });
    let venv = cache.join("peers/pyspark-4.0.1");
    if venv.join("bin/python").is_file() {
        return Some(venv);
    }
    let message = format!(
        "PEER MISSING: PySpark venv {}; run scripts/test",
        venv.display()
    );
    assert!(
        std::env::var("BIGFLOW_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{message}"
    );
    eprintln!("\n!!! SKIPPED: {message}\n");
    None
}

/// Runs a pi workflow on the real local Spark; returns the estimate and the logs.
fn estimate_pi(workflow: &str) -> Option<(f64, String)> {
    let venv = pyspark_venv()?;
    let out = bin()
        .args([
            "--log-level",
            "info",
            "run",
            "--workflow",
            workflow,
            "--runtime",
            "2020-01-01",
        ])
        .env("BIGFLOW_PYSPARK_VENV", &venv)
        .env_remove("SPARK_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let estimate: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Pi is roughly "))
        .unwrap_or_else(|| panic!("no estimate in {stdout}"))
        .parse()
        .unwrap();
    Some((estimate, stderr))
}

#[test]
fn pi_estimator_pyspark_runs_on_a_real_local_spark() {
    let Some((estimate, _)) = estimate_pi("pi_estimator_pyspark") else {
        return;
    };
    assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{estimate}");
}

#[cfg(feature = "spark-connect")]
#[test]
fn pi_estimator_runs_over_spark_connect_on_a_server_it_starts_and_stops() {
    let Some((estimate, logs)) = estimate_pi("pi_estimator") else {
        return;
    };
    assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{estimate}");
    let port = logs
        .split("spark.connect.grpc.binding.port=")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no server start in the logs: {logs}"))
        .to_string();
    assert!(
        logs.contains(&format!(
            "local Spark Connect server at sc://127.0.0.1:{port} stopped"
        )),
        "{logs}"
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("binding.port={port} ")])
        .output()
        .unwrap();
    assert!(
        !left.status.success(),
        "the server is still running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn pyspark_missing_is_a_clear_failure() {
    let (code, _, err) = {
        let out = bin()
            .args([
                "run",
                "--workflow",
                "pi_estimator_pyspark",
                "--runtime",
                "2020-01-01",
            ])
            .env("BIGFLOW_PYSPARK_VENV", "/nonexistent/venv")
            .env_remove("SPARK_HOME")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("PySpark not found (no SPARK_HOME, no virtualenv at /nonexistent/venv); install it with: python3 -m venv"), "{err}");
}

#[cfg(feature = "spark-connect")]
#[test]
fn spark_dataframe_job_aggregates_parquet_on_a_real_local_spark() {
    let Some(venv) = pyspark_venv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "run",
            "--workflow",
            "port_tonnage",
            "--runtime",
            "2020-01-01",
        ])
        .env("BIGFLOW_PYSPARK_VENV", &venv)
        .env_remove("SPARK_HOME")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sums of resources/port_calls.csv for 2020-01-01, largest first.
    assert!(
        stdout.contains(
            "country tonnage calls (2020-01-01)\n\
             NETHERLANDS 465000 3\n\
             GERMANY 423000 3\n\
             POLAND 238000 5\n\
             BELGIUM 175000 1\n\
             LITHUANIA 26000 1\n"
        ),
        "{stdout}"
    );
    let written = dir
        .path()
        .join(".bigflow/spark/country_tonnage/date=2020-01-01");
    let parquet = std::fs::read_dir(&written)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".parquet"));
    assert!(parquet, "no Parquet output in {}", written.display());
    assert!(written.join("_SUCCESS").is_file());
}

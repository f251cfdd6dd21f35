//! `build-dags` proven on real Airflow 2 and 3: every generated DAG of the
//! example project imports with `DagBag`, matches the workflow, and its
//! rendered task commands run the right job for the right runtime and config.
//! Airflow comes from the venvs `scripts/test` installs; without them the
//! test skips loudly (and fails under `BIGFLOW_REQUIRE_PEERS=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use common::*;

/// The Python of an Airflow venv, or None (after a loud skip) when it is not installed.
fn airflow_python(name: &str) -> Option<PathBuf> {
    let python = peers_dir().join(name).join("bin/python");
    let missing: Vec<String> = [python.display().to_string()]
        .into_iter()
        .filter(|_| !python.is_file())
        .collect();
    peers_present(&missing).then_some(python)
}

struct Built {
    _dir: tempfile::TempDir,
    dags: PathBuf,
    manifest: PathBuf,
    binary: PathBuf,
}

fn build_example_dags() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let dags = dir.path().join("dags");
    let example = workspace_root().join("examples/bigflow-examples");
    let out = Command::cargo_bin("bigflow")
        .unwrap()
        .args([
            "build-dags",
            "--start-time",
            "2020-08-01 10:00:00",
            "--dags-dir",
        ])
        .arg(&dags)
        .current_dir(&example)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-dags: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binary = target_dir().join("debug/bigflow-examples");
    let manifest = dir.path().join("manifest.json");
    let m = Std::new(&binary)
        .args(["manifest", "--start-time", "2020-08-01 10:00:00"])
        .output()
        .unwrap();
    assert!(m.status.success());
    std::fs::write(&manifest, &m.stdout).unwrap();
    Built {
        _dir: dir,
        dags,
        manifest,
        binary,
    }
}

/// Workflows of bigflow-examples whose jobs need an engine started.
const HEAVY_WORKFLOWS: &[&str] = &["pi_estimator", "pi_estimator_pyspark", "port_tonnage"];

fn check_on(venv: &str) {
    let Some(python) = airflow_python(venv) else {
        return;
    };
    let built = build_example_dags();
    let home = tempfile::tempdir().unwrap();
    let out = Std::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/airflow_check.py"))
        .arg(&built.dags)
        .arg(&built.manifest)
        .arg(&built.binary)
        .arg("2020-08-01T10:00:00")
        .arg(home.path().join("report.json"))
        // Jobs that start a Spark (20 s each) are only dry-run; the examples'
        // own tests run them for real.
        .arg(HEAVY_WORKFLOWS.join(","))
        .env("AIRFLOW_HOME", home.path())
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
        .env("AIRFLOW_VAR_ENV", "dev")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Airflow check on {venv} failed:\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("report.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&built.manifest).unwrap()).unwrap();
    assert_eq!(
        report["dags"],
        manifest["workflows"].as_array().unwrap().len(),
        "{report}"
    );
    let run = |workflow: &str, task_id: &str| {
        report["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workflow"] == workflow && r["task_id"] == task_id)
            .unwrap_or_else(|| panic!("no run of {workflow}.{task_id} in {report}"))
            .clone()
    };
    let hello = run("hello_world", "hello-world");
    assert_eq!(
        hello["argv"],
        serde_json::json!([
            "run",
            "--job",
            "hello_world.hello_world",
            "--runtime",
            "2020-08-01 10:00:00",
            "--config",
            "dev"
        ])
    );
    assert_eq!(
        (hello["code"].as_i64(), hello["stdout"].as_str()),
        (Some(0), Some("Hello world on 2020-08-01 10:00:00!\n"))
    );
    // With the image's logging, the task's log is Cloud Logging entries
    // labelled with what `bigflow logs` and Cloud Logging filter on.
    let entries: Vec<serde_json::Value> = hello["stderr"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done = entries
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("succeeded"))
        })
        .unwrap_or_else(|| panic!("no entry for the job's end: {entries:?}"));
    let labels = &done["logging.googleapis.com/labels"];
    assert_eq!(
        (
            &labels["workflow_id"],
            &labels["job_id"],
            &labels["runtime"]
        ),
        (
            &serde_json::json!("hello_world"),
            &serde_json::json!("hello_world"),
            &serde_json::json!("2020-08-01 10:00:00")
        ),
        "{done}"
    );
    assert_eq!(done["severity"], "INFO");
    let config = run("config_workflow", "print-config");
    assert_eq!(
        config["stdout"],
        "env=dev project=my-project-dev bucket=my-project-dev-bucket max_workers=2\n"
    );
    let external = run("external_workflow", "shell-job");
    assert_eq!(
        external["stdout"],
        "external program: runtime=2020-08-01 10:00:00 env=dev\n"
    );
    // Every task ran as its job would: only reliability_workflow's jobs and
    // the latency sensor (no fresh partition in an empty warehouse) fail, by design.
    for r in report["runs"].as_array().unwrap() {
        let expected = if r["workflow"] == "reliability_workflow"
            || r["workflow"] == "data_latency_monitoring"
        {
            1
        } else {
            0
        };
        assert_eq!(r["code"].as_i64(), Some(expected), "{r}");
    }
}

#[test]
fn dags_run_on_airflow_3() {
    check_on("airflow-3.1");
}

#[test]
fn dags_run_on_airflow_2() {
    check_on("airflow-2.10");
}

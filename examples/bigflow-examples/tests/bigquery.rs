//! The BigQuery examples through the project binary, offline on the embedded
//! warehouse: `run --workflow internationalports`, then `warehouse query`;
//! and the same workflow on the BigQuery emulator with `--config emulator`.
#![cfg(feature = "bigquery")]

use std::path::Path;

use assert_cmd::Command;

fn bin(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("bigflow-examples").unwrap();
    cmd.current_dir(dir)
        .env_remove("bf_env")
        .env_remove("BIGFLOW_WAREHOUSE")
        .env_remove("BIGFLOW_LOG_FORMAT")
        .env("BIGFLOW_LOG", "warn");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = bin(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sql` run directly on the emulator (billing `project`), as a text table.
fn on_emulator(emulator: &bigflow_testkit::BigQueryEmulator, project: &str, sql: &str) -> String {
    use bigflow::bigquery::{AuthMethod, Backend, BigQueryBackend, QueryContext};
    let backend =
        BigQueryBackend::connect(project, Some(&emulator.endpoint), None, &AuthMethod::None)
            .unwrap();
    let result = backend.execute(sql, &QueryContext::default()).unwrap();
    bigflow::bigquery::format::Table(&result).to_string()
}

const POLISH: &str =
    "SELECT port_name FROM `my-project-dev.internationalports.polish_ports` ORDER BY port_name";

#[test]
fn internationalports_then_warehouse_query_returns_gdansk_and_gdynia() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        dir.path(),
        &[
            "run",
            "--workflow",
            "internationalports",
            "--runtime",
            "2020-08-01",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("select_polish_ports"), "summary: {err}");
    assert!(
        dir.path()
            .join(
                ".bigflow/warehouse/my-project-dev/internationalports/polish_ports/_manifest.json"
            )
            .is_file()
    );

    let (code, out, err) = run(
        dir.path(),
        &["warehouse", "query", POLISH, "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"port_name": "GDANSK"}, {"port_name": "GDYNIA"}])
    );

    let (code, out, _) = run(dir.path(), &["warehouse", "query", POLISH]);
    assert_eq!(code, 0);
    assert!(
        out.contains("| port_name |")
            && out.contains("| GDANSK    |")
            && out.contains("| GDYNIA    |"),
        "{out}"
    );

    let (code, out, _) = run(
        dir.path(),
        &["warehouse", "query", POLISH, "--format", "csv"],
    );
    assert_eq!(code, 0);
    assert_eq!(out, "port_name\nGDANSK\nGDYNIA\n");

    // Bare names with --dataset.
    let (code, out, err) = run(
        dir.path(),
        &[
            "warehouse",
            "query",
            "SELECT COUNT(*) AS n FROM ports",
            "--dataset",
            "my-project-dev.internationalports",
            "-f",
            "csv",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "n\n4\n");

    // A rerun leaves the same tables (BigFlow's INSERT doubled the ports).
    let (code, _, err) = run(
        dir.path(),
        &[
            "run",
            "--workflow",
            "internationalports",
            "--runtime",
            "2020-08-02",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        dir.path(),
        &[
            "warehouse",
            "query",
            "SELECT (SELECT COUNT(*) FROM ports) AS ports, (SELECT COUNT(*) FROM polish_ports) AS polish",
            "--dataset",
            "my-project-dev.internationalports",
            "-f",
            "csv",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ports,polish\n4,2\n");

    // Bad SQL: one clear error, exit code 2.
    let (code, out, err) = run(
        dir.path(),
        &[
            "warehouse",
            "query",
            "SELECT port_name FROM `my-project-dev.internationalports.nope`",
        ],
    );
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains(
            "table `my-project-dev.internationalports.nope` does not exist at line 1, column 23"
        ),
        "{err}"
    );
}

#[test]
fn internationalports_runs_on_the_emulator_by_switching_the_config() {
    let Some(emulator) = bigflow_testkit::BigQueryEmulator::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .env("BIGQUERY_EMULATOR_HOST", &emulator.endpoint)
        .args(["run", "--workflow", "internationalports"])
        .args(["--runtime", "2020-08-01", "--config", "emulator"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The jobs ran on the emulator, not on the local warehouse.
    assert!(!dir.path().join(".bigflow/warehouse").exists());
    let text = on_emulator(
        &emulator,
        "my-project-dev",
        "SELECT port_name FROM `my-project-dev.internationalports.ports` WHERE country = 'POL' ORDER BY 1",
    );
    assert!(text.contains("GDANSK") && text.contains("GDYNIA"), "{text}");
    // polish_ports stays empty there: bqemulator 1.4 does not write a query
    // job's result into its destination table (see docs/bigquery.md).
}

#[test]
fn prod_runs_on_bigquery_never_on_local_files() {
    // The engines are visible before anything runs.
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(dir.path(), &["config", "-w", "internationalports"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "create_ports_table  dev: local warehouse, prod: bigquery, emulator: bigquery"
        ),
        "{out}"
    );
    let Some(emulator) = bigflow_testkit::BigQueryEmulator::start() else {
        return;
    };
    // BIGQUERY_EMULATOR_HOST stands in for Google's endpoint, as it does for
    // Google's own client libraries; prod names no endpoint of its own.
    let out = bin(dir.path())
        .env("BIGQUERY_EMULATOR_HOST", &emulator.endpoint)
        .args(["run", "--workflow", "internationalports"])
        .args(["--runtime", "2020-08-01", "--config", "prod"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !dir.path().join(".bigflow").exists(),
        "prod wrote local files"
    );
    let text = on_emulator(
        &emulator,
        "my-project-prod",
        "SELECT COUNT(*) AS n FROM `my-project-prod.internationalports.ports`",
    );
    assert!(text.contains("| 4 "), "{text}");
}

#[test]
fn a_local_warehouse_inside_the_image_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "--job",
        "internationalports.create_ports_table",
        "--runtime",
        "2020-08-01",
        "--config",
        "dev",
    ];
    let out = bin(dir.path())
        .env("BIGFLOW_IN_IMAGE", "1")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("environment 'dev' of dataset my-project-dev.internationalports runs on the local warehouse, which inside the image writes to the container's disk")
            && err.contains("set BIGFLOW_ALLOW_LOCAL_WAREHOUSE=1"),
        "{err}"
    );
    assert!(!dir.path().join(".bigflow").exists());
    let out = bin(dir.path())
        .env("BIGFLOW_IN_IMAGE", "1")
        .env("BIGFLOW_ALLOW_LOCAL_WAREHOUSE", "1")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_environment_the_dataset_does_not_define_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let out = bin(dir.path())
            .args([
                "run",
                "--workflow",
                "internationalports",
                "--config",
                "stage",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: job internationalports.create_ports_table has no configuration for environment 'stage'; its environments: dev, prod, emulator. Pass --config with one of them\n"
        );
    }
    assert!(!dir.path().join(".bigflow").exists());
}

#[test]
fn warehouse_query_without_a_warehouse_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(dir.path(), &["warehouse", "query", "SELECT * FROM p.d.t"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no local warehouse at .bigflow/warehouse"),
        "{err}"
    );
}

#[test]
fn data_latency_monitoring_fails_until_a_fresh_partition_exists() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let runs = |args: &[&str]| {
        let out = bin(dir.path())
            .env("BIGFLOW_WAREHOUSE", &wh)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let check = [
        "run",
        "--workflow",
        "data_latency_monitoring",
        "--runtime",
        "2020-08-01 10:00:00",
    ];
    // No table: the job fails (exit code 1) naming it.
    let (code, _, err) = runs(&check);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("my-project-dev.events.page_views"), "{err}");
    // An empty table: no partition in the last three days.
    let (code, _, err) = runs(&[
        "warehouse",
        "query",
        "CREATE TABLE `my-project-dev.events.page_views` (url STRING) PARTITION BY _PARTITIONDATE",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = runs(&check);
    assert_eq!(code, 1);
    assert!(
        err.contains("Your data is late! No partition in the last 3 days"),
        "{err}"
    );
    // A row inserted now lands in today's partition: fresh.
    let (code, _, err) = runs(&[
        "warehouse",
        "query",
        "INSERT INTO `my-project-dev.events.page_views` VALUES ('/')",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = runs(&check);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Data is fresh: newest partition "), "{out}");
}

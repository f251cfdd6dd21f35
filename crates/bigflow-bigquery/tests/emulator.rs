//! The Dataset operations on BigQuery's REST API, against the real emulator
//! (PyPI `bqemulator`, installed by `scripts/test`): BigFlow's
//! internationalports flow through [`BigQueryBackend`].
//!
//! The full behavioural suite (`tests/suite.rs`) still runs on the local
//! warehouse only; this file covers the operations the example workflows use.

use std::sync::Arc;

use bigflow_bigquery::{Backend, BigQueryBackend, DatasetConfig, RunContext, dataset::Dataset};
use bigflow_gcp::AuthMethod;
use bigflow_testkit::BigQueryEmulator;
use serde_json::json;

/// The emulator, a backend on it and a dataset manager for `p1.ports`.
fn setup() -> Option<(
    BigQueryEmulator,
    Arc<dyn Backend>,
    bigflow_bigquery::DatasetManager,
)> {
    let emulator = BigQueryEmulator::start()?;
    let backend =
        BigQueryBackend::connect("p1", Some(&emulator.endpoint), None, &AuthMethod::None).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(backend);
    backend
        .set_dataset_labels("p1", "ports", &Default::default())
        .unwrap();
    let config = DatasetConfig::new("dev", "p1", "ports")
        .internal_tables(["ports", "polish_ports"])
        .property("country", "POL");
    let ds = Dataset::with_backend(config, backend.clone())
        .manager(&RunContext {
            env: None,
            runtime: "2020-08-01".into(),
            config: None,
        })
        .unwrap();
    Some((emulator, backend, ds))
}

/// Creates and fills `ports`, creates `polish_ports`.
fn ports(ds: &bigflow_bigquery::DatasetManager) {
    ds.create_table(
        "CREATE TABLE IF NOT EXISTS `{ports}` (port_name STRING, country STRING, port_latitude FLOAT64)",
    )
    .unwrap();
    ds.create_table("CREATE TABLE IF NOT EXISTS `{polish_ports}` (port_name STRING)")
        .unwrap();
    assert!(ds.table_exists("ports").unwrap());
    assert!(!ds.table_exists("missing_table").unwrap_or(false));
    ds.insert(
        "ports",
        &[
            json!({"port_name": "GDYNIA", "country": "POL", "port_latitude": 54.53}),
            json!({"port_name": "GDANSK", "country": "POL", "port_latitude": 54.35}),
            json!({"port_name": "HAMBURG", "country": "DEU", "port_latitude": 53.55}),
        ],
        false,
    )
    .unwrap();
}

#[test]
fn dataset_operations_on_the_emulator() {
    let Some((_emulator, backend, ds)) = setup() else {
        return;
    };
    ports(&ds);
    let all = ds.collect_list("SELECT port_name FROM `{ports}`").unwrap();
    assert_eq!(all.len(), 3, "inserted rows: {all:?}");
    let rows = ds
        .collect_list(
            "SELECT port_name FROM `{ports}` WHERE country = '{country}' ORDER BY port_name",
        )
        .unwrap();
    let names: Vec<_> = rows.iter().map(|r| r["port_name"].clone()).collect();
    assert_eq!(names, [json!("GDANSK"), json!("GDYNIA")]);
    // Arrow batches with BigQuery's types.
    let result = ds
        .collect("SELECT port_name, port_latitude FROM `{ports}` ORDER BY port_latitude DESC")
        .unwrap();
    assert_eq!(result.num_rows(), 3);
    // A dry run plans without running; a bad query names the problem.
    assert!(ds.dry_run("SELECT port_name FROM `{ports}`").is_ok());
    let bad = ds.collect("SELECT nope FROM `{ports}`").unwrap_err();
    assert!(bad.to_string().contains("nope"), "{bad}");
    ds.delete_dataset().unwrap();
    assert!(
        !backend
            .table_exists(&ds.table_id("ports").unwrap())
            .unwrap()
    );
}

/// Emulator gap: bqemulator 1.4 ignores the destination table of query jobs
/// (WRITE_TRUNCATE and WRITE_APPEND both leave the table unchanged; checked
/// with its REST API directly). The local warehouse runs the same
/// write_truncate in `tests/suite.rs`.
#[test]
#[ignore = "bqemulator 1.4 ignores destinationTable of query jobs (emulator gap)"]
fn write_truncate_on_the_emulator() {
    let Some((_emulator, _backend, ds)) = setup() else {
        return;
    };
    ports(&ds);
    for _ in 0..2 {
        // write_truncate twice: still two rows.
        ds.write_truncate(
            "polish_ports",
            "SELECT port_name FROM `{ports}` WHERE country = '{country}'",
            false,
        )
        .unwrap();
    }
    let rows = ds
        .collect_list("SELECT port_name FROM `{polish_ports}` ORDER BY port_name")
        .unwrap();
    let names: Vec<_> = rows.iter().map(|r| r["port_name"].clone()).collect();
    assert_eq!(names, [json!("GDANSK"), json!("GDYNIA")]);
    let rows = ds
        .collect_list("SELECT port_name FROM `{polish_ports}` ORDER BY port_name")
        .unwrap();
    let names: Vec<_> = rows.iter().map(|r| r["port_name"].clone()).collect();
    assert_eq!(names, [json!("GDANSK"), json!("GDYNIA")]);
}

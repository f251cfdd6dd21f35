//! Parquet IO (feature `parquet`): a typed round trip through sharded files,
//! bad rows, and files that Beam Python's pyarrow reads and writes (the
//! apache-beam venv that `scripts/test` installs).
#![cfg(feature = "parquet")]

use std::sync::Arc;

use bigflow_beam::parquet_io::{DataType, Field, Schema, SchemaRef};
use bigflow_beam::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sale {
    id: i64,
    store: String,
    amount: f64,
    note: Option<String>,
    ok: bool,
}
bigflow_beam::json_coder!(Sale);

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("store", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("note", DataType::Utf8, true),
        Field::new("ok", DataType::Boolean, false),
    ]))
}

fn sales(n: i64) -> Vec<Sale> {
    (0..n)
        .map(|i| Sale {
            id: i,
            store: format!("store-{}", i % 7),
            amount: i as f64 / 4.0,
            note: (i % 3 == 0).then(|| format!("n{i}")),
            ok: i % 2 == 0,
        })
        .collect()
}

#[test]
fn typed_rows_round_trip_through_sharded_files() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("out/sales").display().to_string();
    let p = TestPipeline::new();
    let files = p.create("Sales", sales(20_000)).write_parquet(
        "Write",
        WriteText::to(&prefix).shards(3),
        schema(),
    );
    assert_that(
        &files,
        equal_to(
            (0..3)
                .map(|i| format!("{prefix}-0000{i}-of-00003.parquet"))
                .collect(),
        ),
    );
    p.run().unwrap();

    let p = TestPipeline::new();
    let read: PCollection<Sale> = p.read_parquet("Read", format!("{prefix}-*.parquet"));
    assert_that(&read, equal_to(sales(20_000)));
    p.run().unwrap();
}

#[test]
fn rows_that_do_not_fit_fail_naming_the_transform() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("bad").display().to_string();
    let p = TestPipeline::new();
    p.create("Rows", vec![serde_json::json!({"id": 1, "extra": true})])
        .write_parquet("Write", WriteText::to(&prefix), schema());
    let e = p.run().unwrap_err().to_string();
    assert!(
        e.contains("transform 'Write'") && e.contains("extra"),
        "{e}"
    );
    // Nothing half-written is left in place.
    assert!(!std::path::Path::new(&format!("{prefix}-00000-of-00001.parquet")).exists());

    let p = TestPipeline::new();
    let _: PCollection<Sale> = p.read_parquet(
        "Read",
        dir.path().join("none-*.parquet").display().to_string(),
    );
    let e = p.run().unwrap_err().to_string();
    assert!(e.contains("no files match"), "{e}");
}

#[test]
fn pyarrow_reads_ours_and_we_read_pyarrows() {
    let Some(python) = bigflow_testkit::beam_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ours").display().to_string();
    let p = TestPipeline::new();
    p.create("Sales", sales(100))
        .write_parquet("Write", WriteText::to(&prefix), schema());
    p.run().unwrap();
    let theirs = dir.path().join("theirs.parquet");
    let script = r#"
import sys, pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
assert t.num_rows == 100, t.num_rows
assert t.column("note").null_count == 66, t.column("note").null_count
print(sum(t.column("amount").to_pylist()))
pq.write_table(pa.table({"id": [7, 8], "store": ["a", "b"], "amount": [0.5, 1.5],
                         "note": [None, "x"], "ok": [True, False]}), sys.argv[2])
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(format!("{prefix}-00000-of-00001.parquet"))
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1237.5");
    let p = TestPipeline::new();
    let read: PCollection<Sale> = p.read_parquet("Read", theirs.display().to_string());
    assert_that(
        &read,
        equal_to(vec![
            Sale {
                id: 7,
                store: "a".into(),
                amount: 0.5,
                note: None,
                ok: true,
            },
            Sale {
                id: 8,
                store: "b".into(),
                amount: 1.5,
                note: Some("x".into()),
                ok: false,
            },
        ]),
    );
    p.run().unwrap();
}

//! Atomic and concurrent writes of the local warehouse: a process killed
//! (SIGKILL) in the middle of `write_truncate` leaves the previous table
//! intact, and concurrent writers of different tables and partitions do not
//! lose each other's rows.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bigflow_bigquery::{
    Backend, DatasetConfig, DatasetManager, LocalWarehouse, RunContext, dataset::Dataset,
};
use serde_json::json;

const ROWS: u64 = 100_000;
const DIR_VAR: &str = "BQ_ATOMIC_TEST_DIR";

fn manager(dir: &Path, runtime: &str) -> DatasetManager {
    let backend: Arc<dyn Backend> = Arc::new(LocalWarehouse::open(dir).unwrap());
    Dataset::with_backend(
        DatasetConfig::new("dev", "p", "atomic").internal_tables(["big", "parts", "other"]),
        backend,
    )
    .manager(&RunContext {
        env: None,
        runtime: runtime.into(),
        config: None,
    })
    .unwrap()
}

fn truncate_sql(k: u64) -> String {
    format!(
        "SELECT value AS id, {k} AS k, REPEAT('x', 40) AS pad FROM UNNEST(GENERATE_SERIES(1, {ROWS})) AS value"
    )
}

/// Not a test on its own: the child process of `killed_write_truncate_leaves_the_old_table`.
#[test]
#[ignore = "helper process, started by killed_write_truncate_leaves_the_old_table"]
fn writer_loop() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let ds = manager(Path::new(&dir), "2020-08-01");
    ds.create_table("CREATE TABLE IF NOT EXISTS big (id INT64, k INT64, pad STRING)")
        .unwrap();
    let first: u64 = std::env::var("BQ_ATOMIC_FIRST_K").unwrap().parse().unwrap();
    for k in first.. {
        ds.write_truncate("big", &truncate_sql(k), false).unwrap();
        println!("committed {k}");
    }
}

fn check_consistent(dir: &Path) -> u64 {
    let ds = manager(dir, "2020-08-01");
    let r = ds
        .collect_list("SELECT COUNT(*) AS n, COUNT(DISTINCT k) AS ks, MIN(k) AS k FROM `{big}`")
        .unwrap();
    assert_eq!(r[0]["n"], json!(ROWS), "{r:?}");
    assert_eq!(r[0]["ks"], json!(1), "rows of two writes mixed: {r:?}");
    r[0]["k"].as_u64().unwrap()
}

#[test]
fn killed_write_truncate_leaves_the_old_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wh");
    {
        let ds = manager(&dir, "2020-08-01");
        ds.create_table("CREATE TABLE big (id INT64, k INT64, pad STRING)")
            .unwrap();
        ds.write_truncate("big", &truncate_sql(0), false).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut last_k = 0;
    let mut killed_mid_write = 0;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args([
                "writer_loop",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, &dir)
            .env("BQ_ATOMIC_FIRST_K", ((round + 1) * 1000).to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Different moments in the write cycle each round.
        std::thread::sleep(Duration::from_millis(600 + round * 337));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let staged = std::fs::read_dir(dir.join("p/atomic/big/.tmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        if staged > 0 {
            killed_mid_write += 1;
        }
        let k = check_consistent(&dir);
        assert!(k >= last_k, "table went back from write {last_k} to {k}");
        last_k = k;
    }
    assert!(
        last_k > 0,
        "the writer never committed; the test proves nothing"
    );
    assert!(
        killed_mid_write > 0,
        "no kill landed during a write; the test proves nothing"
    );
    // The next commit still works and cleans up after the killed writers.
    let ds = manager(&dir, "2020-08-01");
    ds.write_truncate("big", &truncate_sql(1000), false)
        .unwrap();
    assert_eq!(check_consistent(&dir), 1000);
}

#[test]
fn concurrent_writes_of_partitions_and_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wh");
    let ds = manager(&dir, "2020-08-01");
    ds.create_table("CREATE TABLE parts (id INT64, day STRING) PARTITION BY _PARTITIONDATE")
        .unwrap();
    ds.create_table("CREATE TABLE other (id INT64)").unwrap();
    let start = Instant::now();
    let handles: Vec<_> = (1..=6)
        .map(|d| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let day = format!("2020-08-0{d}");
                let ds = manager(&dir, &day);
                for i in 0..5 {
                    ds.write_truncate("parts", &format!("SELECT {i} AS id, '{{dt}}' AS day"), true)
                        .unwrap();
                    ds.write_append("other", &format!("SELECT {d}{i} AS id"), false)
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rows = ds
        .collect_list("SELECT day, _PARTITIONDATE AS pd, id FROM `{parts}` ORDER BY day")
        .unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    for (n, r) in rows.iter().enumerate() {
        assert_eq!(r["day"], json!(format!("2020-08-0{}", n + 1)));
        assert_eq!(r["pd"], r["day"]);
        assert_eq!(
            r["id"],
            json!(4),
            "the last truncate of each partition wins"
        );
    }
    let n = ds
        .collect_list("SELECT COUNT(*) AS n FROM `{other}`")
        .unwrap();
    assert_eq!(n[0]["n"], json!(30), "no append lost");
    eprintln!("60 concurrent writes in {:?}", start.elapsed());
}

#[test]
fn a_write_failing_half_way_leaves_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wh");
    let ds = manager(&dir, "2020-08-01");
    ds.create_table("CREATE TABLE big (id INT64, k INT64 NOT NULL, pad STRING)")
        .unwrap();
    ds.write_truncate("big", &truncate_sql(7), false).unwrap();
    // The NULL comes in a late batch, after the first rows were written to a staged file.
    let e = ds
        .write_truncate(
            "big",
            "SELECT value AS id, CASE WHEN value > 90000 THEN NULL ELSE 1 END AS k, 'x' AS pad
             FROM UNNEST(GENERATE_SERIES(1, 100000)) AS value",
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("column `k`: NULL in a REQUIRED column"), "{e}");
    assert_eq!(check_consistent(&dir), 7);
    let staged = std::fs::read_dir(dir.join("p/atomic/big/.tmp"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "staged files left behind");
}

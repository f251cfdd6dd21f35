//! The local warehouse's half of two benchmarks. Build with `--release`.
//!
//! - `bench/run warehouse`: `warehouse_queries PARQUET_DIR < queries.json`
//!   loads the star schema `bench/warehouse_peers.py generate` wrote as
//!   Parquet, then times the same queries the DuckDB and bqemulator halves
//!   run. The JSON maps a query name to its SQL with `{sales}`-style table
//!   placeholders. Prints one JSON line: seconds per step, and the peak RSS
//!   in MiB.
//! - `bench/tpch.sh`: `warehouse_queries tpch PARQUET_DIR QUERY_DIR OUT_DIR [RUNS]`
//!   loads the eight TPC-H tables (`PARQUET_DIR/<table>.parquet`) into the
//!   dataset `tpch`, then runs every `QUERY_DIR/*.sql` (BigQuery SQL naming
//!   the tables bare, as with a default dataset) RUNS times (default 3).
//!   Writes each query's answer as a JSON array of rows to `OUT_DIR/<query>.json`
//!   and prints one JSON line: `{"load": s, "peak_rss_mib": m, "queries":
//!   {"q01": {"seconds": [..], "rows": n} | {"error": "..."}}}`.
//!   `TPCH_EXPLAIN=q01,q06` also prints those queries' plans with their
//!   metrics (`LocalWarehouse::explain`) on stderr.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bigflow_bigquery::{
    Backend, DatasetConfig, FileFormat, LocalWarehouse, QueryContext, QueryResult, RunContext,
    TableId, WriteMode, dataset::Dataset,
};
use serde_json::{Value, json};

const TABLES: [&str; 4] = ["sales", "stores", "products", "customers"];

const TPCH_TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_mib;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("tpch") => tpch(&args[1..]),
        Some(dir) => star(PathBuf::from(dir)),
        None => Err("usage: warehouse_queries PARQUET_DIR < queries.json\n       warehouse_queries tpch PARQUET_DIR QUERY_DIR OUT_DIR [RUNS]".into()),
    }
}

/// `bench/run warehouse`.
fn star(data: PathBuf) -> Result<(), Error> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let queries: BTreeMap<String, String> = serde_json::from_str(&text)?;
    let tmp = tempfile::tempdir()?;
    let backend: Arc<dyn Backend> = Arc::new(LocalWarehouse::open(tmp.path().join("wh"))?);
    let ds = Dataset::with_backend(
        DatasetConfig::new("bench", "bench-project", "star")
            .internal_tables(TABLES.into_iter().chain(["daily"])),
        backend,
    )
    .manager(&RunContext {
        env: None,
        runtime: "2024-01-15".into(),
        config: None,
    })?;
    let mut result = BTreeMap::new();
    let started = Instant::now();
    for t in TABLES {
        ds.load_table(
            t,
            &data.join(format!("{t}.parquet")),
            FileFormat::Parquet,
            WriteMode::CreateOrReplace,
            false,
        )?;
    }
    result.insert("load".to_string(), started.elapsed().as_secs_f64());
    ds.create_table(
        "CREATE TABLE `{daily}` (store_id INT64, product_id INT64, revenue FLOAT64, units INT64, n INT64) PARTITION BY _PARTITIONDATE",
    )?;
    for (name, sql) in &queries {
        let mut sql = sql.clone();
        for t in TABLES {
            sql = sql.replace(&format!("{{{t}}}"), &format!("`{{{t}}}`"));
        }
        let started = Instant::now();
        if name == "daily_aggregate" {
            // The runtime's day partition, replaced.
            ds.write_truncate("daily", &sql, true)?;
        } else {
            let rows = ds.collect(&sql)?;
            std::hint::black_box(rows.num_rows());
        }
        result.insert(name.clone(), started.elapsed().as_secs_f64());
    }
    let mut out: serde_json::Map<String, Value> = result
        .into_iter()
        .map(|(k, v)| (k, json!((v * 10_000.0).round() / 10_000.0)))
        .collect();
    out.insert("peak_rss_mib".into(), json!(peak_rss_mib().round()));
    println!("{}", Value::Object(out));
    Ok(())
}

fn round4(seconds: f64) -> f64 {
    (seconds * 10_000.0).round() / 10_000.0
}

/// Runs one statement on its own thread, with a deadline (a query that
/// never ends must not stop the benchmark) and panics caught.
fn run_with_deadline(
    wh: &Arc<LocalWarehouse>,
    sql: &str,
    ctx: &QueryContext,
    limit: Duration,
) -> Result<QueryResult, String> {
    let (tx, rx) = mpsc::channel();
    let (wh, sql, ctx) = (Arc::clone(wh), sql.to_string(), ctx.clone());
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wh.execute(&sql, &ctx)));
            let _ = tx.send(r);
        })
        .map_err(|e| e.to_string())?;
    match rx.recv_timeout(limit) {
        Ok(Ok(Ok(result))) => Ok(result),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(_)) => Err("panicked".into()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// The rows of a result as a JSON array of objects (Arrow's JSON writer).
fn answer_json(result: &QueryResult) -> Result<Vec<u8>, Error> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let batches: Vec<&arrow::array::RecordBatch> = result.batches.iter().collect();
    writer.write_batches(&batches)?;
    writer.finish()?;
    let mut out = writer.into_inner();
    if out.is_empty() {
        out = b"[]".to_vec();
    }
    Ok(out)
}

/// `bench/tpch.sh`.
fn tpch(args: &[String]) -> Result<(), Error> {
    let usage = "usage: warehouse_queries tpch PARQUET_DIR QUERY_DIR OUT_DIR [RUNS]";
    let [data, queries, out] = [0, 1, 2].map(|i| args.get(i).map(PathBuf::from));
    let (Some(data), Some(queries), Some(out)) = (data, queries, out) else {
        return Err(usage.into());
    };
    let runs: usize = args
        .get(3)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let limit = Duration::from_secs(
        std::env::var("TPCH_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    std::fs::create_dir_all(&out)?;
    let tmp = tempfile::tempdir()?;
    let wh = Arc::new(LocalWarehouse::open(tmp.path().join("wh"))?);
    let (project, dataset) = ("bench-project", "tpch");
    wh.ensure_dataset(project, dataset, &Default::default())?;
    let ctx = QueryContext {
        default_project: project.into(),
        default_dataset: dataset.into(),
        ..QueryContext::default()
    };
    let started = Instant::now();
    for t in TPCH_TABLES {
        wh.load_file(
            &TableId::new(project, dataset, t)?,
            None,
            &data.join(format!("{t}.parquet")),
            FileFormat::Parquet,
            WriteMode::CreateOrReplace,
        )?;
    }
    let load = started.elapsed().as_secs_f64();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&queries)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    // `TPCH_EXPLAIN=q01,q06`: those queries' plans with their metrics
    // (after the timed runs) on stderr.
    let explain: Vec<String> = std::env::var("TPCH_EXPLAIN")
        .unwrap_or_default()
        .split(',')
        .map(|q| q.trim().to_string())
        .collect();
    let mut report = serde_json::Map::new();
    for file in &files {
        let name = query_name(file);
        let sql = std::fs::read_to_string(file)?;
        let mut seconds = Vec::new();
        let mut entry = json!({});
        for _ in 0..runs {
            let started = Instant::now();
            match run_with_deadline(&wh, &sql, &ctx, limit) {
                Ok(result) => {
                    seconds.push(round4(started.elapsed().as_secs_f64()));
                    std::fs::write(out.join(format!("{name}.json")), answer_json(&result)?)?;
                    entry = json!({ "seconds": seconds, "rows": result.num_rows() });
                }
                Err(e) => {
                    entry = json!({ "error": e });
                    break;
                }
            }
        }
        eprintln!("ours {name}: {entry}");
        if explain.iter().any(|q| q == &name) {
            eprintln!("{}", wh.explain(&sql, &ctx, true)?);
        }
        report.insert(name, entry);
    }
    println!(
        "{}",
        json!({
            "load": round4(load),
            "peak_rss_mib": peak_rss_mib().round(),
            "queries": Value::Object(report),
        })
    );
    // A query past its deadline may still be running on its thread.
    std::process::exit(0);
}

fn query_name(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

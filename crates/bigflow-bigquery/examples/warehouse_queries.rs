//! The local warehouse's half of `bench/run warehouse`: loads the star
//! schema `bench/warehouse_peers.py generate` wrote as Parquet, then times the
//! same queries the DuckDB and bqemulator halves run.
//!
//! `warehouse_queries PARQUET_DIR < queries.json` where the JSON maps a query
//! name to its SQL with `{sales}`-style table placeholders. Prints one JSON
//! line: seconds per step, and the peak RSS in MiB. Build with `--release`.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use bigflow_bigquery::{
    Backend, DatasetConfig, FileFormat, LocalWarehouse, RunContext, WriteMode, dataset::Dataset,
};

const TABLES: [&str; 4] = ["sales", "stores", "products", "customers"];

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_mib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: warehouse_queries PARQUET_DIR < queries.json")?,
    );
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
    let mut out: serde_json::Map<String, serde_json::Value> = result
        .into_iter()
        .map(|(k, v)| (k, serde_json::json!((v * 10_000.0).round() / 10_000.0)))
        .collect();
    out.insert(
        "peak_rss_mib".into(),
        serde_json::json!(peak_rss_mib().round()),
    );
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

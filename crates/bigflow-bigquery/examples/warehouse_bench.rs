//! Times typical BigFlow jobs on the local warehouse over a generated star
//! schema: `warehouse_bench [FACT_ROWS] [DIR]` (default 10 000 000 rows, a
//! temporary directory). Prints one line per step and the peak RSS.
//!
//! Build with `--release`; the debug build is 10-50× slower.

use std::sync::Arc;
use std::time::Instant;

use bigflow_bigquery::{Backend, DatasetConfig, LocalWarehouse, RunContext, dataset::Dataset};

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_mib;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("wh"));
    let backend: Arc<dyn Backend> = Arc::new(LocalWarehouse::open(&dir)?);
    let ds = Dataset::with_backend(
        DatasetConfig::new("bench", "bench-project", "star").internal_tables([
            "fact",
            "customers",
            "products",
            "daily",
        ]),
        backend,
    );
    let days = 10u64;
    let per_day = rows / days;
    let at = |day: u64| {
        ds.manager(&RunContext {
            env: None,
            runtime: format!("2020-01-{:02}", day + 1),
            config: None,
        })
    };
    let m = at(0)?;
    let time = |name: &str, f: &mut dyn FnMut() -> Result<String, Box<dyn std::error::Error>>| {
        let t = Instant::now();
        let r = f();
        println!(
            "{name:<45} {:>9.3} s  {}",
            t.elapsed().as_secs_f64(),
            r.as_deref().unwrap_or("error")
        );
        r.map(|_| ())
    };
    m.create_table("CREATE TABLE fact (id INT64, day DATE, customer_id INT64, product_id INT64, amount FLOAT64) PARTITION BY day")?;
    m.create_table("CREATE TABLE daily (day DATE, product_id INT64, revenue FLOAT64, n INT64) PARTITION BY day")?;
    time(
        "generate dimensions (100k customers, 1k products)",
        &mut || {
            m.write_tmp(
            "customers",
            "SELECT value AS id, CONCAT('segment_', CAST(value % 7 AS STRING)) AS segment FROM UNNEST(GENERATE_SERIES(1, 100000)) AS value",
        )?;
            m.write_tmp(
            "products",
            "SELECT value AS id, value % 13 AS category FROM UNNEST(GENERATE_SERIES(1, 1000)) AS value",
        )?;
            Ok(String::new())
        },
    )?;
    time(
        &format!("generate fact: {rows} rows in {days} day partitions"),
        &mut || {
            for d in 0..days {
                let md = at(d)?;
                md.write_truncate(
                "fact",
                &format!(
                    "SELECT value AS id, DATE '{{dt}}' AS day, (value * 7919) % 100000 + 1 AS customer_id,
                            (value * 104729) % 1000 + 1 AS product_id, CAST((value * 31) % 10000 AS FLOAT64) / 100 AS amount
                     FROM UNNEST(GENERATE_SERIES({}, {})) AS value",
                    d * per_day + 1,
                    (d + 1) * per_day
                ),
                true,
            )?;
            }
            Ok(String::new())
        },
    )?;
    let md = at(4)?;
    time("write_truncate daily partition (aggregation)", &mut || {
        let n = md.write_truncate(
            "daily",
            "SELECT day, product_id, SUM(amount) AS revenue, COUNT(*) AS n FROM `{fact}` WHERE day = DATE '{dt}' GROUP BY day, product_id",
            true,
        )?;
        Ok(format!("{n} rows"))
    })?;
    time("join + group by", &mut || {
        let r = m.collect(
            "SELECT c.segment, p.category, SUM(f.amount) AS revenue FROM `{fact}` f
             JOIN `{customers}` c ON f.customer_id = c.id JOIN `{products}` p ON f.product_id = p.id
             GROUP BY 1, 2",
        )?;
        Ok(format!("{} rows", r.num_rows()))
    })?;
    time("window function (top 3 per customer)", &mut || {
        let r = m.collect(
            "SELECT COUNT(*) AS n FROM (
               SELECT customer_id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY amount DESC, id) AS rn FROM `{fact}`)
             WHERE rn <= 3",
        )?;
        Ok(format!("{} rows", r.num_rows()))
    })?;
    time("collect 100k rows", &mut || {
        let r = m.collect("SELECT * FROM `{fact}` WHERE day = DATE '2020-01-03' LIMIT 100000")?;
        Ok(format!("{} rows", r.num_rows()))
    })?;
    println!("peak RSS {:.1} MiB", peak_rss_mib());
    Ok(())
}

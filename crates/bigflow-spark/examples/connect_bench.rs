//! Times Spark Connect round trips from Rust, for `bench/run spark_connect`.
//!
//! Usage: connect_bench URL RUNS SQL
//! Each run opens a new session, submits SQL, fetches every row and stops
//! the session. Prints one JSON object: median and min milliseconds, rows.

use std::time::Instant;

use bigflow_spark::connect::SparkSession;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, runs, sql] = args.as_slice() else {
        anyhow::bail!("usage: connect_bench URL RUNS SQL");
    };
    let runs: usize = runs.parse()?;
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..runs + 1 {
        let start = Instant::now();
        let session = SparkSession::builder().remote(url).get_or_create()?;
        rows = session.sql(sql)?.collect()?.len();
        session.stop()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.remove(0); // warm-up
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"median_ms\": {:.2}, \"min_ms\": {:.2}, \"rows\": {rows}, \"runs\": {runs}}}",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}

//! The starter's Spark example: a Monte-Carlo estimate of pi, twice.
//!
//! - `pi_estimator` (feature `spark-connect`): a Rust driver over Spark
//!   Connect (`SparkJob`); without a `spark_connect_url` in the config the job
//!   starts a local Spark Connect server and stops it afterwards.
//! - `pi_estimator_pyspark`: BigFlow's PySpark driver
//!   (`resources/pi_estimator.py`) run by `spark-submit`.

use bigflow::prelude::*;
use bigflow::spark::PySparkJob;

/// Samples drawn by both variants.
pub const SAMPLES: i64 = 2_000_000;

/// The share of random points inside the quarter circle, times four, in Spark SQL.
#[cfg(feature = "spark-connect")]
pub fn workflow() -> WorkflowBuilder {
    let estimate = bigflow::spark::connect::SparkJob::new("estimate_pi", |spark, _ctx| {
        // Spark does not allow rand() inside an aggregate: draw in a subquery.
        let query = format!(
            "SELECT CAST(4 * AVG(hit) AS DOUBLE) AS pi FROM \
             (SELECT CASE WHEN pow(rand(), 2) + pow(rand(), 2) < 1 THEN 1D ELSE 0D END AS hit FROM range({SAMPLES}))"
        );
        let rows = spark.sql(&query)?.collect()?;
        let pi = match rows.first().and_then(|r| r.get(0)) {
            Some(bigflow::spark::connect::Value::Double(v)) => *v,
            other => bigflow::anyhow::bail!("unexpected result {other:?}"),
        };
        println!("Pi is roughly {pi:.6}");
        Ok(())
    })
    .with_retry_count(1);
    Workflow::builder("pi_estimator")
        .depends_on_past(false)
        .jobs([estimate])
}

/// One `PySparkJob` estimating pi.
pub fn pyspark_workflow() -> WorkflowBuilder {
    Workflow::builder("pi_estimator_pyspark")
        .depends_on_past(false)
        .jobs([PySparkJob::new("estimate_pi", "pi_estimator.py")
            .args([SAMPLES.to_string(), "4".to_string()])
            .spark_property("spark.ui.enabled", "false")
            .with_retry_count(1)])
}

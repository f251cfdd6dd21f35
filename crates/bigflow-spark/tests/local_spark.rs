//! Bad input on a real local Spark (PySpark 4.0.1 + Java 17, installed by
//! `scripts/test`): a driver that raises, a SQL error inside Spark, an
//! unreachable Spark Connect endpoint. Each is one clear failure with Spark's
//! own message, and nothing is left running.

use std::time::Duration;

use bigflow_core::{Config, RunOptions, Workflow, parse_runtime, run_workflow};
use bigflow_spark::PySparkJob;
use bigflow_testkit::{peers_dir, peers_present};

/// The PySpark venv `scripts/test` installs, or a loud skip.
fn pyspark() -> bool {
    let venv = peers_dir().join(format!("pyspark-{}", bigflow_spark::PYSPARK_VERSION));
    std::env::var_os("SPARK_HOME").is_some()
        || std::env::var_os("BIGFLOW_PYSPARK_VENV").is_some()
        || venv.is_dir()
        || !peers_present(&[venv.display().to_string()])
}

/// Runs one job; returns its error.
fn failure(job: bigflow_core::JobRef, config: Config) -> String {
    let workflow = Workflow::builder("wf")
        .config(config.clone())
        .jobs([job])
        .build()
        .unwrap();
    let report = run_workflow(
        &workflow,
        None,
        parse_runtime("2020-01-01").unwrap(),
        &config.resolve(Some("dev")).unwrap(),
        &Default::default(),
        &RunOptions {
            cancel_grace: Duration::from_secs(20),
            ..RunOptions::default()
        },
    );
    assert!(!report.succeeded(), "the job should have failed");
    report.outcomes[0].error.clone().unwrap_or_default()
}

#[test]
fn a_driver_that_raises_fails_the_job() {
    if !pyspark() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let driver = dir.path().join("raises.py");
    std::fs::write(&driver, "raise ValueError('no input for this runtime')\n").unwrap();
    let error = failure(
        PySparkJob::new("raises", driver.display().to_string()).into(),
        Config::new("dev", [("spark_target", "local")]),
    );
    assert!(
        error.contains("spark-submit") && error.contains("exit"),
        "{error}"
    );
}

#[cfg(feature = "connect")]
#[test]
fn a_sql_error_carries_sparks_message() {
    if !pyspark() {
        return;
    }
    let job = bigflow_spark::connect::SparkJob::new("bad_sql", |spark, _| {
        spark.sql("SELECT * FROM no_such_table")?.collect()?;
        Ok(())
    });
    let error = failure(job.into(), Config::new("dev", [("spark_target", "local")]));
    assert!(
        error.contains("TABLE_OR_VIEW_NOT_FOUND") && error.contains("no_such_table"),
        "{error}"
    );
}

#[cfg(feature = "connect")]
#[test]
fn an_unreachable_endpoint_is_named() {
    let port = bigflow_testkit::free_port();
    let job = bigflow_spark::connect::SparkJob::new("unreachable", |spark, _| {
        spark.sql("SELECT 1")?.collect()?;
        Ok(())
    });
    let error = failure(
        job.into(),
        Config::new(
            "dev",
            [("spark_connect_url", format!("sc://127.0.0.1:{port}"))],
        ),
    );
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}

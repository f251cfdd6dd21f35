//! A Spark DataFrame job (feature `spark-connect`): read a CSV of port calls,
//! keep it as Parquet, then aggregate the runtime's day per country with the
//! DataFrame API and write the aggregate as Parquet.
//!
//! Output goes under the config's `spark_output_dir` (default
//! `.bigflow/spark` in the working directory): `port_calls/` (Parquet of
//! every call) and `country_tonnage/date=<runtime date>/` (the aggregate).

use bigflow::prelude::*;
use bigflow::spark::connect::{SparkJob, Value, functions as f};

/// Where the job writes, made absolute (the Spark server may run elsewhere).
fn output_dir(ctx: &JobContext) -> bigflow::anyhow::Result<std::path::PathBuf> {
    let dir = ctx
        .config
        .get("spark_output_dir")
        .and_then(|v| v.as_str())
        .unwrap_or(".bigflow/spark")
        .to_string();
    Ok(std::path::absolute(dir)?)
}

/// The workflow: one `SparkJob` on the local Spark the job starts itself.
pub fn workflow() -> WorkflowBuilder {
    let aggregate = SparkJob::new("aggregate_tonnage", |spark, ctx| {
        let out = output_dir(ctx)?;
        let calls_csv = ctx.resource("port_calls.csv")?;
        let calls = out.join("port_calls");
        let day = ctx.runtime.format("%Y-%m-%d").to_string();
        let report = out.join("country_tonnage").join(format!("date={day}"));

        // CSV -> Parquet, typed.
        spark
            .read()
            .option("header", "true")
            .option("inferSchema", "true")
            .csv(&calls_csv.display().to_string())
            .write()
            .mode("overwrite")
            .parquet(&calls.display().to_string())?;

        // Parquet -> the day's tonnage per country.
        let per_country = spark
            .read()
            .parquet(&calls.display().to_string())
            .filter(f::expr(&format!("call_date = DATE'{day}'")))
            .group_by(vec![f::col("country")])
            .agg(vec![
                f::sum(f::col("tonnage"))
                    .alias("tonnage")
                    .expression()
                    .clone(),
                f::count(f::col("port_name"))
                    .alias("calls")
                    .expression()
                    .clone(),
            ])
            .order_by(vec![f::col("tonnage").desc().expression().clone()]);
        per_country
            .write()
            .mode("overwrite")
            .parquet(&report.display().to_string())?;

        println!("country tonnage calls ({day})");
        for row in per_country.collect()? {
            let text = |i: usize| match row.get(i) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Long(n)) => n.to_string(),
                Some(Value::Integer(n)) => n.to_string(),
                other => format!("{other:?}"),
            };
            println!("{} {} {}", text(0), text(1), text(2));
        }
        Ok(())
    });
    Workflow::builder("port_tonnage")
        .depends_on_past(false)
        .jobs([aggregate])
}

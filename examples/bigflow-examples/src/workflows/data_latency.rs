//! BigFlow's data-latency monitoring workflow: every hour, fail if the newest
//! day partition of a monitored table is older than a threshold.
//!
//! The monitored table is an external table of the dataset
//! (`table_to_monitor`), partitioned by ingestion day; the check reads
//! `_PARTITIONTIME` with `TIMESTAMP_DIFF`, as in BigFlow's monitoring guide.

use bigflow::bigquery::DatasetManager;
use bigflow::prelude::*;

/// The monitoring dataset and the table it watches, per environment.
pub fn dataset() -> Dataset {
    DatasetConfig::new("dev", "my-project-dev", "data_latency_monitoring")
        .external_table("table_to_monitor", "my-project-dev.events.page_views")
        .property("max_latency_minutes", 30 * 60)
        .add_configuration("prod", "my-project-prod", "data_latency_monitoring")
        .external_table("table_to_monitor", "my-project-prod.events.page_views")
        .create_dataset()
}

/// Minutes since the newest partition of the last three days; `None` if there is none.
pub fn latency_minutes(ds: &DatasetManager) -> bigflow::anyhow::Result<Option<i64>> {
    #[derive(serde::Deserialize)]
    struct Row {
        latency: i64,
    }
    let rows: Vec<Row> = ds.collect_list_as(
        "SELECT TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), pt, MINUTE) AS latency
         FROM (
           SELECT _PARTITIONTIME AS pt
           FROM `{table_to_monitor}`
           WHERE _PARTITIONTIME > TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 3 DAY)
           GROUP BY 1
           ORDER BY pt DESC
           LIMIT 1)",
    )?;
    Ok(rows.first().map(|r| r.latency))
}

/// One job, `check_data_latency`, retried 3 times a minute apart.
pub fn workflow() -> WorkflowBuilder {
    let check = component(&dataset(), |ds| {
        let max: i64 = ds.render("{max_latency_minutes}")?.parse()?;
        match latency_minutes(ds)? {
            Some(minutes) if minutes <= max => {
                println!("Data is fresh: newest partition {minutes} minutes old");
                Ok(())
            }
            Some(minutes) => bigflow::anyhow::bail!(
                "Your data is late! Newest partition is {minutes} minutes old (limit {max})"
            ),
            None => bigflow::anyhow::bail!("Your data is late! No partition in the last 3 days"),
        }
    });
    Workflow::builder("data_latency_monitoring")
        .schedule_interval("@hourly")
        .start_time_factory(StartTimeFactory::hourly())
        .jobs([check
            .to_job("check_data_latency")
            .with_retry_count(3)
            .with_retry_pause(std::time::Duration::from_secs(60))])
}

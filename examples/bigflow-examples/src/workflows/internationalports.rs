//! BigFlow's starter BigQuery workflow: create the `ports` table, insert the
//! four ports it lacks, and select the Polish ones into `polish_ports`
//! (write_truncate). A rerun gives the same tables (BigFlow's INSERT doubled
//! the ports on every run).
//!
//! It runs offline on the embedded warehouse (`.bigflow/warehouse/` under the
//! working directory, or `$BIGFLOW_WAREHOUSE`):
//!
//! ```text
//! cargo run -p bigflow-examples -- run --workflow internationalports
//! cargo run -p bigflow-examples -- warehouse query \
//!     "SELECT port_name FROM \`my-project-dev.internationalports.polish_ports\`"
//! ```
//!
//! and on a BigQuery emulator (or any endpoint) by switching the config:
//!
//! ```text
//! BIGQUERY_EMULATOR_HOST=http://127.0.0.1:9050 \
//!     cargo run -p bigflow-examples -- run --workflow internationalports --config emulator
//! ```

use bigflow::bigquery::{AuthMethod, BackendKind};
use bigflow::prelude::*;

/// The dataset: `my-project-<env>.internationalports`. `dev`, the first
/// environment, runs on the local warehouse; every environment added after it
/// runs on BigQuery (`prod` at Google's endpoint with the pod's credentials, or
/// at `$BIGQUERY_EMULATOR_HOST` when set), and inside the image a local
/// warehouse would refuse to run. `emulator` shows an explicit engine: BigQuery's
/// REST API without credentials.
pub fn dataset() -> Dataset {
    DatasetConfig::new("dev", "my-project-dev", "internationalports")
        .internal_tables(["ports", "polish_ports"])
        .add_configuration("prod", "my-project-prod", "internationalports")
        .add_configuration("emulator", "my-project-dev", "internationalports")
        .backend(BackendKind::BigQuery {
            endpoint: None,
            location: None,
            auth: AuthMethod::None,
        })
        .create_dataset()
}

/// Four jobs in a row: two CREATE TABLEs, the INSERT, the write_truncate.
pub fn workflow() -> WorkflowBuilder {
    let ds = dataset();
    let create_polish_ports_table = ds.create_table(
        "CREATE TABLE IF NOT EXISTS polish_ports (
           port_name STRING,
           port_latitude FLOAT64,
           port_longitude FLOAT64)",
    );
    let create_ports_table = ds.create_table(
        "CREATE TABLE IF NOT EXISTS ports (
           port_name STRING,
           port_latitude FLOAT64,
           port_longitude FLOAT64,
           country STRING,
           index_number STRING)",
    );
    // BigFlow's starter INSERTed the ports, so every rerun doubled them; this
    // INSERT adds only the ports the table lacks, so a rerun changes nothing.
    // (A DML statement, not a write_truncate: bqemulator does not write a
    // query's result into a destination table.)
    let populate_ports_table = ds.collect(
        "INSERT INTO `{ports}` (port_name, port_latitude, port_longitude, country, index_number)
         SELECT * FROM (
           SELECT 'GDYNIA' AS port_name, 54.533333 AS port_latitude, 18.55 AS port_longitude,
                  'POL' AS country, '28740' AS index_number
           UNION ALL SELECT 'GDANSK', 54.35, 18.666667, 'POL', '28710'
           UNION ALL SELECT 'SANKT-PETERBURG', 59.933333, 30.3, 'RUS', '28370'
           UNION ALL SELECT 'TEXAS', 34.8, 31.3, 'USA', '28870') AS new_ports
         WHERE new_ports.port_name NOT IN (SELECT port_name FROM `{ports}`)",
    );
    let select_polish_ports = ds
        .write_truncate(
            "polish_ports",
            "SELECT port_name, port_latitude, port_longitude
             FROM `{ports}`
             WHERE country = 'POL'",
        )
        .partitioned(false);
    Workflow::builder("internationalports")
        .schedule_interval("@once")
        .jobs([
            create_ports_table.to_job("create_ports_table"),
            create_polish_ports_table.to_job("create_polish_ports_table"),
            populate_ports_table.to_job("populate_ports_table"),
            select_polish_ports.to_job("select_polish_ports"),
        ])
}

//! The example workflows, one per module.

pub mod configuration;
#[cfg(feature = "bigquery")]
pub mod data_latency;
pub mod external;
pub mod graph;
pub mod hello_world;
#[cfg(feature = "bigquery")]
pub mod internationalports;
pub mod pi_estimator;
#[cfg(feature = "spark-connect")]
pub mod port_tonnage;
pub mod reliability;
pub mod resources;
pub mod scheduling;
pub mod wordcount;

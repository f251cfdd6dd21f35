//! The example workflows, one per module.

pub mod configuration;
pub mod external;
pub mod graph;
pub mod hello_world;
pub mod pi_estimator;
#[cfg(feature = "spark-connect")]
pub mod port_tonnage;
pub mod reliability;
pub mod resources;
pub mod scheduling;
pub mod wordcount;

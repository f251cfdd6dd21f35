//! BigFlow's documentation examples, rebuilt in Rust.
//!
//! Each module of [`workflows`] defines one workflow; [`project`] registers
//! them all. Run one with
//! `cargo run -p bigflow-examples -- run --workflow hello_world --runtime "2020-08-01 10:00:00"`.

pub mod workflows;

use bigflow::Project;

/// Every example workflow.
pub fn project() -> Project {
    use workflows::*;
    let project = bigflow::project!()
        .workflow(hello_world::workflow())
        .workflow(graph::workflow())
        .workflow(scheduling::daily())
        .workflow(scheduling::hourly())
        .workflow(configuration::workflow())
        .workflow(resources::workflow())
        .workflow(external::workflow())
        .workflow(reliability::workflow())
        .workflow(pi_estimator::pyspark_workflow())
        .workflow(wordcount::workflow());
    #[cfg(feature = "bigquery")]
    let project = project
        .workflow(internationalports::workflow())
        .workflow(data_latency::workflow());
    #[cfg(feature = "spark-connect")]
    let project = project
        .workflow(pi_estimator::workflow())
        .workflow(port_tonnage::workflow());
    project
}

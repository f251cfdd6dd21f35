//! Configuration per environment (`dev`, `prod`) and a typed view of it.

use bigflow::prelude::*;

/// The typed configuration (BigFlow's "Konfig").
#[derive(Debug, serde::Deserialize)]
pub struct ExampleConfig {
    /// GCP project.
    pub gcp_project_id: String,
    /// A bucket derived from the project.
    pub bucket: String,
    /// Workers for a pipeline.
    pub max_workers: u32,
}

/// `dev` is master and default; `prod` overrides what differs.
pub fn config() -> Config {
    Config::new(
        "dev",
        [
            ("gcp_project_id", json!("my-project-{env}")),
            ("bucket", json!("{gcp_project_id}-bucket")),
            ("max_workers", json!(2)),
        ],
    )
    .add_configuration("prod", [("max_workers", json!(50))])
}

/// Prints the configuration the job sees.
pub fn workflow() -> WorkflowBuilder {
    Workflow::builder("config_workflow")
        .config(config())
        .jobs([job("print_config", |ctx| {
            let typed: ExampleConfig = ctx.config.deserialize()?;
            println!(
                "env={} project={} bucket={} max_workers={}",
                ctx.env, typed.gcp_project_id, typed.bucket, typed.max_workers
            );
            Ok(())
        })])
}

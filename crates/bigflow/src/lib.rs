//! BigFlow for Rust: batch data workflows that run on a laptop and in Cloud Composer.
//!
//! A project is a binary crate whose `main` hands its workflows to [`cli::main`]:
//!
//! ```no_run
//! use bigflow::prelude::*;
//!
//! fn main() -> std::process::ExitCode {
//!     let hello = job("hello_world", |ctx| {
//!         println!("Hello world on {}!", ctx.runtime_str);
//!         Ok(())
//!     });
//!     let goodbye = job("say_goodbye", |_| {
//!         println!("Goodbye!");
//!         Ok(())
//!     });
//!     bigflow::project!()
//!         .workflow(Workflow::builder("hello_world").jobs([hello, goodbye]))
//!         .main()
//! }
//! ```
//!
//! The model lives in [`bigflow_core`] and is re-exported here.

pub use bigflow_core::*;

/// The memory allocator a project's binary declares (`#[global_allocator]
/// static ALLOCATOR: bigflow::MiMalloc = bigflow::MiMalloc;`, as the
/// starter's `main.rs` does). Pipelines make many small, short-lived values
/// (a word count's words and keys); mimalloc serves them about twice as fast
/// as glibc's allocator, and DataFusion's queries gain too.
pub use mimalloc::MiMalloc;

pub mod backfill;
pub mod cli;
pub mod logging;

/// Apache Spark jobs (feature `spark`).
#[cfg(feature = "spark")]
pub use bigflow_spark as spark;

/// BigQuery: the Dataset API (feature `bigquery`).
#[cfg(feature = "bigquery")]
pub use bigflow_bigquery as bigquery;

/// Apache Beam pipelines in Rust: Pipeline API, DirectRunner, `BeamJob` (feature `beam`).
#[cfg(feature = "beam")]
pub use bigflow_beam as beam;

/// Re-exported so jobs can return `anyhow` errors without another dependency.
pub use anyhow;
/// Re-exported for config values and manifests: `bigflow::json!(2)`.
pub use serde_json::{self, Value, json};

/// A [`Project`] named after the calling crate, with its version and
/// directory (for `resources/` lookup during development).
#[macro_export]
macro_rules! project {
    () => {
        $crate::Project::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            .manifest_dir(env!("CARGO_MANIFEST_DIR"))
    };
}

/// What a project's `main` and workflow modules usually need.
pub mod prelude {
    pub use crate::ProjectMain;
    #[cfg(feature = "beam")]
    pub use bigflow_beam::{
        BeamJob, DoFn, DockerImage, PCollection, ParDo, Pipeline, PipelineOptions, ReadText,
        TestPipeline, TupleTag, WindowFn, WriteText, assert_that, equal_to,
    };
    #[cfg(feature = "bigquery")]
    pub use bigflow_bigquery::{
        Component, Dataset, DatasetConfig, DatasetJob, DatasetManager, Operation, component,
        component_of,
    };
    pub use bigflow_core::{
        CommandJob, Config, Job, JobContext, JobRef, JobResult, JobSettings, StartTimeFactory,
        WithSettings, Workflow, WorkflowBuilder, job,
    };
    pub use serde_json::json;
}

/// Running a project's command line from `main`.
pub trait ProjectMain {
    /// Parses the process arguments, runs the command, returns the exit code.
    fn main(self) -> std::process::ExitCode;
}

impl ProjectMain for Project {
    fn main(self) -> std::process::ExitCode {
        cli::main(self)
    }
}

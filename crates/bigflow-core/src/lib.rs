//! BigFlow's core model, independent of any cloud service.
//!
//! - [`job`]: the [`Job`] trait, its scheduling hints and closure jobs;
//!   [`command`]: a job that runs an external program.
//! - [`workflow`]: [`Workflow`] definitions, validation and run order.
//! - [`schedule`] and [`runtime`]: when workflows run and for which date-time.
//! - [`config`] and [`interpolate`]: per-environment configuration.
//! - [`executor`]: the local runner; [`context`]: what a running job sees.
//! - [`project`] and [`manifest`]: a binary's workflows and their JSON description.
//! - [`resources`]: files shipped in the project's `resources/`.

pub mod command;
pub mod config;
pub mod context;
pub mod executor;
pub mod interpolate;
pub mod job;
pub mod manifest;
pub mod names;
pub mod project;
pub mod resources;
pub mod runtime;
pub mod schedule;
pub mod workflow;

pub use command::CommandJob;
pub use config::{Config, ConfigError, ResolvedConfig};
pub use context::JobContext;
pub use executor::{JobStatus, RunOptions, RunReport, run_workflow};
pub use job::{FnJob, Job, JobEnvironment, JobRef, JobResult, JobSettings, WithSettings, job};
pub use manifest::Manifest;
pub use project::{Project, ProjectError};
pub use runtime::{Runtime, parse_runtime};
pub use schedule::{Schedule, StartTimeFactory};
pub use workflow::{DefinitionError, Workflow, WorkflowBuilder};

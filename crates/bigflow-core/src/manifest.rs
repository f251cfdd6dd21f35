//! The project manifest: a JSON description of every workflow and job.
//!
//! The project binary prints it (`manifest`); the `bigflow` tool reads it to
//! list workflows and to generate Airflow DAGs without linking user code.
//! It is versioned by `manifest_version`.

use serde::{Deserialize, Serialize};

/// The manifest format version this crate writes.
pub const MANIFEST_VERSION: u32 = 1;

/// Everything the tooling needs to know about a project's workflows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub manifest_version: u32,
    /// The `bigflow` library version that wrote it.
    pub bigflow_version: String,
    /// The project.
    pub project: ProjectManifest,
    /// The start time the `start_date`s were computed from, if given.
    pub start_time: Option<String>,
    /// Workflows in the order the project registered them.
    pub workflows: Vec<WorkflowManifest>,
}

/// The project's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectManifest {
    /// Crate name.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// One workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowManifest {
    /// Id.
    pub workflow_id: String,
    /// Preset or cron.
    pub schedule_interval: String,
    /// Name of the start-time factory.
    pub start_time_factory: String,
    /// The factory applied to the manifest's start time (`YYYY-MM-DD HH:MM:SS`).
    pub start_date: Option<String>,
    /// Whether a run waits for the previous run.
    pub depends_on_past: bool,
    /// Kubernetes secrets exposed as environment variables.
    pub secrets: Vec<String>,
    /// The Airflow Variable that names the config environment.
    pub env_variable: String,
    /// Config environments the workflow knows (empty without a config).
    pub config_envs: Vec<String>,
    /// Jobs in sequential order.
    pub jobs: Vec<JobManifest>,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobManifest {
    /// Id.
    pub id: String,
    /// Parent job ids.
    pub depends_on: Vec<String>,
    /// Retries in Airflow.
    pub retry_count: u32,
    /// Pause between retries, seconds.
    pub retry_pause_sec: f64,
    /// Timeout of an attempt, seconds.
    pub execution_timeout_sec: f64,
    /// The environments of the job's own configuration and each one's engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<crate::job::JobEnvironment>,
}

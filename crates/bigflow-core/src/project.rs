//! A project: the workflows a user's binary hands to the CLI.
//!
//! Workflow definitions are validated as they are added; errors are kept and
//! reported by the CLI (exit code 2) rather than panicking in `main`.

use std::path::PathBuf;

use chrono::NaiveDateTime;

use crate::config::Config;
use crate::manifest::{JobManifest, MANIFEST_VERSION, Manifest, ProjectManifest, WorkflowManifest};
use crate::resources::Resources;
use crate::runtime::format_runtime;
use crate::workflow::{DefinitionError, Workflow, WorkflowBuilder};

/// Anything that yields a workflow or a definition error.
pub trait IntoWorkflow {
    /// Builds the workflow.
    fn into_workflow(self) -> Result<Workflow, DefinitionError>;
}

impl IntoWorkflow for Workflow {
    fn into_workflow(self) -> Result<Workflow, DefinitionError> {
        Ok(self)
    }
}

impl IntoWorkflow for WorkflowBuilder {
    fn into_workflow(self) -> Result<Workflow, DefinitionError> {
        self.build()
    }
}

impl IntoWorkflow for Result<Workflow, DefinitionError> {
    fn into_workflow(self) -> Result<Workflow, DefinitionError> {
        self
    }
}

/// A project's errors that are not about one workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    /// A workflow definition is invalid.
    #[error("invalid workflow definition: {0}")]
    Definition(#[from] DefinitionError),
    /// Two workflows share an id.
    #[error("two workflows have the id '{0}'; workflow ids must be unique within a project")]
    DuplicateWorkflow(String),
    /// The workflow asked for does not exist.
    #[error("unknown workflow '{id}'; known workflows: {known}")]
    UnknownWorkflow {
        /// What was asked for.
        id: String,
        /// Known ids.
        known: String,
    },
    /// The workflow asked for was left out of this build by a Cargo feature.
    #[error(
        "workflow '{id}' is not in this build: it needs the project's Cargo feature `{feature}`; \
         enable it for one command with BIGFLOW_FEATURES={feature} (the `bigflow` tool) or \
         `cargo run --features {feature} --`, or for good in Cargo.toml's [features] default \
         (or bigflow.toml's [project] features)"
    )]
    WorkflowNeedsFeature {
        /// What was asked for.
        id: String,
        /// The Cargo feature that builds it.
        feature: String,
    },
    /// The job asked for does not exist.
    #[error("workflow '{workflow}' has no job '{job}'; its jobs: {known}")]
    UnknownJob {
        /// The workflow.
        workflow: String,
        /// What was asked for.
        job: String,
        /// Known ids.
        known: String,
    },
}

/// The workflows of one project binary.
#[derive(Debug, Default)]
pub struct Project {
    name: String,
    version: String,
    manifest_dir: Option<PathBuf>,
    workflows: Vec<Workflow>,
    /// Workflows this build leaves out, with the feature that builds them.
    feature_gated: Vec<(String, String)>,
    errors: Vec<ProjectError>,
    config: Option<Config>,
}

impl Project {
    /// A project; `bigflow::project!()` fills these from Cargo.
    pub fn new(name: &str, version: &str) -> Self {
        Project {
            name: name.to_string(),
            version: version.to_string(),
            ..Default::default()
        }
    }

    /// The crate directory (for `resources/` lookup while developing).
    pub fn manifest_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Adds a workflow (or records why it is invalid).
    pub fn workflow(mut self, workflow: impl IntoWorkflow) -> Self {
        match workflow.into_workflow() {
            Ok(wf) if self.workflows.iter().any(|w| w.id() == wf.id()) => {
                self.errors
                    .push(ProjectError::DuplicateWorkflow(wf.id().to_string()));
            }
            Ok(wf) => self.workflows.push(wf),
            Err(e) => self.errors.push(e.into()),
        }
        self
    }

    /// Records that workflow `id` exists but this build left it out because
    /// Cargo feature `feature` is off, so asking for it says which feature
    /// to enable instead of "unknown workflow":
    ///
    /// ```ignore
    /// #[cfg(not(feature = "bigquery"))]
    /// let project = project.needs_feature("internationalports", "bigquery");
    /// ```
    pub fn needs_feature(mut self, id: &str, feature: &str) -> Self {
        self.feature_gated
            .push((id.to_string(), feature.to_string()));
        self
    }

    /// Workflows this build leaves out, with the Cargo feature each needs.
    pub fn feature_gated(&self) -> &[(String, String)] {
        &self.feature_gated
    }

    /// A configuration for workflows that have none of their own.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The project name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The crate version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The first definition error, if any.
    pub fn validate(&self) -> Result<(), ProjectError> {
        self.errors.first().cloned().map_or(Ok(()), Err)
    }

    /// Valid workflows in registration order.
    pub fn workflows(&self) -> &[Workflow] {
        &self.workflows
    }

    /// A workflow by id.
    pub fn find_workflow(&self, id: &str) -> Result<&Workflow, ProjectError> {
        if let Some(wf) = self.workflows.iter().find(|w| w.id() == id) {
            return Ok(wf);
        }
        if let Some((_, feature)) = self.feature_gated.iter().find(|(gated, _)| gated == id) {
            return Err(ProjectError::WorkflowNeedsFeature {
                id: id.to_string(),
                feature: feature.clone(),
            });
        }
        Err(ProjectError::UnknownWorkflow {
            id: id.to_string(),
            known: self
                .workflows
                .iter()
                .map(|w| w.id())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// A workflow and one of its jobs, checked.
    pub fn find_job(&self, workflow_id: &str, job_id: &str) -> Result<&Workflow, ProjectError> {
        let wf = self.find_workflow(workflow_id)?;
        if wf.job(job_id).is_none() {
            return Err(ProjectError::UnknownJob {
                workflow: workflow_id.to_string(),
                job: job_id.to_string(),
                known: wf.job_ids().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(wf)
    }

    /// The configuration a workflow uses: its own, else the project's.
    pub fn config_for<'a>(&'a self, workflow: &'a Workflow) -> Option<&'a Config> {
        workflow.config().or(self.config.as_ref())
    }

    /// The resource finder for this project.
    pub fn resources(&self) -> Resources {
        Resources::new(self.manifest_dir.clone())
    }

    /// The manifest; `start_time` fills each workflow's `start_date`.
    pub fn manifest(&self, start_time: Option<NaiveDateTime>) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            bigflow_version: env!("CARGO_PKG_VERSION").to_string(),
            project: ProjectManifest {
                name: self.name.clone(),
                version: self.version.clone(),
            },
            start_time: start_time.as_ref().map(format_runtime),
            workflows: self
                .workflows
                .iter()
                .map(|wf| WorkflowManifest {
                    workflow_id: wf.id().to_string(),
                    schedule_interval: wf.schedule().to_string(),
                    start_time_factory: wf.start_time_factory().name().to_string(),
                    start_date: start_time
                        .map(|t| format_runtime(&wf.start_time_factory().apply(t))),
                    depends_on_past: wf.depends_on_past(),
                    secrets: wf.secrets().to_vec(),
                    env_variable: wf.env_variable().to_string(),
                    config_envs: self
                        .config_for(wf)
                        .map(|c| c.env_names().map(str::to_string).collect())
                        .unwrap_or_default(),
                    jobs: wf
                        .sequential_order()
                        .map(|j| JobManifest {
                            id: j.id().to_string(),
                            depends_on: wf.parents(j.id()).to_vec(),
                            retry_count: j.job().retry_count(),
                            retry_pause_sec: j.job().retry_pause().as_secs_f64(),
                            execution_timeout_sec: j.job().execution_timeout().as_secs_f64(),
                            environments: j.job().environments().unwrap_or_default(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::job;

    fn project() -> Project {
        Project::new("p", "0.1.0")
            .workflow(Workflow::builder("hello").jobs([job("a", |_| Ok(()))]))
            .needs_feature("ports", "bigquery")
    }

    #[test]
    fn a_feature_gated_workflow_names_its_feature() {
        let p = project();
        assert!(p.find_workflow("hello").is_ok());
        let err = p.find_workflow("ports").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "workflow 'ports' is not in this build: it needs the project's Cargo feature `bigquery`; enable it for one command with BIGFLOW_FEATURES=bigquery"
            ),
            "{err}"
        );
        assert_eq!(
            p.find_workflow("nope").unwrap_err().to_string(),
            "unknown workflow 'nope'; known workflows: hello"
        );
        assert_eq!(
            p.feature_gated(),
            [("ports".to_string(), "bigquery".to_string())]
        );
        assert_eq!(p.manifest(None).workflows.len(), 1);
    }
}

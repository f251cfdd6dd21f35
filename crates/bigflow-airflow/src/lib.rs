//! Airflow DAG files for BigFlow workflows, for Cloud Composer.
//!
//! One file per workflow, rendered with minijinja from `templates/dag.py.j2`.
//! Each job becomes a `KubernetesPodOperator` that runs the project binary in
//! the project's image: `run --job WF.JOB --runtime <logical date> --config
//! {{ var.value.<env_variable> }}`. The file imports and runs on Airflow
//! 2.9+ and 3.x (`schedule=`, `logical_date`, the provider's current import
//! paths) and stays small so the scheduler parses it quickly.
//!
//! Every value enters the file through the `py` filter (an escaped Python
//! literal, see [`python`]); values that also land in Airflow's templated
//! fields or in Python identifiers are validated first and rejected with a
//! message naming the field.

pub mod python;

use std::collections::HashMap;

use bigflow_core::manifest::WorkflowManifest;
use bigflow_core::names::{is_docker_tag, is_identifier};
use bigflow_core::runtime::parse_runtime;
use bigflow_core::schedule::Schedule;
use chrono::{Datelike, NaiveDateTime, Timelike};
use minijinja::{Environment, context};
use serde::Serialize;

/// The Kubernetes namespace of user workloads on Composer 2 and 3.
pub const COMPOSER_NAMESPACE: &str = "composer-user-workloads";

/// The runtime argument: Airflow's logical date as `YYYY-MM-DD HH:MM:SS`.
pub const RUNTIME_TEMPLATE: &str =
    "{{ (logical_date or dag_run.run_after).strftime(\"%Y-%m-%d %H:%M:%S\") }}";

/// Default task timeout in `default_args` (BigFlow's 3 hours).
const DEFAULT_TIMEOUT_SEC: f64 = 10800.0;

/// Why a DAG cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// A value that must be an identifier is not.
    #[error(
        "workflow '{workflow}': {field} '{value}' is not an identifier (ASCII letters, digits, '_'); it cannot be used in a DAG"
    )]
    BadIdentifier {
        /// Workflow.
        workflow: String,
        /// Which field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// The workflow has no jobs.
    #[error("workflow '{workflow}' has no jobs; a DAG needs at least one task")]
    NoJobs {
        /// Workflow.
        workflow: String,
    },
    /// Two jobs map to the same Airflow task id or pod name.
    #[error(
        "workflow '{workflow}': jobs '{first}' and '{second}' both become task '{task}' in Airflow ('_' becomes '-', pod names are lower case); rename one"
    )]
    TaskCollision {
        /// Workflow.
        workflow: String,
        /// First job.
        first: String,
        /// Second job.
        second: String,
        /// The shared task id.
        task: String,
    },
    /// The schedule would be rejected by Airflow.
    #[error("workflow '{workflow}': {message}")]
    BadSchedule {
        /// Workflow.
        workflow: String,
        /// Why.
        message: String,
    },
    /// The start date is missing or malformed.
    #[error("workflow '{workflow}': start date {value:?} is not 'YYYY-MM-DD HH:MM:SS'")]
    BadStartDate {
        /// Workflow.
        workflow: String,
        /// What the manifest held.
        value: Option<String>,
    },
    /// A dependency names a job the workflow does not have.
    #[error("workflow '{workflow}': job '{job}' depends on unknown job '{parent}'")]
    UnknownParent {
        /// Workflow.
        workflow: String,
        /// The job.
        job: String,
        /// The unknown parent.
        parent: String,
    },
    /// The image reference is not a valid Docker reference.
    #[error("docker image '{image}' is not valid: {reason}")]
    BadImage {
        /// The reference.
        image: String,
        /// Why.
        reason: String,
    },
    /// Rendering failed (a bug, or a value the template cannot express).
    #[error("rendering the DAG of workflow '{workflow}' failed: {message}")]
    Template {
        /// Workflow.
        workflow: String,
        /// minijinja's message.
        message: String,
    },
}

/// What a DAG needs besides the workflow.
#[derive(Debug, Clone)]
pub struct DagSettings {
    /// `<docker_repository>:<version>`, see [`image_reference`].
    pub image: String,
    /// The project version (a Docker tag).
    pub version: String,
    /// When the DAGs were built (part of the DAG id).
    pub build_start: NaiveDateTime,
    /// The project binary's path inside the image.
    pub binary_in_image: String,
    /// Kubernetes namespace of the pods.
    pub namespace: String,
}

/// A rendered DAG file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedDag {
    /// The DAG id.
    pub dag_id: String,
    /// File name inside the DAGs folder.
    pub file_name: String,
    /// The Python source.
    pub source: String,
}

/// Validates `repository` (e.g. `europe-west1-docker.pkg.dev/p/r/image`) and
/// joins it with the version tag.
pub fn image_reference(repository: &str, version: &str) -> Result<String, DagError> {
    let bad = |reason: &str| DagError::BadImage {
        image: format!("{repository}:{version}"),
        reason: reason.to_string(),
    };
    if repository.is_empty() {
        return Err(bad("the repository is empty"));
    }
    let (host, path) = repository.split_once('/').unwrap_or(("", repository));
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    let path_ok = path.split('/').all(|seg| {
        !seg.is_empty()
            && seg.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    });
    if !host_ok || !path_ok {
        return Err(bad(
            "a repository is HOST[:PORT]/PATH with lower-case letters, digits, '.', '_', '-' and '/' (e.g. europe-west1-docker.pkg.dev/project/repo/image)",
        ));
    }
    if !is_docker_tag(version) {
        return Err(bad("the version is not a valid Docker tag"));
    }
    Ok(format!("{repository}:{version}"))
}

/// The DAG id: `<workflow>__v<version, . - + as _>__<build start %Y_%m_%d_%H_%M_%S>`.
pub fn dag_id(workflow_id: &str, version: &str, build_start: &NaiveDateTime) -> String {
    let v: String = version
        .chars()
        .map(|c| if matches!(c, '.' | '-' | '+') { '_' } else { c })
        .collect();
    format!(
        "{workflow_id}__v{v}__{}",
        build_start.format("%Y_%m_%d_%H_%M_%S")
    )
}

#[derive(Serialize)]
struct JobView {
    var: String,
    task_id: String,
    pod_name: String,
    spec: String,
    retry_count: u32,
    retry_pause_sec: f64,
    execution_timeout_sec: f64,
    parents: Vec<String>,
}

#[derive(Serialize)]
struct SecretView {
    name: String,
    secret: String,
}

/// The template environment, built once per process (parsing the template
/// per DAG dominated `build-dags` of large projects).
fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::LazyLock<Environment<'static>> =
        std::sync::LazyLock::new(new_environment);
    &ENV
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("default delimiters are valid"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("py", |v: minijinja::Value| python::py_literal(&v));
    env.add_filter("ident", |v: String| {
        if is_identifier(&v) {
            Ok(v)
        } else {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("'{v}' is not an identifier"),
            ))
        }
    });
    env.add_template("dag.py", include_str!("../templates/dag.py.j2"))
        .expect("the DAG template parses");
    env
}

/// Renders the DAG file of one workflow.
pub fn render_dag(wf: &WorkflowManifest, settings: &DagSettings) -> Result<RenderedDag, DagError> {
    let workflow = wf.workflow_id.clone();
    // The image lands in a templated field of the operator: only a valid reference may.
    let (repository, tag) = settings
        .image
        .rsplit_once(':')
        .unwrap_or((&settings.image, ""));
    image_reference(repository, tag)?;
    if tag != settings.version {
        return Err(DagError::BadImage {
            image: settings.image.clone(),
            reason: format!("its tag is not the project version {}", settings.version),
        });
    }
    let ident = |field: &'static str, value: &str| {
        if is_identifier(value) {
            Ok(())
        } else {
            Err(DagError::BadIdentifier {
                workflow: workflow.clone(),
                field,
                value: value.to_string(),
            })
        }
    };
    ident("workflow id", &wf.workflow_id)?;
    ident("env_variable", &wf.env_variable)?;
    for s in &wf.secrets {
        ident("secret", s)?;
    }
    if wf.jobs.is_empty() {
        return Err(DagError::NoJobs { workflow });
    }
    Schedule::parse(&wf.schedule_interval).map_err(|e| DagError::BadSchedule {
        workflow: workflow.clone(),
        message: e.to_string(),
    })?;
    let start = wf
        .start_date
        .as_deref()
        .and_then(|s| parse_runtime(s).ok())
        .ok_or_else(|| DagError::BadStartDate {
            workflow: workflow.clone(),
            value: wf.start_date.clone(),
        })?;
    let mut tasks: HashMap<String, &str> = HashMap::new();
    let mut jobs = Vec::new();
    for job in &wf.jobs {
        ident("job id", &job.id)?;
        let task_id = job.id.replace('_', "-");
        let pod_name = task_id.to_ascii_lowercase();
        if let Some(first) = tasks.insert(pod_name.clone(), &job.id) {
            return Err(DagError::TaskCollision {
                workflow,
                first: first.to_string(),
                second: job.id.clone(),
                task: pod_name,
            });
        }
        for parent in &job.depends_on {
            if !wf.jobs.iter().any(|j| &j.id == parent) {
                return Err(DagError::UnknownParent {
                    workflow,
                    job: job.id.clone(),
                    parent: parent.clone(),
                });
            }
        }
        jobs.push(JobView {
            var: format!("t_{}", job.id),
            task_id,
            pod_name,
            spec: format!("{}.{}", wf.workflow_id, job.id),
            retry_count: job.retry_count,
            retry_pause_sec: job.retry_pause_sec,
            execution_timeout_sec: job.execution_timeout_sec,
            parents: job.depends_on.iter().map(|p| format!("t_{p}")).collect(),
        });
    }
    let dag_id = dag_id(&wf.workflow_id, &settings.version, &settings.build_start);
    let secrets: Vec<SecretView> = wf
        .secrets
        .iter()
        .map(|s| SecretView {
            name: s.clone(),
            secret: s.replace('_', "-"),
        })
        .collect();
    let ctx = context! {
        workflow_id => &wf.workflow_id,
        version => &settings.version,
        image => &settings.image,
        binary => &settings.binary_in_image,
        namespace => &settings.namespace,
        start_date_text => start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        start_date => vec![start.year() as i64, i64::from(start.month()), i64::from(start.day()), i64::from(start.hour()), i64::from(start.minute()), i64::from(start.second())],
        runtime_template => RUNTIME_TEMPLATE,
        config_template => format!("{{{{ var.value.{} }}}}", wf.env_variable),
        depends_on_past => wf.depends_on_past,
        default_timeout => DEFAULT_TIMEOUT_SEC,
        dag_id => &dag_id,
        schedule => &wf.schedule_interval,
        secrets => minijinja::value::Serde(&secrets),
        jobs => minijinja::value::Serde(&jobs),
    };
    let source = environment()
        .get_template("dag.py")
        .and_then(|t| t.render(ctx))
        .map_err(|e| DagError::Template {
            workflow: workflow.clone(),
            message: format!("{e:#}"),
        })?;
    Ok(RenderedDag {
        file_name: format!("{dag_id}_dag.py"),
        dag_id,
        source,
    })
}

#[cfg(test)]
mod tests;

//! The context a job runs in: runtime, workflow, environment and config.
//!
//! Besides BigFlow's fields, the context carries the attempt number and a
//! cancellation flag. The local runner raises the flag when an attempt
//! exceeds its `execution_timeout`; [`JobContext::sleep`] and
//! [`JobContext::check_cancelled`] let long-running Rust code stop promptly,
//! and [`CommandJob`](crate::command::CommandJob) kills its child process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::ResolvedConfig;
use crate::resources::{ResourceError, Resources};
use crate::runtime::{Runtime, format_runtime};

/// A flag shared between the runner and a running attempt (or, for an
/// interrupt, between a signal handler and the runner).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl PartialEq for CancelToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CancelToken {}

impl CancelToken {
    /// The flag itself, for code that raises it from a signal handler
    /// (e.g. `signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    /// Raises the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether the flag is raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Returned by [`JobContext::check_cancelled`] once the runner stopped the attempt.
#[derive(Debug, thiserror::Error)]
#[error("job {job_id} was cancelled (execution timeout exceeded)")]
pub struct Cancelled {
    /// The cancelled job.
    pub job_id: String,
}

/// Everything a job knows about the run it is part of.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The runtime the job runs for.
    pub runtime: Runtime,
    /// The runtime as `YYYY-MM-DD HH:MM:SS`.
    pub runtime_str: String,
    /// The workflow's id.
    pub workflow_id: String,
    /// The job's id.
    pub job_id: String,
    /// The configuration environment's name (`--config`, `bf_env` or the default).
    pub env: String,
    /// The workflow's configuration resolved for `env`.
    pub config: ResolvedConfig,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    resources: Resources,
    cancel: CancelToken,
}

impl JobContext {
    /// A context; the runner makes these, tests may too.
    pub fn new(runtime: Runtime, workflow_id: &str, job_id: &str, config: ResolvedConfig) -> Self {
        JobContext {
            runtime,
            runtime_str: format_runtime(&runtime),
            workflow_id: workflow_id.to_string(),
            job_id: job_id.to_string(),
            env: config.env().to_string(),
            config,
            attempt: 1,
            resources: Resources::default(),
            cancel: CancelToken::default(),
        }
    }

    /// Finds resources with `resources` (e.g. the project's, outside a run).
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    pub(crate) fn with_run_state(
        mut self,
        attempt: u32,
        resources: Resources,
        cancel: CancelToken,
    ) -> Self {
        self.attempt = attempt;
        self.resources = resources;
        self.cancel = cancel;
        self
    }

    /// The absolute path of a file under the project's `resources/`.
    pub fn resource(&self, name: &str) -> Result<PathBuf, ResourceError> {
        self.resources.find(name)
    }

    /// The resource finder of this run.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The attempt's cancel token, for code that must notice a cancellation
    /// while it waits on something else (a cloud job's poll loop).
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether the runner has stopped this attempt (its timeout passed).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// An error once the attempt is cancelled; call it between steps of long work.
    pub fn check_cancelled(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled {
                job_id: self.job_id.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// Sleeps, waking early with an error if the attempt is cancelled.
    pub fn sleep(&self, duration: Duration) -> Result<(), Cancelled> {
        let end = Instant::now() + duration;
        loop {
            self.check_cancelled()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

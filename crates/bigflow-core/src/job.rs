//! Jobs: the unit of work a workflow schedules.
//!
//! Anything with an id and an `execute(&JobContext)` is a [`Job`]. The
//! scheduling hints (`retry_count`, `retry_pause`, `execution_timeout`) have
//! BigFlow's defaults and are what the generated Airflow tasks use; the local
//! runner enforces the timeout and, when asked, the retries.
//! [`FnJob`] wraps a closure; [`CommandJob`](crate::command::CommandJob) runs
//! an external program.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::context::JobContext;

/// BigFlow's default number of retries of a failed job (in Airflow).
pub const DEFAULT_RETRY_COUNT: u32 = 3;
/// BigFlow's default pause between retries.
pub const DEFAULT_RETRY_PAUSE: Duration = Duration::from_secs(60);
/// BigFlow's default execution timeout: 3 hours.
pub const DEFAULT_EXECUTION_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// What a job's `execute` returns.
pub type JobResult = anyhow::Result<()>;

/// A unit of work run for a runtime.
pub trait Job: Send + Sync + 'static {
    /// The job's id: letters, digits and `_`, not starting with a digit.
    fn id(&self) -> &str;

    /// Does the work for `ctx.runtime`.
    fn execute(&self, ctx: &JobContext) -> JobResult;

    /// All scheduling hints at once; the three methods below read them.
    fn settings(&self) -> JobSettings {
        JobSettings::default()
    }

    /// How many times Airflow (and `run --retries`) retries a failed attempt.
    fn retry_count(&self) -> u32 {
        self.settings().retry_count
    }

    /// Pause between attempts.
    fn retry_pause(&self) -> Duration {
        self.settings().retry_pause
    }

    /// Longest an attempt may run before it is stopped.
    fn execution_timeout(&self) -> Duration {
        self.settings().execution_timeout
    }

    /// How long a cancelled attempt (timeout or Ctrl-C) may take to clean up
    /// what it started (cancel a cloud job, delete a cluster) before the run
    /// ends without it; the run's own grace (5 s) when this is shorter.
    fn cleanup_grace(&self) -> Duration {
        Duration::ZERO
    }

    /// The configuration environments the job can run in and the engine each
    /// uses, when the job carries a configuration of its own (a BigQuery
    /// dataset's); `None` for any environment. A run in an environment
    /// outside this list is refused before anything starts; `config` and the
    /// manifest show the engines.
    fn environments(&self) -> Option<Vec<JobEnvironment>> {
        None
    }
}

/// An environment a job can run in, and the engine it uses there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobEnvironment {
    /// The environment's name (`dev`, `prod`).
    pub name: String,
    /// The engine, for people and for checks: e.g. `bigquery` or `local warehouse`.
    pub engine: String,
}

/// Builder methods for the scheduling hints of any job that stores its
/// [`JobSettings`] (the ready-made jobs do).
pub trait WithSettings: Sized {
    /// The stored settings.
    fn settings_mut(&mut self) -> &mut JobSettings;

    /// Sets the retry count.
    fn with_retry_count(mut self, n: u32) -> Self {
        self.settings_mut().retry_count = n;
        self
    }

    /// Sets the pause between retries.
    fn with_retry_pause(mut self, pause: Duration) -> Self {
        self.settings_mut().retry_pause = pause;
        self
    }

    /// Sets the execution timeout.
    fn with_execution_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut().execution_timeout = timeout;
        self
    }
}

/// A shared handle to a job; workflows hold these.
#[derive(Clone)]
pub struct JobRef(pub(crate) Arc<dyn Job>);

impl JobRef {
    /// Wraps a job.
    pub fn new(job: impl Job) -> Self {
        JobRef(Arc::new(job))
    }

    /// The wrapped job.
    pub fn job(&self) -> &dyn Job {
        &*self.0
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        self.0.id()
    }

    /// Whether both handles point to the same job object.
    pub fn same_as(&self, other: &JobRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<J: Job> From<J> for JobRef {
    fn from(job: J) -> Self {
        JobRef::new(job)
    }
}

impl From<&JobRef> for JobRef {
    fn from(job: &JobRef) -> Self {
        job.clone()
    }
}

impl fmt::Debug for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Job({})", self.id())
    }
}

/// Scheduling hints shared by the ready-made job types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSettings {
    /// See [`Job::retry_count`].
    pub retry_count: u32,
    /// See [`Job::retry_pause`].
    pub retry_pause: Duration,
    /// See [`Job::execution_timeout`].
    pub execution_timeout: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            retry_count: DEFAULT_RETRY_COUNT,
            retry_pause: DEFAULT_RETRY_PAUSE,
            execution_timeout: DEFAULT_EXECUTION_TIMEOUT,
        }
    }
}

/// A job made of a closure: `bigflow::job("hello", |ctx| { ...; Ok(()) })`.
pub struct FnJob {
    id: String,
    settings: JobSettings,
    f: Box<dyn Fn(&JobContext) -> JobResult + Send + Sync>,
}

/// Makes a job from an id and a closure.
pub fn job(
    id: impl Into<String>,
    f: impl Fn(&JobContext) -> JobResult + Send + Sync + 'static,
) -> FnJob {
    FnJob {
        id: id.into(),
        settings: JobSettings::default(),
        f: Box::new(f),
    }
}

impl WithSettings for FnJob {
    fn settings_mut(&mut self) -> &mut JobSettings {
        &mut self.settings
    }
}

impl Job for FnJob {
    fn id(&self) -> &str {
        &self.id
    }
    fn execute(&self, ctx: &JobContext) -> JobResult {
        (self.f)(ctx)
    }
    fn settings(&self) -> JobSettings {
        self.settings
    }
}

pub use crate::names::is_identifier;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "job_1", "_x", "HelloWorld"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "1job", "a-b", "a.b", "zażółć", "a b"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn fn_job_defaults_are_bigflows_and_builders_set_them() {
        let j = job("x", |_| Ok(()));
        assert_eq!(j.retry_count(), 3);
        assert_eq!(j.retry_pause(), Duration::from_secs(60));
        assert_eq!(j.execution_timeout(), Duration::from_secs(10800));
        let j = job("x", |_| Ok(()))
            .with_retry_count(1)
            .with_retry_pause(Duration::from_secs(5))
            .with_execution_timeout(Duration::from_secs(9));
        assert_eq!(
            (j.retry_count(), j.retry_pause(), j.execution_timeout()),
            (1, Duration::from_secs(5), Duration::from_secs(9))
        );
    }
}

//! [`CommandJob`]: a job that runs an external program.
//!
//! BigFlow's "you are not limited to these technologies": any program can be
//! a job. Arguments may use `{runtime}`, `{runtime_date}`, `{env}`,
//! `{workflow_id}`, `{job_id}` and any config property as `{name}`. The
//! program also gets `BIGFLOW_RUNTIME`, `BIGFLOW_ENV`, `BIGFLOW_WORKFLOW_ID`,
//! `BIGFLOW_JOB_ID` and `BIGFLOW_CONFIG` (the resolved config as JSON) in its
//! environment. A non-zero exit fails the job; when the attempt times out
//! the child is killed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::context::JobContext;
use crate::interpolate::interpolate;
use crate::job::{Job, JobResult, JobSettings, WithSettings};

/// Runs `program args…` with the runtime and config passed in.
#[derive(Debug, Clone)]
pub struct CommandJob {
    id: String,
    program: String,
    args: Vec<String>,
    current_dir: Option<PathBuf>,
    settings: JobSettings,
}

impl CommandJob {
    /// A job `id` running `program`.
    pub fn new(id: impl Into<String>, program: impl Into<String>) -> Self {
        CommandJob {
            id: id.into(),
            program: program.into(),
            args: Vec::new(),
            current_dir: None,
            settings: JobSettings::default(),
        }
    }

    /// Adds an argument (placeholders allowed).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs the program in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    fn expand(&self, ctx: &JobContext, text: &str) -> anyhow::Result<String> {
        let date = ctx.runtime.format("%Y-%m-%d").to_string();
        interpolate(text, |name| match name {
            "runtime" => Some(ctx.runtime_str.clone()),
            "runtime_date" => Some(date.clone()),
            "env" => Some(ctx.env.clone()),
            "workflow_id" => Some(ctx.workflow_id.clone()),
            "job_id" => Some(ctx.job_id.clone()),
            other => ctx.config.get_str(other).ok(),
        })
        .with_context(|| format!("argument '{text}' of job {}", self.id))
    }
}

/// Kills the child and, on Unix, every process of its group.
fn kill_tree(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the group we created; no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

impl WithSettings for CommandJob {
    fn settings_mut(&mut self) -> &mut JobSettings {
        &mut self.settings
    }
}

impl Job for CommandJob {
    fn id(&self) -> &str {
        &self.id
    }

    fn execute(&self, ctx: &JobContext) -> JobResult {
        let args = self
            .args
            .iter()
            .map(|a| self.expand(ctx, a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config_json = serde_json::to_string(ctx.config.properties())?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&args)
            .env("BIGFLOW_RUNTIME", &ctx.runtime_str)
            .env("BIGFLOW_ENV", &ctx.env)
            .env("BIGFLOW_WORKFLOW_ID", &ctx.workflow_id)
            .env("BIGFLOW_JOB_ID", &ctx.job_id)
            .env("BIGFLOW_CONFIG", config_json)
            .stdin(Stdio::null());
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        // Its own process group, so a timeout stops the program's children too.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "could not start '{}' for job {}; is it installed and on PATH?",
                self.program, self.id
            )
        })?;
        loop {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("'{}' exited with {status}", self.program);
            }
            if ctx.is_cancelled() {
                kill_tree(&mut child);
                let _ = child.wait();
                bail!(
                    "'{}' was killed: the attempt exceeded its execution timeout",
                    self.program
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn settings(&self) -> JobSettings {
        self.settings
    }
}

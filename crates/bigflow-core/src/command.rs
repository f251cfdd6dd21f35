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
}

/// Fills `{runtime}`, `{runtime_date}`, `{env}`, `{workflow_id}`, `{job_id}`
/// and config properties (`{name}`) in a program argument.
pub fn expand_argument(ctx: &JobContext, text: &str) -> anyhow::Result<String> {
    let date = ctx.runtime.format("%Y-%m-%d").to_string();
    Ok(interpolate(text, |name| match name {
        "runtime" => Some(ctx.runtime_str.clone()),
        "runtime_date" => Some(date.clone()),
        "env" => Some(ctx.env.clone()),
        "workflow_id" => Some(ctx.workflow_id.clone()),
        "job_id" => Some(ctx.job_id.clone()),
        other => ctx.config.get_str(other).ok(),
    })?)
}

/// Runs `cmd` as a job's work: with the `BIGFLOW_*` variables, stdin closed,
/// in its own process group, failing on a non-zero exit and killed (with
/// its children) when the attempt is cancelled. Every job that drives an
/// external program goes through here.
pub fn run_program(mut cmd: Command, ctx: &JobContext, program: &str) -> JobResult {
    let config_json = serde_json::to_string(ctx.config.properties())?;
    cmd.env("BIGFLOW_RUNTIME", &ctx.runtime_str)
        .env("BIGFLOW_ENV", &ctx.env)
        .env("BIGFLOW_WORKFLOW_ID", &ctx.workflow_id)
        .env("BIGFLOW_JOB_ID", &ctx.job_id)
        .env("BIGFLOW_CONFIG", config_json)
        .stdin(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "could not start '{program}' for job {}; is it installed and on PATH?",
            ctx.job_id
        )
    })?;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("'{program}' exited with {status}");
        }
        if ctx.is_cancelled() {
            kill_tree(&mut child);
            let _ = child.wait();
            bail!("'{program}' was killed: the attempt exceeded its execution timeout");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the child and, on Unix, every process of its group.
fn kill_tree(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id())
        && pid > 1
    {
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
            .map(|a| {
                expand_argument(ctx, a)
                    .with_context(|| format!("argument '{a}' of job {}", self.id))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&args);
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        run_program(cmd, ctx, &self.program)
    }

    fn settings(&self) -> JobSettings {
        self.settings
    }
}

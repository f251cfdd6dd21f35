//! The local runner: runs a workflow's jobs for one runtime on this machine.
//!
//! With `parallelism = 1` jobs run one at a time in BigFlow's sequential
//! order. With more, every job whose parents have succeeded starts as soon as
//! a slot is free (order of preference: the sequential order). Each attempt
//! runs on its own thread and is bounded by the job's `execution_timeout`:
//! past it the attempt is cancelled (cooperative Rust code sees
//! [`JobContext::is_cancelled`](crate::JobContext::is_cancelled), external
//! programs are killed), reported as timed out, and the run moves on without
//! waiting for it. With `retries` on, failed or timed-out attempts are
//! retried after the job's `retry_pause`, up to `retry_count` times. A failed
//! job skips its descendants but never stops independent jobs, and every
//! failure is logged when it happens.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{error, info, info_span, warn};

use crate::config::ResolvedConfig;
use crate::context::{CancelToken, JobContext};
use crate::resources::Resources;
use crate::runtime::{Runtime, format_runtime};
use crate::workflow::Workflow;

/// How a local run behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Jobs running at once (at least 1).
    pub parallelism: usize,
    /// Whether failed attempts are retried as Airflow would.
    pub retries: bool,
    /// How long a run waits, at its end, for timed-out attempts to stop
    /// after cancellation before leaving them behind.
    pub cancel_grace: Duration,
    /// Raised by the CLI on SIGINT/SIGTERM: running attempts are cancelled
    /// (so they can stop programs and delete what they created), nothing new
    /// starts, and the run ends after the grace period.
    pub interrupt: Option<CancelToken>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            parallelism: 1,
            retries: false,
            cancel_grace: Duration::from_secs(5),
            interrupt: None,
        }
    }
}

/// What became of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// The last attempt succeeded.
    Succeeded,
    /// The last attempt returned an error or panicked.
    Failed,
    /// The last attempt exceeded its execution timeout and was stopped.
    TimedOut,
    /// Not run because a job it depends on did not succeed.
    Skipped,
    /// Stopped or never started because the run was interrupted.
    Interrupted,
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Skipped => "skipped",
            JobStatus::Interrupted => "interrupted",
        })
    }
}

/// One job's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// The job.
    pub job_id: String,
    /// What became of it.
    pub status: JobStatus,
    /// Attempts started.
    pub attempts: u32,
    /// From the first attempt's start to the last one's end.
    pub duration: Duration,
    /// The last error, if any.
    pub error: Option<String>,
}

/// The result of a run: one outcome per selected job, in sequential order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The workflow.
    pub workflow_id: String,
    /// The runtime.
    pub runtime: Runtime,
    /// Per-job outcomes.
    pub outcomes: Vec<JobOutcome>,
    /// Jobs whose cancelled attempt had not returned when the cancel grace
    /// ended: whatever they started may still be running.
    pub left_running: Vec<String>,
}

impl RunReport {
    /// Whether the run was interrupted (SIGINT/SIGTERM).
    pub fn interrupted(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| o.status == JobStatus::Interrupted)
    }

    /// Whether every job succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| o.status == JobStatus::Succeeded)
    }

    /// A table of job, status, attempts and duration.
    pub fn summary_table(&self) -> String {
        let w = self
            .outcomes
            .iter()
            .map(|o| o.job_id.len())
            .max()
            .unwrap_or(0)
            .max(3);
        let mut out = format!(
            "{:w$}  {:9}  {:>8}  {:>9}\n",
            "JOB", "STATUS", "ATTEMPTS", "DURATION"
        );
        for o in &self.outcomes {
            let _ = writeln!(
                out,
                "{:w$}  {:9}  {:>8}  {:>8.3}s",
                o.job_id,
                o.status.to_string(),
                o.attempts,
                o.duration.as_secs_f64()
            );
        }
        for job in &self.left_running {
            let _ = writeln!(
                out,
                "warning: job {job} did not finish stopping; what it started may still be running"
            );
        }
        out
    }
}

enum State {
    Pending,
    Waiting {
        until: Instant,
    },
    Running {
        deadline: Instant,
        cancel: CancelToken,
    },
    Done(JobStatus),
}

struct Track {
    state: State,
    attempts: u32,
    first_start: Option<Instant>,
    finished: Option<Instant>,
    error: Option<String>,
}

struct Finished {
    index: usize,
    attempt: u32,
    result: Result<(), String>,
}

/// Runs `job_ids` of `workflow` (all of them when `None`) for `runtime`.
/// With a job selection, only those jobs run and dependencies among them are
/// kept (BigFlow's `run_job` runs a single job regardless of its parents).
pub fn run_workflow(
    workflow: &Workflow,
    job_ids: Option<&[&str]>,
    runtime: Runtime,
    config: &ResolvedConfig,
    resources: &Resources,
    options: &RunOptions,
) -> RunReport {
    let jobs: Vec<_> = workflow
        .sequential_order()
        .filter(|j| job_ids.is_none_or(|ids| ids.contains(&j.id())))
        .cloned()
        .collect();
    let index_of: HashMap<&str, usize> =
        jobs.iter().enumerate().map(|(i, j)| (j.id(), i)).collect();
    let parents: Vec<Vec<usize>> = jobs
        .iter()
        .map(|j| {
            workflow
                .parents(j.id())
                .iter()
                .filter_map(|p| index_of.get(p.as_str()).copied())
                .collect()
        })
        .collect();
    let mut tracks: Vec<Track> = jobs
        .iter()
        .map(|_| Track {
            state: State::Pending,
            attempts: 0,
            first_start: None,
            finished: None,
            error: None,
        })
        .collect();
    let runtime_str = format_runtime(&runtime);
    // Labels every log entry of this run, so one run's logs can be found
    // among retries and reruns of the same runtime.
    let run_id = crate::names::random_hex(12);
    let _run =
        info_span!("run", workflow_id = workflow.id(), runtime = %runtime_str, run_id = %run_id)
            .entered();
    let parallelism = options.parallelism.max(1);
    let (tx, rx) = mpsc::channel::<Finished>();
    // Timed-out attempts that have not yet returned: (job index, attempt).
    let mut stopping: Vec<(usize, u32)> = Vec::new();

    let interrupted = || {
        options
            .interrupt
            .as_ref()
            .is_some_and(CancelToken::is_cancelled)
    };
    loop {
        if interrupted() {
            for (i, t) in tracks.iter_mut().enumerate() {
                match &t.state {
                    State::Running { cancel, .. } => {
                        cancel.cancel();
                        stopping.push((i, t.attempts));
                        warn!(workflow_id = workflow.id(), job_id = jobs[i].id(), runtime = %runtime_str, "job {} interrupted; stopping it", jobs[i].id());
                        t.error = Some("interrupted; the attempt was stopped".into());
                        t.finished = Some(Instant::now());
                        t.state = State::Done(JobStatus::Interrupted);
                    }
                    State::Pending | State::Waiting { .. } => {
                        t.state = State::Done(JobStatus::Interrupted);
                    }
                    State::Done(_) => {}
                }
            }
            break;
        }
        // Skip jobs whose parents ended badly; start what is ready.
        let now = Instant::now();
        for i in 0..jobs.len() {
            if matches!(tracks[i].state, State::Pending)
                && parents[i].iter().any(
                    |&p| matches!(tracks[p].state, State::Done(s) if s != JobStatus::Succeeded),
                )
            {
                warn!(workflow_id = workflow.id(), job_id = jobs[i].id(), runtime = %runtime_str, "job {} skipped: an upstream job did not succeed", jobs[i].id());
                tracks[i].state = State::Done(JobStatus::Skipped);
            }
        }
        for i in 0..jobs.len() {
            let running = tracks
                .iter()
                .filter(|t| matches!(t.state, State::Running { .. }))
                .count();
            if running >= parallelism {
                break;
            }
            let ready = match tracks[i].state {
                State::Pending => parents[i]
                    .iter()
                    .all(|&p| matches!(tracks[p].state, State::Done(JobStatus::Succeeded))),
                State::Waiting { until } => until <= now,
                _ => false,
            };
            if !ready {
                continue;
            }
            let job = jobs[i].clone();
            let track = &mut tracks[i];
            track.attempts += 1;
            track.first_start.get_or_insert(now);
            let attempt = track.attempts;
            let cancel = CancelToken::default();
            let total = if options.retries {
                job.job().retry_count() + 1
            } else {
                1
            };
            info!(workflow_id = workflow.id(), job_id = job.id(), runtime = %runtime_str, "running job {} (attempt {attempt}/{total})", job.id());
            let ctx = JobContext::new(runtime, workflow.id(), job.id(), config.clone())
                .with_run_state(attempt, resources.clone(), cancel.clone());
            track.state = State::Running {
                deadline: now + job.job().execution_timeout(),
                cancel,
            };
            let thread_tx = tx.clone();
            let span = info_span!("job", workflow_id = workflow.id(), job_id = job.id(), runtime = %runtime_str, run_id = %run_id);
            let spawned = std::thread::Builder::new()
                .name(job.id().to_string())
                .spawn(move || {
                    let _entered = span.enter();
                    let result = match catch_unwind(AssertUnwindSafe(|| job.job().execute(&ctx))) {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(panic) => Err(format!(
                            "job panicked: {}",
                            panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "(no message)".into())
                        )),
                    };
                    let _ = thread_tx.send(Finished {
                        index: i,
                        attempt,
                        result,
                    });
                });
            if let Err(e) = spawned {
                let _ = tx.send(Finished {
                    index: i,
                    attempt,
                    result: Err(format!("could not start a thread: {e}")),
                });
            }
        }

        // Done when nothing runs or waits and nothing more can start.
        let active = tracks
            .iter()
            .any(|t| matches!(t.state, State::Running { .. } | State::Waiting { .. }));
        if !active {
            break;
        }
        let next_wake = tracks
            .iter()
            .filter_map(|t| match &t.state {
                State::Running { deadline, .. } => Some(*deadline),
                State::Waiting { until } => Some(*until),
                _ => None,
            })
            .min()
            .unwrap_or(now);
        // An interrupt is noticed within 50 ms.
        let wait = next_wake.saturating_duration_since(Instant::now());
        let wait = if options.interrupt.is_some() {
            wait.min(Duration::from_millis(50))
        } else {
            wait
        };
        let message = rx.recv_timeout(wait);
        let now = Instant::now();
        let mut ended: Vec<(usize, Result<(), String>, bool)> = Vec::new();
        if let Ok(Finished {
            index,
            attempt,
            result,
        }) = message
        {
            // A cancelled attempt that has now returned needs no more waiting for.
            stopping.retain(|s| *s != (index, attempt));
            if tracks[index].attempts == attempt
                && matches!(tracks[index].state, State::Running { .. })
            {
                ended.push((index, result, false));
            }
        }
        for (i, t) in tracks.iter().enumerate() {
            if let State::Running { deadline, cancel } = &t.state
                && *deadline <= now
                && !ended.iter().any(|(e, ..)| *e == i)
            {
                cancel.cancel();
                stopping.push((i, t.attempts));
                let limit = jobs[i].job().execution_timeout();
                ended.push((
                    i,
                    Err(format!(
                        "execution timeout of {} exceeded; the attempt was stopped",
                        human(limit)
                    )),
                    true,
                ));
            }
        }
        for (i, result, timed_out) in ended {
            let job = &jobs[i];
            let track = &mut tracks[i];
            let elapsed = now - track.first_start.unwrap_or(now);
            match result {
                Ok(()) => {
                    info!(workflow_id = workflow.id(), job_id = job.id(), runtime = %runtime_str, "job {} succeeded in {:.3}s", job.id(), elapsed.as_secs_f64());
                    track.state = State::Done(JobStatus::Succeeded);
                    track.error = None;
                }
                Err(message) => {
                    error!(workflow_id = workflow.id(), job_id = job.id(), runtime = %runtime_str, "job {} attempt {} failed: {message}", job.id(), track.attempts);
                    track.error = Some(message);
                    if options.retries && track.attempts <= job.job().retry_count() {
                        let pause = job.job().retry_pause();
                        info!(workflow_id = workflow.id(), job_id = job.id(), runtime = %runtime_str, "retrying job {} in {}", job.id(), human(pause));
                        track.state = State::Waiting { until: now + pause };
                    } else {
                        track.state = State::Done(if timed_out {
                            JobStatus::TimedOut
                        } else {
                            JobStatus::Failed
                        });
                    }
                }
            }
            track.finished = Some(now);
        }
    }

    // A timed-out attempt was asked to stop; give it a moment to do so (an
    // external program is killed within milliseconds) so nothing outlives the run.
    // Each stopping job gets the longer of the run's grace and its own
    // cleanup grace (a Dataproc cluster deletion takes minutes).
    let grace = stopping
        .iter()
        .map(|(i, _)| jobs[*i].job().cleanup_grace())
        .fold(options.cancel_grace, Duration::max);
    let grace_end = Instant::now() + grace;
    let mut left_running = Vec::new();
    while !stopping.is_empty() {
        match rx.recv_timeout(grace_end.saturating_duration_since(Instant::now())) {
            Ok(Finished { index, attempt, .. }) => stopping.retain(|s| *s != (index, attempt)),
            Err(_) => {
                for (i, _) in &stopping {
                    warn!(workflow_id = workflow.id(), job_id = jobs[*i].id(), runtime = %runtime_str, "job {} did not stop within {} of being cancelled; leaving it behind", jobs[*i].id(), human(grace));
                    left_running.push(jobs[*i].id().to_string());
                }
                break;
            }
        }
    }

    let outcomes = jobs
        .iter()
        .zip(tracks)
        .map(|(job, t)| JobOutcome {
            job_id: job.id().to_string(),
            status: match t.state {
                State::Done(s) => s,
                _ => JobStatus::Skipped,
            },
            attempts: t.attempts,
            duration: match (t.first_start, t.finished) {
                (Some(s), Some(f)) => f - s,
                _ => Duration::ZERO,
            },
            error: t.error,
        })
        .collect();
    RunReport {
        workflow_id: workflow.id().to_string(),
        runtime,
        outcomes,
        left_running,
    }
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobRef, WithSettings, job};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    fn rt() -> Runtime {
        crate::runtime::parse_runtime("2020-08-01 10:00:00").unwrap()
    }

    fn run(wf: &Workflow, options: RunOptions) -> RunReport {
        run_workflow(
            wf,
            None,
            rt(),
            &ResolvedConfig::empty("dev"),
            &Resources::default(),
            &options,
        )
    }

    fn recording(id: &'static str, log: &Arc<Mutex<Vec<String>>>, ms: u64) -> JobRef {
        let log = log.clone();
        JobRef::new(job(id, move |ctx| {
            log.lock().unwrap().push(format!("start {id}"));
            ctx.sleep(Duration::from_millis(ms))?;
            log.lock().unwrap().push(format!("end {id}"));
            Ok(())
        }))
    }

    fn graph(log: &Arc<Mutex<Vec<String>>>) -> Workflow {
        let (j1, j2, j3, j4) = (
            recording("job1", log, 10),
            recording("job2", log, 200),
            recording("job3", log, 200),
            recording("job4", log, 10),
        );
        Workflow::builder("graph")
            .graph([(&j1, vec![&j2, &j3]), (&j2, vec![&j4]), (&j3, vec![&j4])])
            .build()
            .unwrap()
    }

    #[test]
    fn sequential_keeps_bigflow_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let report = run(&graph(&log), RunOptions::default());
        assert!(report.succeeded());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "start job1",
                "end job1",
                "start job2",
                "end job2",
                "start job3",
                "end job3",
                "start job4",
                "end job4"
            ]
        );
    }

    #[test]
    fn parallel_overlaps_independent_jobs() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let report = run(
            &graph(&log),
            RunOptions {
                parallelism: 2,
                retries: false,
                ..RunOptions::default()
            },
        );
        assert!(report.succeeded());
        let log = log.lock().unwrap();
        let pos = |e: &str| log.iter().position(|l| l == e).unwrap();
        assert_eq!(&log[..2], ["start job1", "end job1"]);
        assert!(
            pos("start job3") < pos("end job2") && pos("start job2") < pos("end job3"),
            "job2 and job3 overlap: {log:?}"
        );
        assert_eq!(log[6..], ["start job4", "end job4"]);
    }

    #[test]
    fn a_cancelled_job_that_returned_during_the_run_is_not_waited_for() {
        // "late" ignores its cancel and returns 300 ms in, while "long" still
        // runs; the run must see that it returned, not wait out the grace.
        let late = job("late", |_| {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        })
        .with_execution_timeout(Duration::from_millis(50));
        let long = job("long", |_| {
            std::thread::sleep(Duration::from_millis(800));
            Ok(())
        });
        let wf = Workflow::builder("w")
            .job(JobRef::new(late))
            .job(JobRef::new(long))
            .build()
            .unwrap();
        let report = run(
            &wf,
            RunOptions {
                parallelism: 2,
                cancel_grace: Duration::from_millis(300),
                ..RunOptions::default()
            },
        );
        assert_eq!(report.outcomes[0].status, JobStatus::TimedOut);
        assert_eq!(report.outcomes[1].status, JobStatus::Succeeded);
        assert!(report.left_running.is_empty(), "{:?}", report.left_running);
        assert!(!report.summary_table().contains("warning"));

        // One that really does not return in time is reported.
        let stuck = job("stuck", |_| {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        })
        .with_execution_timeout(Duration::from_millis(50));
        let wf = Workflow::builder("w")
            .jobs([JobRef::new(stuck)])
            .build()
            .unwrap();
        let report = run(
            &wf,
            RunOptions {
                cancel_grace: Duration::from_millis(100),
                ..RunOptions::default()
            },
        );
        assert_eq!(report.left_running, ["stuck"]);
        assert!(
            report
                .summary_table()
                .contains("warning: job stuck did not finish stopping")
        );
    }

    #[test]
    fn failure_skips_descendants_only_and_timeout_stops() {
        let wf = Workflow::builder("w")
            .graph([
                (
                    JobRef::new(job("bad", |_| anyhow::bail!("boom"))),
                    vec![JobRef::new(job("after_bad", |_| Ok(())))],
                ),
                (
                    JobRef::new(
                        job("slow", |ctx| Ok(ctx.sleep(Duration::from_secs(30))?))
                            .with_execution_timeout(Duration::from_millis(100)),
                    ),
                    vec![],
                ),
                (JobRef::new(job("fine", |_| Ok(()))), vec![]),
            ])
            .build()
            .unwrap();
        let report = run(
            &wf,
            RunOptions {
                parallelism: 1,
                retries: false,
                ..RunOptions::default()
            },
        );
        let statuses: Vec<_> = report
            .outcomes
            .iter()
            .map(|o| (o.job_id.as_str(), o.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("bad", JobStatus::Failed),
                ("after_bad", JobStatus::Skipped),
                ("slow", JobStatus::TimedOut),
                ("fine", JobStatus::Succeeded)
            ]
        );
        assert_eq!(report.outcomes[0].error.as_deref(), Some("boom"));
        assert!(report.summary_table().contains("timed out"));
    }

    #[test]
    fn retries_when_asked() {
        let count = Arc::new(AtomicU32::new(0));
        let c = count.clone();
        let flaky = job("flaky", move |ctx| {
            c.fetch_add(1, Ordering::SeqCst);
            if ctx.attempt < 3 {
                anyhow::bail!("attempt {} fails", ctx.attempt)
            } else {
                Ok(())
            }
        })
        .with_retry_pause(Duration::from_millis(10));
        let wf = Workflow::builder("w").jobs([flaky]).build().unwrap();
        let report = run(&wf, RunOptions::default());
        assert_eq!(report.outcomes[0].status, JobStatus::Failed);
        let report = run(
            &wf,
            RunOptions {
                parallelism: 1,
                retries: true,
                ..RunOptions::default()
            },
        );
        assert_eq!(
            (report.outcomes[0].status, report.outcomes[0].attempts),
            (JobStatus::Succeeded, 3)
        );
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn panics_are_failures() {
        let wf = Workflow::builder("w")
            .jobs([job("p", |_| panic!("oops"))])
            .build()
            .unwrap();
        let report = run(&wf, RunOptions::default());
        assert_eq!(
            report.outcomes[0].error.as_deref(),
            Some("job panicked: oops")
        );
    }

    #[test]
    fn an_interrupt_cancels_running_attempts_and_starts_nothing_more() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let cleaned = Arc::new(AtomicU32::new(0));
        let long = {
            let cleaned = cleaned.clone();
            job("long", move |ctx| {
                // Work until cancelled, then clean up, as a Dataproc job does.
                let result = ctx.sleep(Duration::from_secs(60));
                cleaned.fetch_add(1, Ordering::SeqCst);
                result.map_err(Into::into)
            })
        };
        let after = recording("after", &log, 1);
        let wf = Workflow::builder("w")
            .graph([(&JobRef::new(long), vec![&after])])
            .build()
            .unwrap();
        let interrupt = CancelToken::default();
        let raise = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            raise.cancel();
        });
        let started = Instant::now();
        let report = run(
            &wf,
            RunOptions {
                interrupt: Some(interrupt),
                ..RunOptions::default()
            },
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(report.interrupted());
        let statuses: Vec<_> = report.outcomes.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [JobStatus::Interrupted, JobStatus::Interrupted]);
        assert_eq!(
            cleaned.load(Ordering::SeqCst),
            1,
            "the attempt did not clean up"
        );
        assert!(
            log.lock().unwrap().is_empty(),
            "a job started after the interrupt"
        );
        assert!(report.summary_table().contains("interrupted"));
    }
}

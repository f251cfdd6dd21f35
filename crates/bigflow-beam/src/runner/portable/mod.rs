//! The portable runner: a pipeline's graph as a Beam Runner API proto,
//! submitted to a Beam job service, with this binary as the SDK worker that
//! runs the user's code over the Fn API.
//!
//! - [`translate`]: the graph as a `Pipeline` proto (and, in a worker, which
//!   node each transform of a bundle is);
//! - [`harness`]: the SDK worker (Control, Data, State, Logging, Provision);
//! - [`job_service`]: Beam's Job API client (prepare, run, follow, cancel);
//! - [`worker_pool`]: the `BeamFnExternalWorkerPool` the submitter serves so
//!   the runner can start workers.
//!
//! [`PortableRunner`] puts them together. Its workers start as
//! `--environment_type` says: `LOOPBACK` runs them as threads of the
//! submitting process (the graph is already there); `PROCESS` starts this
//! binary with the boot contract's flags, and the worker rebuilds the graph
//! by re-running the job's entry point (the default for a project's jobs);
//! `EXTERNAL` points the runner at someone else's worker pool, e.g. Beam's
//! `worker_pool_main --container_executable=<this binary>`.

#[cfg(test)]
mod fake_runner;
mod fn_logging;
pub(crate) mod harness;
pub(crate) mod job_service;
pub(crate) mod translate;
pub(crate) mod worker_pool;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use prost::Message;

use super::{PipelineResult, PipelineRunner};
use crate::graph::{Graph, RunControl};
use crate::metrics::{DistributionResult, MetricResults};
use crate::options::PipelineOptions;
use crate::pipeline::Pipeline;
use crate::proto::pipeline as rapi;
pub use fn_logging::FnApiLogLayer;
pub use harness::WorkerArgs;

/// The pipeline option naming the job whose entry point rebuilds the graph
/// in a worker process (set by `BeamJob`).
pub const JOB_OPTION: &str = "bigflow_job_id";

/// Runs pipelines on a Beam runner through its job service.
#[derive(Debug, Clone)]
pub struct PortableRunner {
    /// The job service, `host:port`.
    pub job_endpoint: String,
    /// `LOOPBACK`, `PROCESS` or `EXTERNAL`.
    pub environment_type: String,
    /// The worker pool for `EXTERNAL`.
    pub environment_config: Option<String>,
    /// How often the job's state is polled.
    pub poll: Duration,
}

impl PortableRunner {
    /// The runner the options describe (`--job_endpoint`, `--environment_type`).
    pub fn from_options(o: &PipelineOptions) -> Result<PortableRunner> {
        o.validate()?;
        let job_endpoint = o
            .portable
            .job_endpoint
            .clone()
            .ok_or_else(|| anyhow!("PortableRunner needs --job_endpoint"))?;
        let environment_type = o.portable.environment_type.clone().unwrap_or_else(|| {
            if o.extra.contains_key(JOB_OPTION) {
                "PROCESS".into()
            } else {
                "LOOPBACK".into()
            }
        });
        if environment_type == "PROCESS" && !o.extra.contains_key(JOB_OPTION) {
            bail!(
                "--environment_type=PROCESS starts workers that rebuild the pipeline from its job, but this pipeline was not built by a BeamJob; use LOOPBACK"
            );
        }
        Ok(PortableRunner {
            job_endpoint,
            environment_type,
            environment_config: o.portable.environment_config.clone(),
            poll: Duration::from_millis(200),
        })
    }
}

/// The options as the `Struct` a job service takes (Beam's
/// `beam:option:NAME:v1` keys).
fn options_struct(options: &BTreeMap<String, String>) -> prost_types::Struct {
    prost_types::Struct {
        fields: options
            .iter()
            .map(|(k, v)| {
                (
                    format!("beam:option:{k}:v1"),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v.clone())),
                    },
                )
            })
            .collect(),
    }
}

/// Worker processes started by this runner, stopped at the end.
#[derive(Default)]
struct Children(Mutex<Vec<(String, Child)>>);

impl Children {
    fn stop(&self, id: Option<&str>, grace: Duration) {
        let Ok(mut list) = self.0.lock() else { return };
        let deadline = Instant::now() + grace;
        for (wid, child) in list.iter_mut() {
            if id.is_some_and(|i| i != wid) {
                continue;
            }
            // Workers exit when the runner closes their control stream.
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        list.retain(|(wid, _)| id.is_some_and(|i| i != wid));
    }
}

impl PipelineRunner for PortableRunner {
    fn run(&self, pipeline: Pipeline, control: RunControl) -> Result<PipelineResult> {
        let started = Instant::now();
        let graph = pipeline.take_graph()?;
        let graph = Arc::new(graph);
        let mut options = pipeline.options.to_map();
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let job_name = pipeline
            .options
            .google_cloud
            .job_name
            .clone()
            .unwrap_or_else(|| format!("bigflow-{}", &run_id[..12]));
        options.insert("job_name".into(), job_name.clone());
        options.insert(harness::RUN_ID_OPTION.into(), run_id);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the portable runner's runtime")?;
        let children = Arc::new(Children::default());
        let outcome =
            rt.block_on(self.submit(graph.clone(), options, &job_name, &control, &children));
        children.stop(None, Duration::from_secs(5));
        let (outcome, labels) = outcome?;
        match outcome.state.as_str() {
            "DONE" => Ok(PipelineResult {
                metrics: metric_results(&outcome.metrics, &labels),
                spilled_runs: 0,
                spilled_bytes: 0,
                elapsed: started.elapsed(),
            }),
            state => {
                let detail = outcome
                    .messages
                    .iter()
                    .find(|m| !m.trim().is_empty())
                    .map(|m| failure_detail(m))
                    .unwrap_or_else(|| "the job service gave no error message".into());
                bail!("the Beam job {} ended {state}: {detail}", outcome.job_id)
            }
        }
    }
}

/// What a failed job's error message says: the exception at the end of a
/// Python traceback (Beam's runner raises a worker's bundle error as
/// `RuntimeError(<error>)`, so the worker's own words come out), else the
/// message's first lines.
fn failure_detail(m: &str) -> String {
    let lines: Vec<&str> = m.lines().collect();
    if let Some(tb) = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))
        && let Some(start) = lines[tb + 1..]
            .iter()
            .position(|l| !l.trim().is_empty() && !l.starts_with(char::is_whitespace))
    {
        let exception = lines[tb + 1 + start..].join("\n");
        let exception = exception
            .strip_prefix("RuntimeError: ")
            .unwrap_or(&exception);
        return first_lines(exception, 12);
    }
    first_lines(m, 12)
}

/// The first `n` lines of a message.
fn first_lines(m: &str, n: usize) -> String {
    let lines: Vec<&str> = m.lines().collect();
    if lines.len() <= n {
        m.trim().to_string()
    } else {
        format!("{}\n…", lines[..n].join("\n"))
    }
}

impl PortableRunner {
    async fn submit(
        &self,
        graph: Arc<Graph>,
        mut options: BTreeMap<String, String>,
        job_name: &str,
        control: &RunControl,
        children: &Arc<Children>,
    ) -> Result<(
        job_service::JobOutcome,
        std::collections::HashMap<String, String>,
    )> {
        let mut pool = None;
        let pool_endpoint = match self.environment_type.as_str() {
            "EXTERNAL" => self
                .environment_config
                .clone()
                .ok_or_else(|| anyhow!("--environment_type=EXTERNAL needs --environment_config"))?,
            mode => {
                let start = self.starter(mode, graph.clone(), children.clone())?;
                let c = children.clone();
                let stop: worker_pool::StopWorker =
                    Arc::new(move |id: &str| c.stop(Some(id), Duration::from_secs(2)));
                let p = worker_pool::WorkerPool::serve(start, stop).await?;
                let e = p.endpoint();
                pool = Some(p);
                e
            }
        };
        let environment = rapi::Environment {
            urn: "beam:env:external:v1".into(),
            payload: rapi::ExternalPayload {
                endpoint: Some(rapi::ApiServiceDescriptor {
                    url: pool_endpoint,
                    authentication: None,
                }),
                params: Default::default(),
            }
            .encode_to_vec(),
            ..Default::default()
        };
        let t = translate::translate(&graph, environment)?;
        options.insert(harness::PLAN_HASH_OPTION.into(), t.plan_hash.clone());
        let result = job_service::run_job(
            &self.job_endpoint,
            t.pipeline,
            job_name,
            options_struct(&options),
            control,
            self.poll,
        )
        .await;
        if let Some(p) = pool {
            p.shutdown().await;
        }
        Ok((result?, t.labels))
    }

    /// How the worker pool starts a worker.
    fn starter(
        &self,
        mode: &str,
        graph: Arc<Graph>,
        children: Arc<Children>,
    ) -> Result<worker_pool::StartWorker> {
        Ok(match mode {
            "LOOPBACK" => Arc::new(move |ep: worker_pool::WorkerEndpoints| {
                let args = boot_args(&ep);
                let g = graph.clone();
                std::thread::Builder::new()
                    .name(format!("sdk-worker-{}", ep.worker_id))
                    .spawn(move || {
                        if let Err(e) = harness::run_worker(args, harness::GraphSource::Ready(g)) {
                            eprintln!("SDK worker failed: {e:#}");
                        }
                    })
                    .context("cannot start a worker thread")?;
                Ok(())
            }),
            "PROCESS" => {
                let exe =
                    std::env::current_exe().context("cannot find this program to start workers")?;
                Arc::new(move |ep: worker_pool::WorkerEndpoints| {
                    let mut cmd = Command::new(&exe);
                    cmd.arg(format!("--id={}", ep.worker_id))
                        .arg(format!("--control_endpoint={}", ep.control))
                        .arg(format!("--logging_endpoint={}", ep.logging))
                        .arg(format!("--provision_endpoint={}", ep.provision))
                        .arg(format!("--artifact_endpoint={}", ep.artifact))
                        .stdin(Stdio::null());
                    let child = cmd
                        .spawn()
                        .with_context(|| format!("cannot start the worker {}", exe.display()))?;
                    children
                        .0
                        .lock()
                        .map_err(|_| anyhow!("poisoned"))?
                        .push((ep.worker_id.clone(), child));
                    Ok(())
                })
            }
            other => bail!("unknown --environment_type {other}"),
        })
    }
}

/// Worker arguments from a StartWorker request.
fn boot_args(ep: &worker_pool::WorkerEndpoints) -> WorkerArgs {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    WorkerArgs {
        id: ep.worker_id.clone(),
        control_endpoint: ep.control.clone(),
        logging_endpoint: opt(&ep.logging),
        provision_endpoint: opt(&ep.provision),
        artifact_endpoint: opt(&ep.artifact),
        semi_persist_dir: None,
        pipeline_options: None,
    }
}

/// User metrics from monitoring infos, keyed by label as the DirectRunner's.
fn metric_results(
    infos: &[rapi::MonitoringInfo],
    labels: &std::collections::HashMap<String, String>,
) -> MetricResults {
    let mut m = MetricResults::default();
    for info in infos {
        let transform = info.labels.get("PTRANSFORM").cloned().unwrap_or_default();
        let step = labels.get(&transform).cloned().unwrap_or(transform);
        let name = info.labels.get("NAME").cloned().unwrap_or_default();
        let key = format!("{step}/{name}");
        let mut rest: &[u8] = &info.payload;
        let mut next = || crate::coders::read_varint(&mut rest).map(|v| v as i64);
        match info.urn.as_str() {
            "beam:metric:user:sum_int64:v1" => {
                if let Ok(v) = next() {
                    *m.counters.entry(key).or_default() += v;
                }
            }
            "beam:metric:user:distribution_int64:v1" => {
                if let (Ok(count), Ok(sum), Ok(min), Ok(max)) = (next(), next(), next(), next()) {
                    let d = DistributionResult {
                        count,
                        sum,
                        min,
                        max,
                    };
                    m.distributions
                        .entry(key)
                        .and_modify(|x| {
                            x.count += d.count;
                            x.sum = x.sum.saturating_add(d.sum);
                            x.min = x.min.min(d.min);
                            x.max = x.max.max(d.max);
                        })
                        .or_insert(d);
                }
            }
            _ => {}
        }
    }
    m
}

/// Serves as an SDK worker with the graph that `rebuild` makes from the
/// pipeline options (a project binary started with the boot flags).
pub fn serve_worker(
    args: WorkerArgs,
    rebuild: impl FnOnce(&serde_json::Map<String, serde_json::Value>) -> Result<Pipeline>,
) -> Result<()> {
    harness::run_worker(
        args,
        harness::GraphSource::Rebuild(Box::new(move |options| {
            let p = rebuild(options)?;
            let g = std::mem::take(&mut *p.graph.borrow_mut());
            Ok(g)
        })),
    )
}

/// The Runner API proto of a pipeline (with an external environment at
/// `worker_pool`), and a readable listing of it.
pub fn pipeline_proto(pipeline: &Pipeline, worker_pool: &str) -> Result<(rapi::Pipeline, String)> {
    let graph = pipeline.graph.borrow();
    let environment = rapi::Environment {
        urn: "beam:env:external:v1".into(),
        payload: rapi::ExternalPayload {
            endpoint: Some(rapi::ApiServiceDescriptor {
                url: worker_pool.to_string(),
                authentication: None,
            }),
            params: Default::default(),
        }
        .encode_to_vec(),
        ..Default::default()
    };
    let t = translate::translate(&graph, environment)?;
    let text = translate::describe(&t.pipeline);
    Ok((t.pipeline, text))
}

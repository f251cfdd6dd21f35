//! Runners: the [`PipelineRunner`] trait and the embedded [`DirectRunner`].
//!
//! The DirectRunner executes in this process on all cores. It schedules
//! *roots* (sources and the outputs of shuffles): a root runs once every
//! barrier it reads from is complete (shuffles feeding it, side inputs of
//! the transforms fused after it). Each root's bundles are pushed through
//! fused chains of receivers by a pool of worker threads. Shuffles and
//! sinks are bounded by the memory budget and spill to a temporary
//! directory. The first error stops the run; it names the transform and,
//! for user code, the element.
//!
//! `DataflowRunner` is recognised but not available yet: the missing piece
//! is the portable runner (Beam's Fn API harness serving this binary's
//! DoFns), so choosing it fails instead of silently running locally.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::graph::{Env, Graph, RunConfig, RunControl, RunState, SpillStats};
use crate::metrics::{MetricResults, Metrics};
use crate::options::PipelineOptions;
use crate::pipeline::Pipeline;

/// Runs pipelines somewhere.
pub trait PipelineRunner {
    /// Runs `pipeline` to completion (or failure, cancellation, deadline).
    fn run(&self, pipeline: Pipeline, control: RunControl) -> Result<PipelineResult>;
}

/// How a run ended and what it measured.
#[derive(Debug, Clone)]
pub struct PipelineResult {
    /// User metrics.
    pub metrics: MetricResults,
    /// Shuffle run files written because data exceeded the memory budget.
    pub spilled_runs: u64,
    /// Bytes written to those files.
    pub spilled_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// The runner named by the options.
pub fn runner_for(options: &PipelineOptions) -> Result<Box<dyn PipelineRunner>> {
    match options.standard.runner.as_str() {
        "DirectRunner" | "" => Ok(Box::new(DirectRunner::from_options(options))),
        "DataflowRunner" => bail!(
            "DataflowRunner is not available yet: running Rust pipelines on Dataflow needs the portable runner \
             (a Beam Fn API SDK harness for this binary), which is not built yet; use --runner=DirectRunner to run locally"
        ),
        other => {
            bail!("unknown runner '{other}'; use DirectRunner (or DataflowRunner once available)")
        }
    }
}

/// The embedded runner.
#[derive(Debug, Clone)]
pub struct DirectRunner {
    /// Worker threads (default: available cores).
    pub num_workers: usize,
    /// Bytes shuffles and sinks hold in memory before spilling.
    pub memory_budget: usize,
    /// Where spill files go (default: the system temp directory).
    pub temp_dir: Option<PathBuf>,
}

impl Default for DirectRunner {
    fn default() -> Self {
        DirectRunner {
            num_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_budget: 256 << 20,
            temp_dir: None,
        }
    }
}

impl DirectRunner {
    /// Settings from `--direct_num_workers`, `--direct_memory_budget_mb`,
    /// `--direct_temp_dir`.
    pub fn from_options(o: &PipelineOptions) -> Self {
        let mut r = DirectRunner::default();
        if let Some(n) = o.direct.num_workers.filter(|n| *n > 0) {
            r.num_workers = n;
        }
        if let Some(mb) = o.direct.memory_budget_mb {
            r.memory_budget = mb.saturating_mul(1 << 20).max(1 << 16);
        }
        if let Some(b) = o.direct.memory_budget_bytes {
            r.memory_budget = b.max(1 << 12);
        }
        r.temp_dir = o.direct.temp_dir.clone().map(PathBuf::from);
        r
    }
}

/// For each root, the nodes its elements reach without crossing a barrier.
fn reach(graph: &Graph, root: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = graph.nodes[root].children.clone();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if !graph.nodes[n].barrier {
            stack.extend(graph.nodes[n].children.iter().copied());
        }
    }
    seen
}

impl PipelineRunner for DirectRunner {
    fn run(&self, pipeline: Pipeline, control: RunControl) -> Result<PipelineResult> {
        let started = Instant::now();
        let graph = std::mem::take(&mut *pipeline.graph.borrow_mut());
        if !graph.errors.is_empty() {
            bail!(
                "the pipeline is invalid:\n  - {}",
                graph.errors.join("\n  - ")
            );
        }
        let base = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).with_context(|| {
            format!(
                "cannot create the runner's temp directory {}",
                base.display()
            )
        })?;
        let tmp = tempfile::Builder::new()
            .prefix("bigflow-beam-")
            .tempdir_in(&base)
            .with_context(|| {
                format!("cannot create a temporary directory in {}", base.display())
            })?;
        let spill = Arc::new(SpillStats::default());
        let config = RunConfig {
            workers: self.num_workers.max(1),
            memory_budget: self.memory_budget,
            temp_dir: tmp.path().to_path_buf(),
            spill: spill.clone(),
        };
        let mut states = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            states.push(match &n.init_state {
                Some(init) => Some(init(&config)?),
                None => None,
            });
        }
        let run = RunState {
            config,
            states,
            views: (0..graph.nodes.len()).map(|_| OnceLock::new()).collect(),
            metrics: Arc::new(Metrics::default()),
            control,
            failed: Arc::new(AtomicBool::new(false)),
        };
        let env = Env {
            graph: &graph,
            run: &run,
        };
        execute(&env)?;
        Ok(PipelineResult {
            metrics: run.metrics.results(),
            spilled_runs: spill.runs.load(Ordering::Relaxed),
            spilled_bytes: spill.bytes.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        })
    }
}

fn execute(env: &Env) -> Result<()> {
    let graph = env.graph;
    let roots: Vec<usize> = (0..graph.nodes.len())
        .filter(|&i| graph.nodes[i].root.is_some())
        .collect();
    let reaches: Vec<(usize, BTreeSet<usize>)> =
        roots.iter().map(|&r| (r, reach(graph, r))).collect();
    // Barriers (shuffles, views, sinks) and the roots that feed them.
    let feeders = |b: usize| -> Vec<usize> {
        reaches
            .iter()
            .filter(|(_, set)| set.contains(&b))
            .map(|(r, _)| *r)
            .collect()
    };
    let mut done: BTreeSet<usize> = BTreeSet::new();
    while done.len() < roots.len() {
        let ready = reaches.iter().find(|(r, set)| {
            if done.contains(r) {
                return false;
            }
            let own_inputs_done =
                !graph.nodes[*r].barrier || feeders(*r).iter().all(|f| done.contains(f));
            let views_done = set
                .iter()
                .flat_map(|n| graph.nodes[*n].views.iter())
                .all(|v| feeders(*v).iter().all(|f| done.contains(f)));
            own_inputs_done && views_done
        });
        let Some((r, set)) = ready else {
            bail!(
                "the pipeline cannot be scheduled: a side input depends on the transform that reads it"
            );
        };
        for n in set {
            for &v in &graph.nodes[*n].views {
                if env.run.views[v].get().is_none() {
                    let m = graph.nodes[v].materialize.as_ref().ok_or_else(|| {
                        anyhow!("internal: '{}' is not a view", graph.nodes[v].label)
                    })?;
                    let value = m(env, v)?;
                    let _ = env.run.views[v].set(value);
                }
            }
        }
        let root = graph.nodes[*r].root.as_ref().expect("root");
        env.run.control.check()?;
        root.run(*r, env)?;
        done.insert(*r);
    }
    for n in &graph.nodes {
        if let Some(check) = &n.check {
            check(env)?;
        }
    }
    Ok(())
}

//! The DirectRunner: executes a pipeline's graph in this process on all cores.
//!
//! [`barriers`] gives the graph's shuffles, staging points and lifted
//! combines their execution here; this module schedules the roots.

pub(crate) mod barriers;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};

use super::{PipelineResult, PipelineRunner};
use crate::graph::{Env, Graph, RunConfig, RunControl, RunState, SpillStats};
use crate::metrics::Metrics;
use crate::options::PipelineOptions;
use crate::pipeline::Pipeline;

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
        let graph = pipeline.take_graph()?;
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
            stage: None,
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

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
//! The other runners execute the same graph elsewhere: [`portable`] on a
//! Beam runner through its job service, [`dataflow`] on Google Cloud
//! Dataflow; both run this binary as Beam's SDK worker.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::graph::RunControl;
use crate::metrics::MetricResults;
use crate::options::PipelineOptions;
use crate::pipeline::Pipeline;

#[cfg(feature = "dataflow")]
pub mod dataflow;
pub(crate) mod direct;
#[cfg(feature = "portable")]
pub mod portable;
pub use direct::DirectRunner;

/// Runs pipelines somewhere.
pub trait PipelineRunner {
    /// Runs `pipeline` to completion (or failure, cancellation, deadline).
    fn run(&self, pipeline: Pipeline, control: RunControl) -> Result<PipelineResult>;
}

/// How a run ended and what it measured.
#[derive(Debug, Clone, Default)]
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
        #[cfg(feature = "portable")]
        "PortableRunner" => Ok(Box::new(portable::PortableRunner::from_options(options)?)),
        #[cfg(not(feature = "portable"))]
        "PortableRunner" => bail!(
            "PortableRunner needs bigflow-beam's 'portable' feature (Beam's Fn API), which this binary was built without"
        ),
        #[cfg(feature = "dataflow")]
        "DataflowRunner" => Ok(Box::new(dataflow::DataflowRunner::from_options(options)?)),
        #[cfg(not(feature = "dataflow"))]
        "DataflowRunner" => bail!(
            "DataflowRunner needs bigflow-beam's 'dataflow' feature, which this binary was built without"
        ),
        other => {
            bail!("unknown runner '{other}'; use DirectRunner, PortableRunner or DataflowRunner")
        }
    }
}

/// A short random suffix for job names (12 hex digits).
#[cfg_attr(not(feature = "dataflow"), allow(dead_code))]
pub(crate) fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Capturing a pipeline instead of running it: how a worker process gets
/// the graph of a job by re-running the job's entry point.
pub mod capture {
    use std::cell::RefCell;

    use anyhow::{Result, anyhow};

    use crate::pipeline::Pipeline;

    thread_local! {
        /// `Some(None)` while capturing, `Some(Some(p))` once `p` ran.
        static CAPTURED: RefCell<Option<Option<Pipeline>>> = const { RefCell::new(None) };
    }

    /// Runs `f` (e.g. a job's `execute`); the first pipeline it runs is
    /// returned instead of running.
    pub fn capture(f: impl FnOnce() -> Result<()>) -> Result<Pipeline> {
        CAPTURED.with(|c| *c.borrow_mut() = Some(None));
        let r = f();
        let captured = CAPTURED.with(|c| c.borrow_mut().take()).flatten();
        r?;
        captured.ok_or_else(|| anyhow!("the job ran no Beam pipeline"))
    }

    /// Whether this thread is capturing and has no pipeline yet.
    pub(crate) fn active() -> bool {
        CAPTURED.with(|c| matches!(*c.borrow(), Some(None)))
    }

    /// Keeps `p` as the captured pipeline.
    pub(crate) fn keep(p: Pipeline) {
        CAPTURED.with(|c| *c.borrow_mut() = Some(Some(p)));
    }
}

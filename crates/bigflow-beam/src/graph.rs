//! The pipeline graph and the push-based operators the DirectRunner fuses.
//!
//! A [`Graph`] is a list of nodes in construction order (so inputs come
//! before the transforms reading them). Each node produces one typed output;
//! its consumers are stored as type-erased *makers* that, per worker thread,
//! build a [`Receiver`] for that output. Element-wise transforms are fused:
//! a worker pulls a bundle from a root and pushes each element through the
//! chain of receivers down to the next *barrier* (a shuffle, a side input, a
//! sink), which collects what it receives into shared state. A barrier's
//! output is in turn a root once every root feeding it has run.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};

use crate::coders::Coded;
use crate::metrics::Metrics;
use crate::window::{WindowFn, WindowedValue};

/// What a `PCollection` may hold: coded, cloneable, printable, thread-safe.
pub trait Element: Coded + Clone + fmt::Debug + Send + Sync + 'static {}
impl<T: Coded + Clone + fmt::Debug + Send + Sync + 'static> Element for T {}

/// Receives the elements of one bundle at a time.
pub(crate) trait Receiver<T>: Send {
    fn start_bundle(&mut self) -> Result<()>;
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()>;
    /// Receives an element the caller keeps (a source's reused line
    /// buffer): operators that only read their input override this to
    /// avoid the clone an owned `receive` would need.
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()>
    where
        T: Clone,
    {
        self.receive(wv.clone())
    }
    fn finish_bundle(&mut self) -> Result<()>;
    fn teardown(&mut self);
}

/// Builds a consumer's receiver on a worker.
pub(crate) type Maker<T> = Arc<dyn Fn(&Env) -> Result<Box<dyn Receiver<T>>> + Send + Sync>;

/// Runs a root node: splits its input into bundles and pushes them through.
pub(crate) trait RootOp: Send + Sync {
    fn run(&self, node: usize, env: &Env) -> Result<()>;

    /// A source's parts as descriptors a remote runner can spread over
    /// workers (default: one part, the whole source).
    #[cfg_attr(not(feature = "portable"), allow(dead_code))]
    fn split(&self, _env: &Env) -> Result<Vec<Vec<u8>>> {
        Ok(vec![Vec::new()])
    }

    /// Reads the parts `split` described, in parallel.
    #[cfg_attr(not(feature = "portable"), allow(dead_code))]
    fn run_parts(&self, node: usize, env: &Env, parts: &[Vec<u8>]) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        self.run(node, env)
    }
}

pub(crate) type StateInit =
    Arc<dyn Fn(&RunConfig) -> Result<Arc<dyn Any + Send + Sync>> + Send + Sync>;
type Check = Arc<dyn Fn(&Env) -> Result<()> + Send + Sync>;

/// What a node is in the Beam model: how a remote runner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    /// A source (Create, ReadFromText): Impulse, then a DoFn that reads.
    Source,
    /// Element-wise user code (Map, FlatMap, Filter, ParDo, WithTimestamps, WindowInto).
    ParDo,
    /// An additional output of a ParDo: a collection, not a transform.
    TaggedOutput,
    /// Beam's GroupByKey, executed by the runner.
    GroupByKey,
    /// Beam's Flatten.
    Flatten,
    /// Beam's CombinePerKey composite, which runners lift.
    CombinePerKey,
    /// A side-input view: readers get its input through the State API.
    View,
    /// Only for the DirectRunner's scheduling: its output is its input.
    Identity,
    /// Beam's Reshuffle.
    Reshuffle,
    /// A file sink: shards written by workers, then renamed into place.
    WriteFiles,
    /// A check of a test pipeline (`assert_that`).
    Assert,
}

/// One transform's output and how to run it.
pub(crate) struct Node {
    pub label: String,
    pub kind: &'static str,
    pub inputs: Vec<usize>,
    /// Nodes fed by this node's output (consumers and tagged outputs).
    pub children: Vec<usize>,
    /// `(consumer node, Maker<T>)` for each consumer, `T` this node's output type.
    pub consumers: Vec<(usize, Box<dyn Any + Send + Sync>)>,
    /// What the node is to a remote runner.
    pub primitive: Primitive,
    /// The output's element type, for remote runners.
    pub codec: Arc<dyn crate::worker_ops::NodeCodec>,
    /// The lifted phases of a `combine_per_key`.
    pub combine: Option<Arc<dyn crate::worker_ops::LiftedCombine>>,
    /// How the output is windowed.
    pub windowing: WindowFn,
    /// The shard writer of a file sink.
    pub writer: Option<Arc<crate::io::ShardWriter>>,
    /// Whether what flows into this node stops here (shuffle, view, sink).
    pub barrier: bool,
    pub root: Option<Arc<dyn RootOp>>,
    /// View nodes this node reads as side inputs.
    pub views: Vec<usize>,
    pub init_state: Option<StateInit>,
    pub check: Option<Check>,
    /// For view nodes: how the collected elements become the side input.
    pub materialize: Option<crate::side::Materialize>,
    /// Description for [`crate::Pipeline::plan`].
    pub spec: serde_json::Value,
}

/// The transforms of a pipeline.
#[derive(Default)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    /// Construction errors (duplicate labels, invalid arguments), reported by `run`.
    pub errors: Vec<String>,
}

impl Graph {
    pub fn add_consumer<T: Element>(&mut self, producer: usize, consumer: usize, maker: Maker<T>) {
        let node = &mut self.nodes[producer];
        node.children.push(consumer);
        node.consumers.push((consumer, Box::new(maker)));
    }
}

/// Settings of one DirectRunner run.
#[derive(Clone)]
pub(crate) struct RunConfig {
    pub workers: usize,
    pub memory_budget: usize,
    pub temp_dir: std::path::PathBuf,
    pub spill: Arc<SpillStats>,
}

/// Cancellation and deadline of a run.
#[derive(Clone, Default)]
pub struct RunControl {
    /// Raised to stop the run.
    pub cancel: Arc<AtomicBool>,
    /// The run fails once this passes.
    pub deadline: Option<Instant>,
    /// Asked between bundles and every few thousand elements: `true` cancels.
    pub external: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// Return once a remote runner has the job, without waiting for it
    /// (BeamJob's `wait_until_finish(false)`); in-process runners always wait.
    pub detach: bool,
}

impl fmt::Debug for RunControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunControl")
            .field("cancelled", &self.cancel.load(Ordering::Relaxed))
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl RunControl {
    /// An error once cancelled or past the deadline.
    pub fn check(&self) -> Result<()> {
        // The reasons are checked first so every worker reports the same one.
        if let Some(d) = self.deadline
            && Instant::now() >= d
        {
            self.cancel.store(true, Ordering::Relaxed);
            bail!("pipeline cancelled: its deadline passed before it finished");
        }
        if let Some(f) = &self.external
            && f()
        {
            self.cancel.store(true, Ordering::Relaxed);
            bail!("pipeline cancelled: the job was cancelled (execution timeout exceeded)");
        }
        if self.cancel.load(Ordering::Relaxed) {
            bail!("pipeline cancelled");
        }
        Ok(())
    }
}

/// Spill statistics of a run.
#[derive(Debug, Default)]
pub(crate) struct SpillStats {
    pub runs: AtomicU64,
    pub bytes: AtomicU64,
}

/// Shared state of one run.
pub(crate) struct RunState {
    pub config: RunConfig,
    pub states: Vec<Option<Arc<dyn Any + Send + Sync>>>,
    pub views: Vec<OnceLock<Arc<dyn Any + Send + Sync>>>,
    pub metrics: Arc<Metrics>,
    pub control: RunControl,
    pub failed: Arc<AtomicBool>,
}

/// What makers and roots see: the graph and the run.
pub(crate) struct Env<'a> {
    pub graph: &'a Graph,
    pub run: &'a RunState,
    /// In an SDK worker: the part of the graph one bundle runs.
    pub stage: Option<&'a dyn StageWiring>,
}

/// How an SDK worker's bundle connects the graph's receivers: which
/// consumers run here, what replaces the others, and where collections
/// leave the stage.
pub(crate) trait StageWiring: Send + Sync {
    /// For `consumer` of `node`: `None` to leave it out of this bundle,
    /// `Some(None)` to run its own maker, `Some(Some(r))` to use `r`
    /// (a `Box<dyn Receiver<T>>` boxed as `Any`) instead.
    fn consumer(
        &self,
        env: &Env,
        node: usize,
        consumer: usize,
    ) -> Result<Option<Option<Box<dyn Any + Send>>>>;
    /// Receivers (`Box<dyn Receiver<T>>` as `Any`) that take `node`'s
    /// output out of the stage.
    fn outputs(&self, env: &Env, node: usize) -> Result<Vec<Box<dyn Any + Send>>>;
}

impl Env<'_> {
    /// The receiver chain for `node`'s output on this worker.
    pub fn output<T: Element>(&self, node: usize) -> Result<Box<dyn Receiver<T>>> {
        let n = &self.graph.nodes[node];
        let mut receivers = Vec::with_capacity(n.consumers.len());
        let typed = |r: Box<dyn Any + Send>| -> Result<Box<dyn Receiver<T>>> {
            r.downcast::<Box<dyn Receiver<T>>>()
                .map(|b| *b)
                .map_err(|_| anyhow!("internal: a receiver of '{}' has another type", n.label))
        };
        for (consumer, c) in &n.consumers {
            let maker = c
                .downcast_ref::<Maker<T>>()
                .ok_or_else(|| anyhow!("internal: consumer of '{}' has another type", n.label))?;
            match self.stage {
                None => receivers.push(maker(self)?),
                Some(stage) => match stage.consumer(self, node, *consumer)? {
                    None => {}
                    Some(None) => receivers.push(maker(self)?),
                    Some(Some(r)) => receivers.push(typed(r)?),
                },
            }
        }
        if let Some(stage) = self.stage {
            for r in stage.outputs(self, node)? {
                receivers.push(typed(r)?);
            }
        }
        Ok(match receivers.len() {
            0 => Box::new(Discard),
            1 => receivers.pop().expect("one receiver"),
            _ => Box::new(Fanout(receivers)),
        })
    }

    /// The materialized value of a view (the scheduler fills it before use).
    pub fn view(&self, node: usize) -> Result<Arc<dyn Any + Send + Sync>> {
        self.run.views[node].get().cloned().ok_or_else(|| {
            anyhow!(
                "internal: side input '{}' used before it was computed",
                self.graph.nodes[node].label
            )
        })
    }

    /// The run state of a barrier node.
    pub fn state<S: Any + Send + Sync>(&self, node: usize) -> Result<Arc<S>> {
        self.run.states[node]
            .clone()
            .and_then(|s| s.downcast::<S>().ok())
            .ok_or_else(|| anyhow!("internal: no state for '{}'", self.graph.nodes[node].label))
    }
}

struct Discard;

impl<T> Receiver<T> for Discard {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, _wv: WindowedValue<T>) -> Result<()> {
        Ok(())
    }
    fn receive_ref(&mut self, _wv: &WindowedValue<T>) -> Result<()> {
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn teardown(&mut self) {}
}

struct Fanout<T>(Vec<Box<dyn Receiver<T>>>);

impl<T: Clone + Send> Receiver<T> for Fanout<T> {
    fn start_bundle(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|r| r.start_bundle())
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        let (last, rest) = self.0.split_last_mut().expect("fanout of two or more");
        for r in rest {
            r.receive(wv.clone())?;
        }
        last.receive(wv)
    }
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        self.0.iter_mut().try_for_each(|r| r.receive_ref(wv))
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|r| r.finish_bundle())
    }
    fn teardown(&mut self) {
        self.0.iter_mut().for_each(|r| r.teardown())
    }
}

/// A unit of work of a root: a file range, a shuffle partition, a slice.
pub(crate) trait Bundle<T>: Send {
    fn run(self: Box<Self>, out: &mut dyn Receiver<T>, control: &RunControl) -> Result<()>;
}

/// Pushes `bundles` through `node`'s consumers on up to `workers` threads.
/// The first error stops the others; a panic outside user code is reported.
pub(crate) fn run_bundles<T: Element>(
    node: usize,
    env: &Env,
    bundles: Vec<Box<dyn Bundle<T>>>,
) -> Result<()> {
    if bundles.is_empty() {
        return Ok(());
    }
    let workers = env.run.config.workers.clamp(1, bundles.len());
    let queue = Mutex::new(
        bundles
            .into_iter()
            .collect::<std::collections::VecDeque<_>>(),
    );
    let failed = &env.run.failed;
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut chain = env.output::<T>(node)?;
                    let r = (|| -> Result<()> {
                        loop {
                            if failed.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            env.run.control.check()?;
                            let next = queue.lock().map_err(|_| anyhow!("poisoned"))?.pop_front();
                            let Some(bundle) = next else { return Ok(()) };
                            chain.start_bundle()?;
                            bundle.run(&mut *chain, &env.run.control)?;
                            chain.finish_bundle()?;
                        }
                    })();
                    chain.teardown();
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    failed.store(true, Ordering::Relaxed);
                    Err(anyhow!(
                        "internal error: a worker panicked: {}",
                        panic_message(&*p)
                    ))
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(())
}

/// The message of a caught panic.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// `{:?}` of an element, shortened for error messages.
pub(crate) fn describe<T: fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    if s.chars().count() > 200 {
        let short: String = s.chars().take(200).collect();
        format!("{short}…")
    } else {
        s
    }
}

/// Runs user code, turning a panic into an error.
#[inline(always)]
pub(crate) fn guarded<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(anyhow!("panicked: {}", panic_message(&*p))),
    }
}

/// The error of user code at `label` on element `elem`.
#[cold]
pub(crate) fn element_error<T: fmt::Debug>(
    label: &str,
    elem: &T,
    e: anyhow::Error,
) -> anyhow::Error {
    anyhow!(
        "transform '{label}' failed on element {}: {e:#}",
        describe(elem)
    )
}

/// A bundle of in-memory elements.
pub(crate) struct VecBundle<T>(pub Vec<WindowedValue<T>>);

impl<T: Element> Bundle<T> for VecBundle<T> {
    fn run(self: Box<Self>, out: &mut dyn Receiver<T>, control: &RunControl) -> Result<()> {
        for (i, wv) in self.0.into_iter().enumerate() {
            if (i + 1).is_multiple_of(128) {
                control.check()?;
            }
            out.receive(wv)?;
        }
        Ok(())
    }
}

/// Splits `items` into about `parts` bundles.
pub(crate) fn vec_bundles<T: Element>(
    items: Vec<WindowedValue<T>>,
    parts: usize,
) -> Vec<Box<dyn Bundle<T>>> {
    let size = items.len().div_ceil(parts.max(1)).max(1);
    let mut out: Vec<Box<dyn Bundle<T>>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(Box::new(VecBundle(it.by_ref().take(size).collect())));
    }
    out
}

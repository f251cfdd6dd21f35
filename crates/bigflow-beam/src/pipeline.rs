//! `Pipeline` and `PCollection`: building a pipeline in the Beam model.
//!
//! Transforms are methods that take a label (unique in the pipeline, as in
//! Beam; it names the transform in errors and metrics) and return new
//! collections. Nothing runs until [`Pipeline::run`]. Construction mistakes
//! (a duplicate label, an invalid window) are collected and reported by
//! `run`, so building a pipeline reads like Beam Python:
//!
//! ```
//! use bigflow_beam::prelude::*;
//!
//! let p = TestPipeline::new();
//! let words = p.create("Words", vec!["a".to_string(), "b".into(), "a".into()]);
//! let counts = words.count_per_element("Count");
//! assert_that(&counts, equal_to(vec![("a".to_string(), 2), ("b".to_string(), 1)]));
//! p.run().unwrap();
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::coders::{Coded, CoderError};
use crate::combiners::{CombineFn, Count};
use crate::dofn::{DoFn, FilterOp, FlatMapOp, MapOp, ParDoOp, RewindowOp, TagSpec, TupleTag};
use crate::graph::{
    Bundle, Element, Env, Graph, Maker, Node, Primitive, Receiver, RootOp, RunControl, run_bundles,
    vec_bundles,
};
use crate::metrics::LocalMetrics;
use crate::options::PipelineOptions;
use crate::runner::PipelineResult;
use crate::side::{self, CollectSink, Collected, IterableView, MapView, SingletonView};
use crate::window::{Timestamp, Window, WindowFn, WindowedValue};
use crate::worker_ops::{NodeCodec, codec};

/// A pipeline under construction.
pub struct Pipeline {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) options: PipelineOptions,
}

/// A typed, immutable collection of elements produced by a transform.
pub struct PCollection<T> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for PCollection<T> {
    fn clone(&self) -> Self {
        PCollection {
            graph: self.graph.clone(),
            node: self.node,
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for PCollection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.graph.borrow();
        let label = g
            .nodes
            .get(self.node)
            .map(|n| n.label.as_str())
            .unwrap_or("?");
        write!(f, "PCollection({label})")
    }
}

/// Adds a node; a duplicate label is recorded as an error for `run`.
pub(crate) fn add_node(
    graph: &Rc<RefCell<Graph>>,
    label: &str,
    kind: &'static str,
    inputs: &[usize],
    codec: Arc<dyn NodeCodec>,
    spec: serde_json::Value,
) -> usize {
    let mut g = graph.borrow_mut();
    let windowing = inputs
        .first()
        .map(|i| g.nodes[*i].windowing)
        .unwrap_or(WindowFn::Global);
    if label.is_empty() {
        g.errors.push(format!(
            "a {kind} transform has an empty label; give every transform a unique label"
        ));
    } else if g.nodes.iter().any(|n| n.label == label) {
        g.errors.push(format!(
            "a transform with label '{label}' already exists in the pipeline; labels must be unique"
        ));
    }
    g.nodes.push(Node {
        label: label.to_string(),
        kind,
        inputs: inputs.to_vec(),
        children: Vec::new(),
        consumers: Vec::new(),
        barrier: false,
        root: None,
        views: Vec::new(),
        init_state: None,
        check: None,
        materialize: None,
        spec,
        primitive: Primitive::ParDo,
        codec,
        combine: None,
        windowing,
        writer: None,
    });
    g.nodes.len() - 1
}

impl Pipeline {
    /// A pipeline with these options.
    pub fn new(options: PipelineOptions) -> Pipeline {
        Pipeline {
            graph: Rc::new(RefCell::new(Graph::default())),
            options,
        }
    }

    /// The pipeline's options.
    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    /// Changes the options before running.
    pub fn options_mut(&mut self) -> &mut PipelineOptions {
        &mut self.options
    }

    pub(crate) fn collection<T>(&self, node: usize) -> PCollection<T> {
        PCollection {
            graph: self.graph.clone(),
            node,
            _t: PhantomData,
        }
    }

    /// A collection of in-memory values (Beam's `Create`).
    pub fn create<T: Element>(&self, label: &str, values: Vec<T>) -> PCollection<T> {
        self.create_windowed(
            label,
            values.into_iter().map(WindowedValue::global).collect(),
        )
    }

    /// Values with event times, in the global window.
    pub fn create_timestamped<T: Element>(
        &self,
        label: &str,
        values: Vec<(T, Timestamp)>,
    ) -> PCollection<T> {
        self.create_windowed(
            label,
            values
                .into_iter()
                .map(|(value, timestamp)| WindowedValue {
                    value,
                    timestamp,
                    window: Window::Global,
                })
                .collect(),
        )
    }

    fn create_windowed<T: Element>(
        &self,
        label: &str,
        values: Vec<WindowedValue<T>>,
    ) -> PCollection<T> {
        let spec = serde_json::json!({"count": values.len()});
        let node = add_node(&self.graph, label, "Create", &[], codec::<T>(), spec);
        let values = Arc::new(values);
        let mut g = self.graph.borrow_mut();
        g.nodes[node].primitive = Primitive::Source;
        g.nodes[node].root = Some(Arc::new(CreateRoot(values)));
        drop(g);
        self.collection(node)
    }

    /// Description of the pipeline: transforms, inputs, coders and DoFn
    /// parameters. This is what a remote runner will ship to its workers.
    pub fn plan(&self) -> serde_json::Value {
        let g = self.graph.borrow();
        let transforms: Vec<_> = g
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "label": n.label,
                    "kind": n.kind,
                    "inputs": n.inputs.iter().map(|i| g.nodes[*i].label.clone()).collect::<Vec<_>>(),
                    "side_inputs": n.views.iter().map(|i| g.nodes[*i].label.clone()).collect::<Vec<_>>(),
                    "coder": n.codec.coder().to_string(),
                    "spec": n.spec,
                })
            })
            .collect();
        serde_json::json!({ "options": self.options.to_map(), "transforms": transforms })
    }

    /// The graph for a runner, or the construction errors.
    pub(crate) fn take_graph(&self) -> Result<Graph> {
        let graph = std::mem::take(&mut *self.graph.borrow_mut());
        if !graph.errors.is_empty() {
            anyhow::bail!(
                "the pipeline is invalid:\n  - {}",
                graph.errors.join("\n  - ")
            );
        }
        Ok(graph)
    }

    /// Runs the pipeline on the runner its options name and waits for it.
    pub fn run(self) -> Result<PipelineResult> {
        self.run_with(RunControl::default())
    }

    /// Runs with a cancellation flag and deadline.
    pub fn run_with(self, control: RunControl) -> Result<PipelineResult> {
        if crate::runner::capture::active() {
            crate::runner::capture::keep(self);
            return Ok(PipelineResult::default());
        }
        crate::runner::runner_for(&self.options)?.run(self, control)
    }
}

struct CreateRoot<T>(Arc<Vec<WindowedValue<T>>>);

impl<T: Element> RootOp for CreateRoot<T> {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        let bundles = vec_bundles((*self.0).clone(), env.run.config.workers * 2);
        run_bundles::<T>(node, env, bundles)
    }

    /// Index ranges `start..end` (two big-endian u64s) of about 1,000 values.
    fn split(&self, _env: &Env) -> Result<Vec<Vec<u8>>> {
        let n = self.0.len() as u64;
        let size = 1000u64;
        Ok((0..n.div_ceil(size).max(1))
            .map(|i| {
                let mut d = (i * size).to_be_bytes().to_vec();
                d.extend_from_slice(&((i + 1) * size).min(n).to_be_bytes());
                d
            })
            .collect())
    }

    fn run_parts(&self, node: usize, env: &Env, parts: &[Vec<u8>]) -> Result<()> {
        let mut bundles: Vec<Box<dyn Bundle<T>>> = Vec::new();
        for d in parts {
            let (a, b) = d
                .split_at_checked(8)
                .ok_or_else(|| anyhow!("a Create part is {} bytes, not 16", d.len()))?;
            let start = u64::from_be_bytes(a.try_into()?) as usize;
            let end = u64::from_be_bytes(b.try_into()?) as usize;
            let values = self.0.get(start..end).ok_or_else(|| {
                anyhow!(
                    "Create part {start}..{end} is outside its {} values",
                    self.0.len()
                )
            })?;
            bundles.push(Box::new(crate::graph::VecBundle(values.to_vec())));
        }
        run_bundles::<T>(node, env, bundles)
    }
}

/// A `par_do` with side inputs and additional outputs.
pub struct ParDo<D: DoFn> {
    dofn: D,
    side_inputs: Vec<usize>,
    tags: Vec<TagSpec>,
}

impl<D: DoFn> ParDo<D> {
    /// Wraps a DoFn.
    pub fn of(dofn: D) -> Self {
        ParDo {
            dofn,
            side_inputs: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Makes a side input available to `ctx.side_input`.
    pub fn side_input<V: side::SideInput>(mut self, view: &V) -> Self {
        self.side_inputs.push(view.node());
        self
    }

    /// Declares an additional output.
    pub fn output<U: Element>(mut self, tag: &TupleTag<U>) -> Self {
        self.tags.push(tag.spec());
        self
    }
}

/// The outputs of a `par_do` with tagged outputs.
pub struct ParDoOutputs<O> {
    /// The main output.
    pub main: PCollection<O>,
    tagged: HashMap<String, usize>,
}

impl<O> ParDoOutputs<O> {
    /// The output of `tag` (declared with [`ParDo::output`]).
    pub fn get<U: Element>(&self, tag: &TupleTag<U>) -> Result<PCollection<U>> {
        let node = *self
            .tagged
            .get(&tag.id)
            .ok_or_else(|| anyhow!("output tag '{}' was not declared on this par_do", tag.id))?;
        Ok(PCollection {
            graph: self.main.graph.clone(),
            node,
            _t: PhantomData,
        })
    }
}

impl<T: Element> PCollection<T> {
    pub(crate) fn derive<U>(&self, node: usize) -> PCollection<U> {
        PCollection {
            graph: self.graph.clone(),
            node,
            _t: PhantomData,
        }
    }

    pub(crate) fn add_child<U: Element>(
        &self,
        label: &str,
        kind: &'static str,
        spec: serde_json::Value,
        make: impl Fn(&Env, usize) -> Result<Box<dyn Receiver<T>>> + Send + Sync + 'static,
    ) -> PCollection<U> {
        let node = add_node(&self.graph, label, kind, &[self.node], codec::<U>(), spec);
        let maker: Maker<T> = Arc::new(move |env| make(env, node));
        self.graph.borrow_mut().add_consumer(self.node, node, maker);
        self.derive(node)
    }

    /// A `map`-like node whose operator `op` makes from the shared closure
    /// `f`, its label and its output.
    fn element_fn<U: Element, F: Send + Sync + 'static>(
        &self,
        label: &str,
        kind: &'static str,
        f: F,
        op: fn(String, Arc<F>, Box<dyn Receiver<U>>) -> Box<dyn Receiver<T>>,
    ) -> PCollection<U> {
        let f = Arc::new(f);
        let l = label.to_string();
        self.add_child(
            label,
            kind,
            serde_json::json!({"fn": "closure"}),
            move |env, node| Ok(op(l.clone(), f.clone(), env.output::<U>(node)?)),
        )
    }

    /// One output per element (Beam's `Map`).
    pub fn map<U: Element>(
        &self,
        label: &str,
        f: impl Fn(&T) -> U + Send + Sync + 'static,
    ) -> PCollection<U> {
        self.try_map(label, move |x| Ok(f(x)))
    }

    /// One output per element; an error fails the run naming the element.
    pub fn try_map<U: Element, F>(&self, label: &str, f: F) -> PCollection<U>
    where
        F: Fn(&T) -> Result<U> + Send + Sync + 'static,
    {
        self.element_fn(label, "Map", f, |label, f, out| {
            Box::new(MapOp {
                label,
                f,
                out,
                _t: PhantomData,
            })
        })
    }

    /// Any number of outputs per element (Beam's `FlatMap`).
    pub fn flat_map<U: Element, I, F>(&self, label: &str, f: F) -> PCollection<U>
    where
        I: IntoIterator<Item = U> + 'static,
        F: Fn(&T) -> I + Send + Sync + 'static,
    {
        self.element_fn(label, "FlatMap", f, |label, f, out| {
            Box::new(FlatMapOp {
                label,
                f,
                out,
                _t: PhantomData,
            })
        })
    }

    /// The elements for which `f` is true.
    pub fn filter(
        &self,
        label: &str,
        f: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> PCollection<T> {
        let f: Arc<dyn Fn(&T) -> bool + Send + Sync> = Arc::new(f);
        let l = label.to_string();
        self.add_child(
            label,
            "Filter",
            serde_json::json!({"fn": "closure"}),
            move |env, node| {
                Ok(Box::new(FilterOp {
                    label: l.clone(),
                    f: f.clone(),
                    out: env.output::<T>(node)?,
                }))
            },
        )
    }

    /// Runs a DoFn on every element.
    pub fn par_do<D: DoFn<In = T>>(&self, label: &str, dofn: D) -> PCollection<D::Out> {
        self.apply_par_do(label, ParDo::of(dofn)).main
    }

    /// Runs a DoFn with side inputs and tagged outputs.
    pub fn apply_par_do<D: DoFn<In = T>>(
        &self,
        label: &str,
        pardo: ParDo<D>,
    ) -> ParDoOutputs<D::Out> {
        if !pardo.side_inputs.is_empty() {
            // The main input may come from the same source as a side input:
            // materialize it so the side inputs are complete first.
            return self
                .stage(&format!("{label}/MainInput"))
                .apply_par_do_now(label, pardo);
        }
        self.apply_par_do_now(label, pardo)
    }

    fn apply_par_do_now<D: DoFn<In = T>>(
        &self,
        label: &str,
        pardo: ParDo<D>,
    ) -> ParDoOutputs<D::Out> {
        let spec = serde_json::json!({
            "dofn": std::any::type_name::<D>(),
            "params": serde_json::to_value(&pardo.dofn).unwrap_or(serde_json::Value::Null),
            "outputs": pardo.tags.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        });
        let node = add_node(
            &self.graph,
            label,
            "ParDo",
            &[self.node],
            codec::<D::Out>(),
            spec,
        );
        let mut tagged = HashMap::new();
        let mut tag_nodes = Vec::new();
        for t in &pardo.tags {
            let tlabel = format!("{label}.{}", t.id);
            let tn = add_node(
                &self.graph,
                &tlabel,
                "TaggedOutput",
                &[node],
                t.codec.clone(),
                serde_json::Value::Null,
            );
            self.graph.borrow_mut().nodes[tn].primitive = Primitive::TaggedOutput;
            tagged.insert(t.id.clone(), tn);
            tag_nodes.push((t.clone(), tn));
        }
        let views = pardo.side_inputs.clone();
        let l = label.to_string();
        let dofn = pardo.dofn;
        let maker: Maker<T> = Arc::new(move |env| {
            let mut side = Vec::new();
            for v in &views {
                side.push((*v, env.view(*v)?));
            }
            let mut d = dofn.clone();
            crate::graph::guarded(|| d.setup())
                .map_err(|e| anyhow!("transform '{l}' failed in setup: {e:#}"))?;
            let mut outs = Vec::new();
            for (spec, tn) in &tag_nodes {
                outs.push((spec.id.clone(), (spec.make)(env, *tn)?));
            }
            Ok(Box::new(ParDoOp {
                label: l.clone(),
                dofn: d,
                out: env.output::<D::Out>(node)?,
                tagged: outs,
                side,
                local: LocalMetrics::new(&l),
                metrics: env.run.metrics.clone(),
                torn_down: false,
            }))
        });
        {
            let mut g = self.graph.borrow_mut();
            g.add_consumer(self.node, node, maker);
            g.nodes[node].views = pardo.side_inputs;
            for tn in tagged.values() {
                g.nodes[node].children.push(*tn);
            }
        }
        ParDoOutputs {
            main: self.derive(node),
            tagged,
        }
    }

    /// Sets each element's event time.
    pub fn with_timestamps(
        &self,
        label: &str,
        f: impl Fn(&T) -> Timestamp + Send + Sync + 'static,
    ) -> PCollection<T> {
        let f: Arc<dyn Fn(&T) -> Timestamp + Send + Sync> = Arc::new(f);
        let l = label.to_string();
        self.add_child(
            label,
            "WithTimestamps",
            serde_json::Value::Null,
            move |env, node| {
                Ok(Box::new(RewindowOp {
                    label: l.clone(),
                    timestamp: Some(f.clone()),
                    window_fn: None,
                    out: env.output::<T>(node)?,
                }))
            },
        )
    }

    /// Assigns windows by event time (Beam's `WindowInto`).
    pub fn window_into(&self, label: &str, window_fn: WindowFn) -> PCollection<T> {
        if let Err(e) = window_fn.validate() {
            self.graph
                .borrow_mut()
                .errors
                .push(format!("transform '{label}': {e}"));
        }
        let l = label.to_string();
        let spec = serde_json::to_value(window_fn).unwrap_or_default();
        let out: PCollection<T> = self.add_child(label, "WindowInto", spec, move |env, node| {
            Ok(Box::new(RewindowOp {
                label: l.clone(),
                timestamp: None,
                window_fn: Some(window_fn),
                out: env.output::<T>(node)?,
            }))
        });
        self.graph.borrow_mut().nodes[out.node].windowing = window_fn;
        out
    }

    /// This collection and `others` as one (Beam's `Flatten`).
    pub fn flatten_with(&self, label: &str, others: &[&PCollection<T>]) -> PCollection<T> {
        let mut inputs = vec![self.node];
        inputs.extend(others.iter().map(|o| o.node));
        let node = add_node(
            &self.graph,
            label,
            "Flatten",
            &inputs,
            codec::<T>(),
            serde_json::Value::Null,
        );
        let mut g = self.graph.borrow_mut();
        g.nodes[node].primitive = Primitive::Flatten;
        for i in inputs {
            let maker: Maker<T> = Arc::new(move |env| env.output::<T>(node));
            g.add_consumer(i, node, maker);
        }
        drop(g);
        self.derive(node)
    }

    fn view_node(&self, label: &str, kind: &'static str, materialize: side::Materialize) -> usize {
        let node = add_node(
            &self.graph,
            label,
            kind,
            &[self.node],
            codec::<T>(),
            serde_json::Value::Null,
        );
        let maker: Maker<T> = Arc::new(move |env| {
            Ok(Box::new(CollectSink {
                state: env.state::<Collected<T>>(node)?,
                local: Vec::new(),
            }))
        });
        let mut g = self.graph.borrow_mut();
        g.add_consumer(self.node, node, maker);
        let n = &mut g.nodes[node];
        n.barrier = true;
        n.primitive = Primitive::View;
        n.init_state = Some(Arc::new(|_| Ok(Arc::new(Collected::<T>::new()))));
        n.materialize = Some(materialize);
        node
    }

    /// A side input holding the single element of this collection.
    pub fn as_singleton(&self, label: &str) -> SingletonView<T> {
        let node = self.view_node(
            label,
            "AsSingleton",
            side::singleton::<T>(label.to_string(), None),
        );
        SingletonView {
            node,
            _t: PhantomData,
        }
    }

    /// A singleton side input that is `default` when the collection is empty.
    pub fn as_singleton_or(&self, label: &str, default: T) -> SingletonView<T> {
        let node = self.view_node(
            label,
            "AsSingleton",
            side::singleton::<T>(label.to_string(), Some(default)),
        );
        SingletonView {
            node,
            _t: PhantomData,
        }
    }

    /// A side input holding every element.
    pub fn as_iter(&self, label: &str) -> IterableView<T> {
        let node = self.view_node(label, "AsIter", side::iterable::<T>());
        IterableView {
            node,
            _t: PhantomData,
        }
    }

    /// Combines all elements into one (Beam's `CombineGlobally`); an empty
    /// input gives the combiner's empty output.
    pub fn combine_globally<C: CombineFn<In = T>>(
        &self,
        label: &str,
        combine: C,
    ) -> PCollection<C::Out> {
        let keyed: PCollection<((), T)> =
            self.map(&format!("{label}/KeyWithVoid"), |x| ((), x.clone()));
        let combined = keyed.combine_impl(&format!("{label}/CombinePerKey"), combine, true);
        combined.map(label, |(_, v)| v.clone())
    }

    /// How many elements (per window).
    pub fn count_globally(&self, label: &str) -> PCollection<i64> {
        self.combine_globally(label, Count::<T>::new())
    }

    /// Redistributes elements across workers (Beam's `Reshuffle`): the
    /// collection is materialized and read back in parallel.
    pub fn reshuffle(&self, label: &str) -> PCollection<T> {
        let out = self.stage(label);
        self.graph.borrow_mut().nodes[out.node].primitive = Primitive::Reshuffle;
        out
    }
}

impl<T: Element + Hash + Eq> PCollection<T> {
    /// `(element, count)` for every distinct element (Beam's `Count.PerElement`).
    pub fn count_per_element(&self, label: &str) -> PCollection<(T, i64)> {
        let keyed: PCollection<(T, ())> =
            self.map(&format!("{label}/PairWithVoid"), |x| (x.clone(), ()));
        keyed.combine_per_key(label, Count::<()>::new())
    }
}

/// Flattens collections into one (Beam's `Flatten`).
pub fn flatten<T: Element>(label: &str, pcolls: &[&PCollection<T>]) -> Result<PCollection<T>> {
    let (first, rest) = pcolls
        .split_first()
        .ok_or_else(|| anyhow!("flatten '{label}' needs at least one collection"))?;
    Ok(first.flatten_with(label, rest))
}

impl<T: Element> PCollection<T> {
    /// Materializes the collection (spilling beyond the memory budget) so
    /// that what follows starts only once it is complete.
    pub(crate) fn stage(&self, label: &str) -> PCollection<T> {
        let node = add_node(
            &self.graph,
            label,
            "Stage",
            &[self.node],
            codec::<T>(),
            serde_json::Value::Null,
        );
        let barrier = crate::runner::direct::barriers::stage::<T>(label, node);
        let mut g = self.graph.borrow_mut();
        g.add_consumer(self.node, node, barrier.maker);
        let n = &mut g.nodes[node];
        n.barrier = true;
        n.primitive = Primitive::Identity;
        n.root = Some(barrier.root);
        n.init_state = Some(barrier.init_state);
        drop(g);
        self.derive(node)
    }
}

/// The construction error of a shuffle whose key coder is not deterministic.
fn deterministic_key_error<K: Coded>(label: &str) -> String {
    format!(
        "transform '{label}': its key coder {} is not deterministic (equal keys may encode differently), \
         so keys cannot be grouped; key by a type with a deterministic coder (e.g. a String or an integer)",
        K::coder_spec()
    )
}

impl<K: Element, V: Element> PCollection<(K, V)> {
    /// All values of each key (per window), Beam's `GroupByKey`. Values
    /// come in a deterministic order; a group must fit in memory, the whole
    /// shuffle need not (it spills beyond the memory budget).
    pub fn group_by_key(&self, label: &str) -> PCollection<(K, Vec<V>)> {
        let node = add_node(
            &self.graph,
            label,
            "GroupByKey",
            &[self.node],
            codec::<(K, Vec<V>)>(),
            serde_json::Value::Null,
        );
        let barrier = crate::runner::direct::barriers::group_by_key::<K, V>(label, node);
        let mut g = self.graph.borrow_mut();
        g.add_consumer(self.node, node, barrier.maker);
        if !K::is_deterministic() {
            g.errors.push(deterministic_key_error::<K>(label));
        }
        let n = &mut g.nodes[node];
        n.barrier = true;
        n.primitive = Primitive::GroupByKey;
        n.root = Some(barrier.root);
        n.init_state = Some(barrier.init_state);
        drop(g);
        self.derive(node)
    }
}

impl<K: Element + Hash + Eq, V: Element> PCollection<(K, V)> {
    /// Combines the values of each key (Beam's `CombinePerKey`). The
    /// combiner is lifted: workers combine before the shuffle.
    pub fn combine_per_key<C: CombineFn<In = V>>(
        &self,
        label: &str,
        combine: C,
    ) -> PCollection<(K, C::Out)> {
        self.combine_impl(label, combine, false)
    }

    fn combine_impl<C: CombineFn<In = V>>(
        &self,
        label: &str,
        combine: C,
        global_default: bool,
    ) -> PCollection<(K, C::Out)> {
        let spec = serde_json::json!({"combine_fn": std::any::type_name::<C>()});
        let node = add_node(
            &self.graph,
            label,
            "CombinePerKey",
            &[self.node],
            codec::<(K, C::Out)>(),
            spec,
        );
        let barrier = crate::runner::direct::barriers::combine_per_key::<K, C>(
            label,
            combine.clone(),
            global_default,
            node,
        );
        let mut g = self.graph.borrow_mut();
        g.add_consumer(self.node, node, barrier.maker);
        if !K::is_deterministic() {
            g.errors.push(deterministic_key_error::<K>(label));
        }
        let n = &mut g.nodes[node];
        n.barrier = true;
        n.primitive = Primitive::CombinePerKey;
        n.combine = Some(crate::worker_ops::lifted::<K, C>(combine, global_default));
        n.root = Some(barrier.root);
        n.init_state = Some(barrier.init_state);
        drop(g);
        self.derive(node)
    }

    /// A side input mapping keys to values.
    pub fn as_map(&self, label: &str) -> MapView<K, V> {
        let node = self.view_node(label, "AsMap", side::map::<K, V>(label.to_string()));
        MapView {
            node,
            _t: PhantomData,
        }
    }
}

/// One side of a `co_group_by_key`.
#[derive(Debug, Clone)]
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<A: Coded, B: Coded> Coded for Either<A, B> {
    fn urn() -> String {
        "bigflow:coder:union:v1".into()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Either::Left(a) => {
                out.push(0);
                a.encode(out);
            }
            Either::Right(b) => {
                out.push(1);
                b.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, CoderError> {
        let Some((&tag, rest)) = input.split_first() else {
            return Err(CoderError("union ends early".into()));
        };
        *input = rest;
        match tag {
            0 => Ok(Either::Left(A::decode(input)?)),
            1 => Ok(Either::Right(B::decode(input)?)),
            t => Err(CoderError(format!("union tag {t}"))),
        }
    }
}

impl<K: Element, V: Element> PCollection<(K, V)> {
    /// Joins two keyed collections: each key with its values from both
    /// (Beam's `CoGroupByKey`).
    pub fn co_group_by_key<W: Element>(
        &self,
        label: &str,
        other: &PCollection<(K, W)>,
    ) -> PCollection<(K, (Vec<V>, Vec<W>))> {
        let left: PCollection<(K, Either<V, W>)> = self
            .map(&format!("{label}/TagLeft"), |(k, v)| {
                (k.clone(), Either::Left(v.clone()))
            });
        let right: PCollection<(K, Either<V, W>)> = other
            .map(&format!("{label}/TagRight"), |(k, w)| {
                (k.clone(), Either::Right(w.clone()))
            });
        let both = left.flatten_with(&format!("{label}/Flatten"), &[&right]);
        both.group_by_key(&format!("{label}/GroupByKey"))
            .map(label, |(k, vs)| {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for v in vs {
                    match v {
                        Either::Left(x) => a.push(x.clone()),
                        Either::Right(y) => b.push(y.clone()),
                    }
                }
                (k.clone(), (a, b))
            })
    }
}

//! `DoFn`s: user code run on every element, with Beam's lifecycle.
//!
//! A [`DoFn`] is a named type whose fields are its parameters; they
//! serialize with serde, so a remote worker running the same binary can
//! rebuild the DoFn from the pipeline's plan. Per worker the runner clones
//! the DoFn, calls [`DoFn::setup`] once, then for every bundle
//! `start_bundle`, `process` for each element, `finish_bundle`, and finally
//! `teardown`. Fields that cannot serialize (a compiled regex, a client)
//! are `#[serde(skip)]` and built in `setup`, as in Beam.
//!
//! [`Context`] emits to the main output or to a [`TupleTag`]ged output, reads
//! side inputs, and updates metrics. An error or a panic in user code fails
//! the run with the transform's label and the element.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::graph::{Element, Env, Receiver, element_error, guarded};
use crate::metrics::{LocalMetrics, Metrics};
use crate::window::{MIN_TIMESTAMP, Timestamp, Window, WindowedValue};

/// User code applied to each element by `par_do`.
pub trait DoFn:
    Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static
{
    /// The input element type.
    type In: Element;
    /// The main output's element type.
    type Out: Element;

    /// Once per worker instance, before any bundle.
    fn setup(&mut self) -> Result<()> {
        Ok(())
    }
    /// Before each bundle.
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    /// For each element.
    fn process(&mut self, element: &Self::In, ctx: &mut Context<'_, Self::Out>) -> Result<()>;
    /// After each bundle; may emit (in the global window).
    fn finish_bundle(&mut self, _ctx: &mut Context<'_, Self::Out>) -> Result<()> {
        Ok(())
    }
    /// Once per worker instance, at the end (also after a failure).
    fn teardown(&mut self) {}
}

/// Names an additional output of a `par_do` and its element type.
#[derive(Debug)]
pub struct TupleTag<T> {
    pub(crate) id: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for TupleTag<T> {
    fn clone(&self) -> Self {
        TupleTag {
            id: self.id.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Element> TupleTag<T> {
    /// A tag; ids must be unique within one `par_do`.
    pub fn new(id: impl Into<String>) -> Self {
        TupleTag {
            id: id.into(),
            _t: PhantomData,
        }
    }

    /// The tag's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn spec(&self) -> TagSpec {
        TagSpec {
            id: self.id.clone(),
            codec: crate::worker_ops::codec::<T>(),
            make: Arc::new(|env: &Env, node: usize| {
                Ok(Box::new(Tagged::<T>(env.output::<T>(node)?)) as Box<dyn TaggedOut>)
            }),
        }
    }
}

type TagMaker = Arc<dyn Fn(&Env, usize) -> Result<Box<dyn TaggedOut>> + Send + Sync>;

/// A tag with the type knowledge to build its receivers.
#[derive(Clone)]
pub struct TagSpec {
    pub(crate) id: String,
    pub(crate) codec: Arc<dyn crate::worker_ops::NodeCodec>,
    pub(crate) make: TagMaker,
}

pub(crate) trait TaggedOut: Send {
    fn start(&mut self) -> Result<()>;
    fn finish(&mut self) -> Result<()>;
    fn teardown(&mut self);
    fn as_any(&mut self) -> &mut dyn Any;
}

pub(crate) struct Tagged<T>(Box<dyn Receiver<T>>);

impl<T: Element> TaggedOut for Tagged<T> {
    fn start(&mut self) -> Result<()> {
        self.0.start_bundle()
    }
    fn finish(&mut self) -> Result<()> {
        self.0.finish_bundle()
    }
    fn teardown(&mut self) {
        self.0.teardown()
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// What a DoFn sees while processing: emitting, side inputs, metrics.
pub struct Context<'a, O> {
    out: &'a mut dyn Receiver<O>,
    tagged: &'a mut [(String, Box<dyn TaggedOut>)],
    side: &'a [(usize, Arc<dyn Any + Send + Sync>)],
    metrics: &'a mut LocalMetrics,
    timestamp: Timestamp,
    window: Window,
    downstream: Option<anyhow::Error>,
}

impl<O: Element> Context<'_, O> {
    /// Emits to the main output with the input's timestamp and window.
    pub fn emit(&mut self, value: O) {
        let wv = WindowedValue {
            value,
            timestamp: self.timestamp,
            window: self.window,
        };
        self.send(wv);
    }

    /// Emits with an event time of your choice (Beam's `TimestampedValue`).
    pub fn emit_timestamped(&mut self, value: O, timestamp: Timestamp) {
        let wv = WindowedValue {
            value,
            timestamp,
            window: self.window,
        };
        self.send(wv);
    }

    fn send(&mut self, wv: WindowedValue<O>) {
        if self.downstream.is_none()
            && let Err(e) = self.out.receive(wv)
        {
            self.downstream = Some(e);
        }
    }

    /// Emits to the output named by `tag`.
    pub fn emit_to<T: Element>(&mut self, tag: &TupleTag<T>, value: T) {
        if self.downstream.is_some() {
            return;
        }
        let wv = WindowedValue {
            value,
            timestamp: self.timestamp,
            window: self.window,
        };
        let r = match self.tagged.iter_mut().find(|(id, _)| *id == tag.id) {
            Some((_, out)) => match out.as_any().downcast_mut::<Tagged<T>>() {
                Some(t) => t.0.receive(wv),
                None => Err(anyhow!(
                    "output tag '{}' was declared with another type",
                    tag.id
                )),
            },
            None => Err(anyhow!(
                "output tag '{}' was not declared in par_do_with_outputs",
                tag.id
            )),
        };
        if let Err(e) = r {
            self.downstream = Some(e);
        }
    }

    /// The value of a side input given to `par_do_with_side_inputs`.
    pub fn side_input<V: crate::side::SideInput>(&self, view: &V) -> Result<&V::Value> {
        let node = view.node();
        self.side
            .iter()
            .find(|(n, _)| *n == node)
            .and_then(|(_, v)| v.downcast_ref::<V::Value>())
            .ok_or_else(|| anyhow!("side input was not given to this transform"))
    }

    /// The element's event time.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The element's window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Adds `n` to a counter of this transform.
    pub fn inc_counter(&mut self, name: &str, n: i64) {
        self.metrics.inc(name, n);
    }

    /// Records a value in a distribution of this transform.
    pub fn update_distribution(&mut self, name: &str, value: i64) {
        self.metrics.update(name, value);
    }
}

/// The ParDo operator on one worker.
pub(crate) struct ParDoOp<D: DoFn> {
    pub label: String,
    pub dofn: D,
    pub out: Box<dyn Receiver<D::Out>>,
    pub tagged: Vec<(String, Box<dyn TaggedOut>)>,
    pub side: Vec<(usize, Arc<dyn Any + Send + Sync>)>,
    pub local: LocalMetrics,
    pub metrics: Arc<Metrics>,
    pub torn_down: bool,
}

impl<D: DoFn> ParDoOp<D> {
    fn ctx(&mut self, timestamp: Timestamp, window: Window) -> (&mut D, Context<'_, D::Out>) {
        (
            &mut self.dofn,
            Context {
                out: &mut *self.out,
                tagged: &mut self.tagged,
                side: &self.side,
                metrics: &mut self.local,
                timestamp,
                window,
                downstream: None,
            },
        )
    }
}

impl<D: DoFn> Receiver<D::In> for ParDoOp<D> {
    fn start_bundle(&mut self) -> Result<()> {
        let label = self.label.clone();
        guarded(|| self.dofn.start_bundle())
            .map_err(|e| anyhow!("transform '{label}' failed in start_bundle: {e:#}"))?;
        self.out.start_bundle()?;
        for (_, t) in &mut self.tagged {
            t.start()?;
        }
        Ok(())
    }

    fn receive(&mut self, wv: WindowedValue<D::In>) -> Result<()> {
        let (dofn, mut ctx) = self.ctx(wv.timestamp, wv.window);
        let r = guarded(|| dofn.process(&wv.value, &mut ctx));
        if let Some(e) = ctx.downstream.take() {
            return Err(e);
        }
        r.map_err(|e| element_error(&self.label, &wv.value, e))
    }

    fn receive_ref(&mut self, wv: &WindowedValue<D::In>) -> Result<()> {
        let (dofn, mut ctx) = self.ctx(wv.timestamp, wv.window);
        let r = guarded(|| dofn.process(&wv.value, &mut ctx));
        if let Some(e) = ctx.downstream.take() {
            return Err(e);
        }
        r.map_err(|e| element_error(&self.label, &wv.value, e))
    }

    fn finish_bundle(&mut self) -> Result<()> {
        let label = self.label.clone();
        let (dofn, mut ctx) = self.ctx(MIN_TIMESTAMP, Window::Global);
        let r = guarded(|| dofn.finish_bundle(&mut ctx));
        if let Some(e) = ctx.downstream.take() {
            return Err(e);
        }
        r.map_err(|e| anyhow!("transform '{label}' failed in finish_bundle: {e:#}"))?;
        self.metrics.merge(&mut self.local);
        self.out.finish_bundle()?;
        for (_, t) in &mut self.tagged {
            t.finish()?;
        }
        Ok(())
    }

    fn teardown(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            let _ = guarded(|| {
                self.dofn.teardown();
                Ok(())
            });
            self.metrics.merge(&mut self.local);
        }
        self.out.teardown();
        for (_, t) in &mut self.tagged {
            t.teardown();
        }
    }
}

/// The operator of `map`/`try_map`: one output per element. Generic over
/// the closure, so the call is direct (and inlined) rather than dynamic.
pub(crate) struct MapOp<T, U, F> {
    pub label: String,
    pub f: Arc<F>,
    pub out: Box<dyn Receiver<U>>,
    pub _t: PhantomData<fn(&T)>,
}

impl<T, U, F> Receiver<T> for MapOp<T, U, F>
where
    T: Element,
    U: Element,
    F: Fn(&T) -> Result<U> + Send + Sync + 'static,
{
    fn start_bundle(&mut self) -> Result<()> {
        self.out.start_bundle()
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        self.receive_ref(&wv)
    }
    #[inline]
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        let f = &*self.f;
        let u = guarded(|| f(&wv.value)).map_err(|e| element_error(&self.label, &wv.value, e))?;
        self.out.receive(WindowedValue {
            value: u,
            timestamp: wv.timestamp,
            window: wv.window,
        })
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.out.finish_bundle()
    }
    fn teardown(&mut self) {
        self.out.teardown()
    }
}

/// The operator of `flat_map`: any number of outputs per element, passed on
/// as the closure's iterator yields them (no collection per element).
pub(crate) struct FlatMapOp<T, U, I, F> {
    pub label: String,
    pub f: Arc<F>,
    pub out: Box<dyn Receiver<U>>,
    pub _t: PhantomData<fn(&T) -> I>,
}

impl<T, U, I, F> Receiver<T> for FlatMapOp<T, U, I, F>
where
    T: Element,
    U: Element,
    I: IntoIterator<Item = U> + 'static,
    F: Fn(&T) -> I + Send + Sync + 'static,
{
    fn start_bundle(&mut self) -> Result<()> {
        self.out.start_bundle()
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        self.receive_ref(&wv)
    }
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        let (f, out) = (&*self.f, &mut self.out);
        // A failure downstream is its own (already labelled); only what the
        // closure and its iterator do is this transform's.
        let mut downstream = None;
        let r = guarded(|| {
            for value in f(&wv.value) {
                let next = WindowedValue {
                    value,
                    timestamp: wv.timestamp,
                    window: wv.window,
                };
                if let Err(e) = out.receive(next) {
                    downstream = Some(e);
                    break;
                }
            }
            Ok(())
        });
        if let Some(e) = downstream {
            return Err(e);
        }
        r.map_err(|e| element_error(&self.label, &wv.value, e))
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.out.finish_bundle()
    }
    fn teardown(&mut self) {
        self.out.teardown()
    }
}

/// The operator of `filter`.
pub(crate) struct FilterOp<T> {
    pub label: String,
    pub f: Arc<dyn Fn(&T) -> bool + Send + Sync>,
    pub out: Box<dyn Receiver<T>>,
}

impl<T: Element> Receiver<T> for FilterOp<T> {
    fn start_bundle(&mut self) -> Result<()> {
        self.out.start_bundle()
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        let keep = guarded(|| Ok((self.f)(&wv.value)))
            .map_err(|e| element_error(&self.label, &wv.value, e))?;
        if keep { self.out.receive(wv) } else { Ok(()) }
    }
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        let keep = guarded(|| Ok((self.f)(&wv.value)))
            .map_err(|e| element_error(&self.label, &wv.value, e))?;
        if keep {
            self.out.receive_ref(wv)
        } else {
            Ok(())
        }
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.out.finish_bundle()
    }
    fn teardown(&mut self) {
        self.out.teardown()
    }
}

/// The operator of `with_timestamps` and `window_into`.
pub(crate) struct RewindowOp<T> {
    pub label: String,
    pub timestamp: Option<Arc<dyn Fn(&T) -> Timestamp + Send + Sync>>,
    pub window_fn: Option<crate::window::WindowFn>,
    pub out: Box<dyn Receiver<T>>,
}

impl<T: Element> Receiver<T> for RewindowOp<T> {
    fn start_bundle(&mut self) -> Result<()> {
        self.out.start_bundle()
    }
    fn receive(&mut self, mut wv: WindowedValue<T>) -> Result<()> {
        if let Some(f) = &self.timestamp {
            wv.timestamp = guarded(|| Ok(f(&wv.value)))
                .map_err(|e| element_error(&self.label, &wv.value, e))?;
        }
        let Some(wf) = &self.window_fn else {
            return self.out.receive(wv);
        };
        let windows = wf.assign(wv.timestamp);
        for w in windows {
            self.out.receive(WindowedValue {
                value: wv.value.clone(),
                timestamp: wv.timestamp,
                window: w,
            })?;
        }
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.out.finish_bundle()
    }
    fn teardown(&mut self) {
        self.out.teardown()
    }
}

type Rebuild = Box<dyn Fn(&serde_json::Value) -> Result<Box<dyn Any + Send>> + Send + Sync>;

/// DoFns by type name, rebuilt from the parameters `Pipeline::plan()`
/// records: what a remote worker running the same binary does.
#[derive(Default)]
pub struct DoFnRegistry {
    rebuild: std::collections::HashMap<String, Rebuild>,
}

impl DoFnRegistry {
    /// The name a DoFn type is recorded under in plans.
    pub fn name_of<D: DoFn>() -> &'static str {
        std::any::type_name::<D>()
    }

    /// Makes `D` rebuildable by name.
    pub fn register<D: DoFn>(&mut self) -> &mut Self {
        self.rebuild.insert(
            Self::name_of::<D>().to_string(),
            Box::new(|params| {
                let d: D = serde_json::from_value(params.clone())
                    .map_err(|e| anyhow!("cannot rebuild {}: {e}", Self::name_of::<D>()))?;
                Ok(Box::new(d))
            }),
        );
        self
    }

    /// Whether a DoFn of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.rebuild.contains_key(name)
    }

    /// Rebuilds the DoFn `name` from its parameters as `D`.
    pub fn rebuild<D: DoFn>(&self, name: &str, params: &serde_json::Value) -> Result<D> {
        let f = self
            .rebuild
            .get(name)
            .ok_or_else(|| anyhow!("DoFn '{name}' is not registered in this binary"))?;
        f(params)?
            .downcast::<D>()
            .map(|d| *d)
            .map_err(|_| anyhow!("DoFn '{name}' is not a {}", Self::name_of::<D>()))
    }
}

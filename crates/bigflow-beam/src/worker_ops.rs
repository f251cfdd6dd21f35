//! The typed operations an SDK worker needs of each node of the graph.
//!
//! A remote runner (Beam's portable runner, Dataflow) moves elements between
//! fused stages as bytes: every element a `windowed_value` in the wire form
//! of its coder. The graph is built from typed collections, so every node
//! carries a [`NodeCodec`] made for its element type when it was added; the
//! SDK harness uses it without knowing the type:
//!
//! - [`NodeCodec::source`] decodes what a data channel delivers for a
//!   node's collection and pushes it through the node's consumers;
//! - [`NodeCodec::sink`] encodes what reaches the end of a stage;
//! - [`NodeCodec::side_input`] rebuilds a side input from the elements the
//!   State API returns.
//!
//! A `combine_per_key` node also carries a [`LiftedCombine`]: the
//! precombine / merge / extract phases runners lift a combine into.

// Without the `portable` feature nothing runs remotely, but the graph
// still records what a remote runner would need.
#![cfg_attr(not(feature = "portable"), allow(dead_code))]

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::coders::{Coded, CoderSpec};
use crate::combiners::CombineFn;
use crate::graph::{Element, Env, Receiver};
use crate::side::Collected;
use crate::window::{Window, WindowedValue};
use crate::wire::{Pane, WindowCoder, WireValue};

/// Where encoded elements leave a stage: one data channel's output.
pub(crate) trait ByteSink: Send {
    /// Sends a chunk of whole encoded elements.
    fn send(&mut self, chunk: Vec<u8>) -> Result<()>;
}

/// Consumes a data channel's input: chunks of encoded elements (an element
/// may span chunks), then the end of input.
pub(crate) trait ByteReceiver: Send {
    /// Decodes and processes a chunk.
    fn receive(&mut self, data: &[u8]) -> Result<()>;
    /// The input is complete: finish the bundle.
    fn finish(&mut self) -> Result<()>;
    /// Releases the chain after success or failure.
    fn teardown(&mut self);
}

/// How large an output chunk grows before it is sent.
const CHUNK: usize = 1 << 20;

/// The element-type knowledge of one node.
pub(crate) trait NodeCodec: Send + Sync {
    /// The element coder, as a Runner API pipeline declares it.
    fn coder(&self) -> CoderSpec;
    /// A receiver that decodes elements and pushes them into `node`'s consumers.
    fn source(&self, env: &Env, node: usize, window: WindowCoder) -> Result<Box<dyn ByteReceiver>>;
    /// A `Box<dyn Receiver<T>>` (boxed as `Any`) that encodes into `out`.
    fn sink(&self, window: WindowCoder, out: Box<dyn ByteSink>) -> Box<dyn Any + Send>;
    /// A `Box<dyn Receiver<T>>` (boxed as `Any`) that hands elements to
    /// `node`'s consumers: for nodes the runner does not see.
    fn passthrough(&self, env: &Env, node: usize) -> Result<Box<dyn Any + Send>>;
    /// A side input's collected state from its elements' wire encodings.
    fn side_input(&self, values: &[u8]) -> Result<Arc<dyn Any + Send + Sync>>;
}

/// The [`NodeCodec`] of elements of type `T`.
pub(crate) fn codec<T: Element>() -> Arc<dyn NodeCodec> {
    Arc::new(Codec::<T>(PhantomData))
}

struct Codec<T>(PhantomData<fn() -> T>);

impl<T: Element> NodeCodec for Codec<T> {
    fn coder(&self) -> CoderSpec {
        T::coder_spec()
    }

    fn source(&self, env: &Env, node: usize, window: WindowCoder) -> Result<Box<dyn ByteReceiver>> {
        decode_into::<T, T>(window, env.output::<T>(node)?, push_windows)
    }

    fn sink(&self, window: WindowCoder, out: Box<dyn ByteSink>) -> Box<dyn Any + Send> {
        let r: Box<dyn Receiver<T>> = Box::new(Encoding {
            window,
            buf: Vec::with_capacity(CHUNK + 4096),
            out,
            _t: PhantomData::<fn(T)>,
        });
        Box::new(r)
    }

    fn passthrough(&self, env: &Env, node: usize) -> Result<Box<dyn Any + Send>> {
        Ok(Box::new(env.output::<T>(node)?))
    }

    fn side_input(&self, values: &[u8]) -> Result<Arc<dyn Any + Send + Sync>> {
        let collected = Collected::<T>::new();
        let mut rest = values;
        let mut items = Vec::new();
        while !rest.is_empty() {
            let v = T::decode_wire(&mut rest).map_err(|e| anyhow!("side input: {e}"))?;
            items.push(WindowedValue::global(v));
        }
        collected.extend(items)?;
        Ok(Arc::new(collected))
    }
}

/// Pushes a wire value into a receiver once per window.
fn push_windows<T: Clone>(wv: WireValue<T>, out: &mut dyn Receiver<T>) -> Result<()> {
    let WireValue {
        value,
        timestamp,
        windows,
        ..
    } = wv;
    match windows.len() {
        1 => out.receive(WindowedValue {
            value,
            timestamp,
            window: windows[0],
        }),
        _ => {
            for window in windows {
                out.receive(WindowedValue {
                    value: value.clone(),
                    timestamp,
                    window,
                })?;
            }
            Ok(())
        }
    }
}

/// Decodes windowed values of `T` from chunks and hands each to `push`.
struct Decoding<T, F> {
    window: WindowCoder,
    carry: Vec<u8>,
    push: F,
    _t: PhantomData<fn() -> T>,
}

impl<T: Coded, F> ByteReceiver for Decoding<T, F>
where
    F: FnMut(WireValue<T>) -> Result<()> + Send,
{
    fn receive(&mut self, data: &[u8]) -> Result<()> {
        let owned;
        let buf: &[u8] = if self.carry.is_empty() {
            data
        } else {
            let mut b = std::mem::take(&mut self.carry);
            b.extend_from_slice(data);
            owned = b;
            &owned
        };
        let mut rest = buf;
        while !rest.is_empty() {
            let mut attempt = rest;
            match WireValue::<T>::decode(self.window, &mut attempt) {
                Ok(wv) => {
                    rest = attempt;
                    (self.push)(wv)?;
                }
                // The element continues in the next chunk.
                Err(_) => {
                    self.carry = rest.to_vec();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if !self.carry.is_empty() {
            let mut rest: &[u8] = &self.carry;
            let e = WireValue::<T>::decode(self.window, &mut rest)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "unexpected trailing bytes".into());
            return Err(anyhow!(
                "the data channel ended inside an element ({} bytes left): {e}",
                self.carry.len()
            ));
        }
        Ok(())
    }

    fn teardown(&mut self) {}
}

/// Encodes elements into chunks for a data channel.
struct Encoding<T> {
    window: WindowCoder,
    buf: Vec<u8>,
    out: Box<dyn ByteSink>,
    _t: PhantomData<fn(T)>,
}

impl<T: Coded> Encoding<T> {
    fn push(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        encode_windowed(wv, self.window, &mut self.buf)?;
        if self.buf.len() >= CHUNK {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096));
            self.out.send(chunk)?;
        }
        Ok(())
    }
}

impl<T: Coded> Receiver<T> for Encoding<T> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        self.push(&wv)
    }
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        self.push(wv)
    }
    fn finish_bundle(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.out.send(chunk)?;
        }
        Ok(())
    }
    fn teardown(&mut self) {}
}

/// Appends one element as Beam's `windowed_value`.
pub(crate) fn encode_windowed<T: Coded>(
    wv: &WindowedValue<T>,
    window: WindowCoder,
    out: &mut Vec<u8>,
) -> Result<()> {
    crate::wire::encode_timestamp(wv.timestamp, out);
    out.extend_from_slice(&1i32.to_be_bytes());
    crate::wire::encode_window(&wv.window, window, out).map_err(|e| anyhow!("{e}"))?;
    crate::wire::encode_pane(&Pane::NO_FIRING, out);
    wv.value.encode_wire(out);
    Ok(())
}

// ---- Lifted combines ----

/// The phases of a lifted `combine_per_key`, typed by its key, input and
/// combiner.
pub(crate) trait LiftedCombine: Send + Sync {
    /// The accumulator's coder.
    fn accumulator_coder(&self) -> CoderSpec;
    /// `Box<dyn Receiver<(K, V)>>` (as `Any`): combines each key's values
    /// of a bundle into an accumulator, written as `(K, Acc)` to `out`.
    /// The accumulators are written when the chain is torn down; a failure
    /// then sets `env.run.failed`, which the caller must check.
    fn precombine(
        &self,
        env: &Env,
        window: WindowCoder,
        out: Box<dyn ByteSink>,
    ) -> Box<dyn Any + Send>;
    /// Decodes `(K, Iterable<Acc>)` and merges each key's accumulators; then
    /// extracts outputs into `node`'s consumers, or writes `(K, Acc)` to `out`.
    fn merge(
        &self,
        env: &Env,
        node: usize,
        window: WindowCoder,
        out: Option<Box<dyn ByteSink>>,
    ) -> Result<Box<dyn ByteReceiver>>;
    /// Decodes `(K, Acc)` and extracts outputs into `node`'s consumers.
    fn extract(&self, env: &Env, node: usize, window: WindowCoder)
    -> Result<Box<dyn ByteReceiver>>;
    /// Decodes `(K, Iterable<V>)` (a runner that does not lift) and
    /// combines each group into `node`'s consumers.
    fn grouped(&self, env: &Env, node: usize, window: WindowCoder)
    -> Result<Box<dyn ByteReceiver>>;
    /// Whether an empty input gives the combiner's empty output
    /// (`combine_globally`).
    fn global_default(&self) -> bool;
    /// Beam's `InjectDefault`: pushes the combined elements `values` (the
    /// wire encodings of `(K, Out)`, read as a side input) into `node`'s
    /// consumers, or the combiner's empty output when there are none.
    fn inject_default(&self, env: &Env, node: usize, values: &[u8]) -> Result<()>;
}

/// The [`LiftedCombine`] of `combine` on `(K, V)`; `global_default` for
/// `combine_globally`.
pub(crate) fn lifted<K, C>(combine: C, global_default: bool) -> Arc<dyn LiftedCombine>
where
    K: Element + Hash + Eq,
    C: CombineFn,
{
    Arc::new(Lifted::<K, C> {
        combine,
        global_default,
        _t: PhantomData,
    })
}

struct Lifted<K, C> {
    combine: C,
    global_default: bool,
    _t: PhantomData<fn() -> K>,
}

/// Accumulators of a precombine, by window and key. They are kept across
/// the sub-bundles a chain runs (a source's parts: one `finish_bundle`
/// each) and written when the table reaches [`PRECOMBINE_KEYS`] keys or the
/// chain is torn down: written at every `finish_bundle`, a word count of
/// 100 MB sent the runner each key once per 1 MB part.
struct Precombine<K, C: CombineFn> {
    combine: C,
    window: WindowCoder,
    accs: HashMap<(Window, K), C::Acc, foldhash::fast::RandomState>,
    out: Box<dyn ByteSink>,
    /// The run's failure flag: set when the last write (at teardown) fails,
    /// so the bundle fails instead of losing the accumulators.
    failed: Arc<std::sync::atomic::AtomicBool>,
}

/// How many keys a precombine holds before it writes its accumulators.
const PRECOMBINE_KEYS: usize = 1 << 17;

impl<K: Element + Hash + Eq, C: CombineFn> Precombine<K, C> {
    /// Writes and clears the accumulators.
    fn flush(&mut self) -> Result<()> {
        if self.accs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        for ((window, k), acc) in self.accs.drain() {
            let wv = WindowedValue {
                timestamp: window.max_timestamp(),
                window,
                value: (k, acc),
            };
            encode_windowed(&wv, self.window, &mut buf)?;
            if buf.len() >= CHUNK {
                self.out.send(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CHUNK + 4096),
                ))?;
            }
        }
        if !buf.is_empty() {
            self.out.send(buf)?;
        }
        Ok(())
    }
}

impl<K, C> Receiver<(K, C::In)> for Precombine<K, C>
where
    K: Element + Hash + Eq,
    C: CombineFn,
{
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<(K, C::In)>) -> Result<()> {
        let (k, v) = wv.value;
        let combine = &self.combine;
        let acc = self
            .accs
            .entry((wv.window, k))
            .or_insert_with(|| combine.create());
        combine.add_input(acc, v);
        if self.accs.len() >= PRECOMBINE_KEYS {
            self.flush()?;
        }
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn teardown(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!("a precombine could not write its accumulators: {e:#}");
            self.failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Owns a typed chain and finishes it when the input ends.
struct Chained<T, F> {
    decode: F,
    chain: Box<dyn Receiver<T>>,
}

impl<T: Send, F: ByteReceiver> ByteReceiver for Chained<T, F> {
    fn receive(&mut self, data: &[u8]) -> Result<()> {
        self.decode.receive(data)
    }
    fn finish(&mut self) -> Result<()> {
        self.decode.finish()?;
        self.chain.finish_bundle()
    }
    fn teardown(&mut self) {
        self.chain.teardown()
    }
}

/// A receiver shared by a decoding closure and its [`Chained`] owner.
struct SharedChain<T>(Arc<std::sync::Mutex<Box<dyn Receiver<T>>>>);

impl<T> Receiver<T> for SharedChain<T> {
    fn start_bundle(&mut self) -> Result<()> {
        self.0
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .start_bundle()
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        self.0.lock().map_err(|_| anyhow!("poisoned"))?.receive(wv)
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.0
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .finish_bundle()
    }
    fn teardown(&mut self) {
        if let Ok(mut c) = self.0.lock() {
            c.teardown()
        }
    }
}

/// Decodes elements of `In` and hands them, with `out`, to `step`; at the
/// end finishes `out`.
fn decode_into<In, Out>(
    window: WindowCoder,
    out: Box<dyn Receiver<Out>>,
    mut step: impl FnMut(WireValue<In>, &mut dyn Receiver<Out>) -> Result<()> + Send + 'static,
) -> Result<Box<dyn ByteReceiver>>
where
    In: Coded + Send + 'static,
    Out: Send + 'static,
{
    let shared = Arc::new(std::sync::Mutex::new(out));
    shared
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .start_bundle()?;
    let inner = shared.clone();
    let decode = Decoding {
        window,
        carry: Vec::new(),
        push: move |wv: WireValue<In>| {
            let mut chain = inner.lock().map_err(|_| anyhow!("poisoned"))?;
            step(wv, &mut **chain)
        },
        _t: PhantomData,
    };
    Ok(Box::new(Chained {
        decode,
        chain: Box::new(SharedChain(shared)) as Box<dyn Receiver<Out>>,
    }))
}

impl<K, C> LiftedCombine for Lifted<K, C>
where
    K: Element + Hash + Eq,
    C: CombineFn,
{
    fn accumulator_coder(&self) -> CoderSpec {
        C::Acc::coder_spec()
    }

    fn precombine(
        &self,
        env: &Env,
        window: WindowCoder,
        out: Box<dyn ByteSink>,
    ) -> Box<dyn Any + Send> {
        let r: Box<dyn Receiver<(K, C::In)>> = Box::new(Precombine::<K, C> {
            combine: self.combine.clone(),
            window,
            accs: HashMap::default(),
            out,
            failed: env.run.failed.clone(),
        });
        Box::new(r)
    }

    fn merge(
        &self,
        env: &Env,
        node: usize,
        window: WindowCoder,
        out: Option<Box<dyn ByteSink>>,
    ) -> Result<Box<dyn ByteReceiver>> {
        let combine = self.combine.clone();
        let merge_all = move |accs: Vec<C::Acc>| -> C::Acc {
            let mut it = accs.into_iter();
            let mut acc = it.next().unwrap_or_else(|| combine.create());
            for a in it {
                combine.merge(&mut acc, a);
            }
            acc
        };
        match out {
            Some(sink) => {
                let chain: Box<dyn Receiver<(K, C::Acc)>> = Box::new(Encoding {
                    window,
                    buf: Vec::new(),
                    out: sink,
                    _t: PhantomData,
                });
                decode_into::<(K, Vec<C::Acc>), (K, C::Acc)>(window, chain, move |wv, out| {
                    push_windows(wv, &mut MapInto(out, |(k, accs)| (k, merge_all(accs))))
                })
            }
            None => {
                let combine = self.combine.clone();
                let chain = env.output::<(K, C::Out)>(node)?;
                decode_into::<(K, Vec<C::Acc>), (K, C::Out)>(window, chain, move |wv, out| {
                    push_windows(
                        wv,
                        &mut MapInto(out, |(k, accs)| (k, combine.extract(merge_all(accs)))),
                    )
                })
            }
        }
    }

    fn extract(
        &self,
        env: &Env,
        node: usize,
        window: WindowCoder,
    ) -> Result<Box<dyn ByteReceiver>> {
        let combine = self.combine.clone();
        let chain = env.output::<(K, C::Out)>(node)?;
        decode_into::<(K, C::Acc), (K, C::Out)>(window, chain, move |wv, out| {
            push_windows(wv, &mut MapInto(out, |(k, acc)| (k, combine.extract(acc))))
        })
    }

    fn grouped(
        &self,
        env: &Env,
        node: usize,
        window: WindowCoder,
    ) -> Result<Box<dyn ByteReceiver>> {
        let combine = self.combine.clone();
        let chain = env.output::<(K, C::Out)>(node)?;
        decode_into::<(K, Vec<C::In>), (K, C::Out)>(window, chain, move |wv, out| {
            push_windows(
                wv,
                &mut MapInto(out, |(k, vs): (K, Vec<C::In>)| {
                    let mut acc = combine.create();
                    for v in vs {
                        combine.add_input(&mut acc, v);
                    }
                    (k, combine.extract(acc))
                }),
            )
        })
    }

    fn global_default(&self) -> bool {
        self.global_default
    }

    fn inject_default(&self, env: &Env, node: usize, values: &[u8]) -> Result<()> {
        let mut items = Vec::new();
        let mut rest = values;
        while !rest.is_empty() {
            let value = <(K, C::Out)>::decode_wire(&mut rest)
                .map_err(|e| anyhow!("the combined value: {e}"))?;
            // As the combine emitted it: at the end of the global window.
            items.push(WindowedValue {
                value,
                timestamp: Window::Global.max_timestamp(),
                window: Window::Global,
            });
        }
        if items.is_empty()
            && let Some(out) = self.combine.empty_output()
        {
            let unit = K::decode_outer(&[]).map_err(|e| anyhow!("{e}"))?;
            items.push(WindowedValue::global((unit, out)));
        }
        let mut chain = env.output::<(K, C::Out)>(node)?;
        let r = (|| {
            chain.start_bundle()?;
            for wv in items {
                chain.receive(wv)?;
            }
            chain.finish_bundle()
        })();
        chain.teardown();
        r
    }
}

/// A receiver of `A` that maps each value to `B` for `out`.
struct MapInto<'a, B, F>(&'a mut dyn Receiver<B>, F);

impl<A, B, F: FnMut(A) -> B + Send> Receiver<A> for MapInto<'_, B, F> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<A>) -> Result<()> {
        let WindowedValue {
            value,
            timestamp,
            window,
        } = wv;
        self.0.receive(WindowedValue {
            value: (self.1)(value),
            timestamp,
            window,
        })
    }
    fn finish_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn teardown(&mut self) {}
}

//! The DirectRunner's barriers: what a shuffle, a staging point or a lifted
//! combine is when this process runs the graph. The graph's constructors
//! (`pipeline.rs`) describe the transforms; these functions give each one
//! its DirectRunner execution: the sink its producers push into (a maker),
//! the root that reads the shuffled data back, and the run state they share
//! (a spilling [`Shuffle`] or per-partition accumulators).

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};

use crate::coders::Coded as _;
use crate::coders::{CoderError, decode_nested};
use crate::combiners::CombineFn;
use crate::graph::{
    Bundle, Element, Env, Maker, Receiver, RootOp, RunControl, StateInit, run_bundles, vec_bundles,
};
use crate::io::ShardWriter;
use crate::shuffle::{Batch, Shuffle, partition_of};
use crate::window::{Window, WindowFn, WindowedValue};

/// What a barrier node needs to run on the DirectRunner.
pub(crate) struct Barrier<T> {
    /// Builds the sink the node's input pushes into.
    pub maker: Maker<T>,
    /// Reads the collected data back as the node's output.
    pub root: Arc<dyn RootOp>,
    /// The state the sinks fill and the root drains.
    pub init_state: StateInit,
}

/// A spilling shuffle of `cfg.workers * 4` partitions named after `label`.
fn shuffle_state(label: &str) -> StateInit {
    shuffle_state_sharing(label, 1)
}

/// A shuffle holding `1/share` of the memory budget.
fn shuffle_state_sharing(label: &str, share: usize) -> StateInit {
    let l = label.to_string();
    Arc::new(move |cfg| {
        Ok(Arc::new(Shuffle::new(
            &l,
            cfg.workers * 4,
            cfg.memory_budget / share,
            cfg.temp_dir.clone(),
            cfg.spill.clone(),
        )))
    })
}

/// Materializes a collection so that what follows starts once it is complete.
pub(crate) fn stage<T: Element>(label: &str, node: usize) -> Barrier<T> {
    Barrier {
        maker: Arc::new(move |env| {
            let shuffle = env.state::<Shuffle>(node)?;
            let parts = shuffle.num_parts();
            Ok(Box::new(StageSink::<T> {
                shuffle,
                local: (0..parts).map(|_| Batch::default()).collect(),
                bytes: 0,
                key: Vec::new(),
                _t: PhantomData,
            }))
        }),
        root: Arc::new(StageRoot::<T> {
            label: label.to_string(),
            _t: PhantomData,
        }),
        init_state: shuffle_state(label),
    }
}

/// Groups values by key and window.
pub(crate) fn group_by_key<K: Element, V: Element>(label: &str, node: usize) -> Barrier<(K, V)> {
    Barrier {
        maker: Arc::new(move |env| {
            let shuffle = env.state::<Shuffle>(node)?;
            let parts = shuffle.num_parts();
            Ok(Box::new(GbkSink::<K, V> {
                shuffle,
                local: (0..parts).map(|_| Batch::default()).collect(),
                bytes: 0,
                key: Vec::new(),
                _t: PhantomData,
            }))
        }),
        root: Arc::new(GbkRoot::<K, V> {
            label: label.to_string(),
            _t: PhantomData,
        }),
        init_state: shuffle_state(label),
    }
}

/// Combines values by key and window, lifted: each worker combines what it
/// sees in a bounded table; the table's accumulators go through a spilling
/// shuffle and each key's accumulators are merged after it.
pub(crate) fn combine_per_key<K, C>(
    label: &str,
    combine: C,
    global_default: bool,
    node: usize,
) -> Barrier<(K, C::In)>
where
    K: Element + Hash + Eq,
    C: CombineFn,
{
    let c = combine.clone();
    Barrier {
        maker: Arc::new(move |env| {
            let shuffle = env.state::<Shuffle>(node)?;
            let parts = shuffle.num_parts();
            // The workers' tables together hold about half of the budget,
            // the shuffle the other half.
            let limit = (env.run.config.memory_budget / (2 * env.run.config.workers.max(1)))
                .clamp(16 << 10, 256 << 20);
            Ok(Box::new(CombineSink::<K, C> {
                shuffle,
                combine: c.clone(),
                local: Vec::new(),
                last: 0,
                bytes: 0,
                limit,
                scratch: Vec::new(),
                batches: (0..parts).map(|_| Batch::default()).collect(),
                _t: PhantomData,
            }))
        }),
        root: Arc::new(CombineRoot::<K, C> {
            label: label.to_string(),
            combine,
            global_default,
            _t: PhantomData,
        }),
        init_state: shuffle_state_sharing(label, 2),
    }
}

/// Writes a file sink: lines are sharded by hash and sorted; each shard is
/// written under a temporary name and all move into place at the end.
pub(crate) fn write_files(writer: Arc<ShardWriter>, node: usize) -> Barrier<String> {
    let l = writer.label.clone();
    let shards = writer.write.num_shards;
    Barrier {
        maker: Arc::new(move |env| {
            let shuffle = env.state::<Shuffle>(node)?;
            let parts = shuffle.num_parts();
            Ok(Box::new(WriteSink {
                shuffle,
                local: (0..parts).map(|_| Batch::default()).collect(),
                bytes: 0,
            }))
        }),
        root: Arc::new(WriteRoot { writer }),
        init_state: Arc::new(move |cfg| {
            Ok(Arc::new(Shuffle::new(
                &l,
                shards,
                cfg.memory_budget,
                cfg.temp_dir.clone(),
                cfg.spill.clone(),
            )))
        }),
    }
}

// ---- Stage ----

struct StageSink<T> {
    shuffle: Arc<Shuffle>,
    local: Vec<Batch>,
    bytes: usize,
    /// The key being encoded (reused).
    key: Vec<u8>,
    _t: PhantomData<fn(T)>,
}

impl<T: Element> Receiver<T> for StageSink<T> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        self.receive_ref(&wv)
    }
    fn receive_ref(&mut self, wv: &WindowedValue<T>) -> Result<()> {
        let key = &mut self.key;
        key.clear();
        wv.window.encode(key);
        key.extend_from_slice(&((wv.timestamp as u64) ^ (1 << 63)).to_be_bytes());
        wv.value.encode(key);
        self.bytes += key.len() + 16;
        let p = partition_of(key, self.local.len());
        self.local[p].push(key, |_| {});
        if self.bytes > (1 << 20) {
            self.finish_bundle()?;
        }
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        for (p, batch) in self.local.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.shuffle.add(p, batch)?;
            }
        }
        self.bytes = 0;
        Ok(())
    }
    fn teardown(&mut self) {}
}

struct StageRoot<T> {
    label: String,
    _t: PhantomData<fn() -> T>,
}

struct StageBundle<T> {
    label: String,
    shuffle: Arc<Shuffle>,
    part: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Bundle<T> for StageBundle<T> {
    fn run(self: Box<Self>, out: &mut dyn Receiver<T>, control: &RunControl) -> Result<()> {
        let mut merged = self.shuffle.drain(self.part)?;
        let mut n = 0u64;
        while merged.advance()? {
            n += 1;
            if n.is_multiple_of(128) {
                control.check()?;
            }
            let mut k: &[u8] = merged.key();
            let window = Window::decode(&mut k).map_err(|e| decode_err(&self.label, e))?;
            if k.len() < 8 {
                return Err(anyhow!(
                    "transform '{}': staged element is truncated",
                    self.label
                ));
            }
            let (ts, rest) = k.split_at(8);
            let mut b = [0u8; 8];
            b.copy_from_slice(ts);
            let timestamp = (u64::from_be_bytes(b) ^ (1 << 63)) as i64;
            let value = decode_nested::<T>(rest).map_err(|e| decode_err(&self.label, e))?;
            out.receive(WindowedValue {
                value,
                timestamp,
                window,
            })?;
        }
        Ok(())
    }
}

impl<T: Element> RootOp for StageRoot<T> {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        let shuffle = env.state::<Shuffle>(node)?;
        let bundles: Vec<Box<dyn Bundle<T>>> = (0..shuffle.num_parts())
            .map(|part| {
                Box::new(StageBundle::<T> {
                    label: self.label.clone(),
                    shuffle: shuffle.clone(),
                    part,
                    _t: PhantomData,
                }) as Box<dyn Bundle<T>>
            })
            .collect();
        run_bundles(node, env, bundles)
    }
}

// ---- GroupByKey ----

struct GbkSink<K, V> {
    shuffle: Arc<Shuffle>,
    local: Vec<Batch>,
    bytes: usize,
    /// The key being encoded (reused).
    key: Vec<u8>,
    _t: PhantomData<fn(K, V)>,
}

impl<K: Element, V: Element> GbkSink<K, V> {
    fn flush(&mut self) -> Result<()> {
        for (p, batch) in self.local.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.shuffle.add(p, batch)?;
            }
        }
        self.bytes = 0;
        Ok(())
    }
}

impl<K: Element, V: Element> Receiver<(K, V)> for GbkSink<K, V> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<(K, V)>) -> Result<()> {
        self.receive_ref(&wv)
    }
    fn receive_ref(&mut self, wv: &WindowedValue<(K, V)>) -> Result<()> {
        let key = &mut self.key;
        key.clear();
        wv.window.encode(key);
        wv.value.0.encode(key);
        let p = partition_of(key, self.local.len());
        let batch = &mut self.local[p];
        let before = batch.bytes();
        batch.push(key, |v| wv.value.1.encode(v));
        self.bytes += batch.bytes() - before;
        if self.bytes > (1 << 20) {
            self.flush()?;
        }
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.flush()
    }
    fn teardown(&mut self) {}
}

struct GbkRoot<K, V> {
    label: String,
    _t: PhantomData<fn(K, V)>,
}

struct GbkBundle<K, V> {
    label: String,
    shuffle: Arc<Shuffle>,
    part: usize,
    _t: PhantomData<fn(K, V)>,
}

fn decode_err(label: &str, e: CoderError) -> anyhow::Error {
    anyhow!("transform '{label}': {e}")
}

impl<K: Element, V: Element> Bundle<(K, Vec<V>)> for GbkBundle<K, V> {
    fn run(
        self: Box<Self>,
        out: &mut dyn Receiver<(K, Vec<V>)>,
        control: &RunControl,
    ) -> Result<()> {
        let mut merged = self.shuffle.drain(self.part)?;
        let mut n = 0u64;
        let mut key_bytes = Vec::new();
        let mut more = merged.advance()?;
        while more {
            n += 1;
            if n.is_multiple_of(128) {
                control.check()?;
            }
            key_bytes.clear();
            key_bytes.extend_from_slice(merged.key());
            let mut k: &[u8] = &key_bytes;
            let window = Window::decode(&mut k).map_err(|e| decode_err(&self.label, e))?;
            let key = decode_nested::<K>(k).map_err(|e| decode_err(&self.label, e))?;
            let mut vs = Vec::new();
            loop {
                vs.push(
                    decode_nested::<V>(merged.value()).map_err(|e| decode_err(&self.label, e))?,
                );
                more = merged.advance()?;
                if !more || merged.key() != key_bytes.as_slice() {
                    break;
                }
            }
            out.receive(WindowedValue {
                value: (key, vs),
                timestamp: window.max_timestamp(),
                window,
            })?;
        }
        Ok(())
    }
}

impl<K: Element, V: Element> RootOp for GbkRoot<K, V> {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        let shuffle = env.state::<Shuffle>(node)?;
        let bundles: Vec<Box<dyn Bundle<(K, Vec<V>)>>> = (0..shuffle.num_parts())
            .map(|part| {
                Box::new(GbkBundle::<K, V> {
                    label: self.label.clone(),
                    shuffle: shuffle.clone(),
                    part,
                    _t: PhantomData,
                }) as Box<dyn Bundle<(K, Vec<V>)>>
            })
            .collect();
        run_bundles(node, env, bundles)
    }
}

// ---- CombinePerKey with lifting ----

/// A worker's partial accumulators: one map per window (batch pipelines
/// see few windows), so a lookup hashes only the key. The table lives as
/// long as the worker's chain (all the bundles of a root); it is written
/// to the shuffle when its estimated size passes `limit` and at teardown.
struct CombineSink<K, C: CombineFn> {
    shuffle: Arc<Shuffle>,
    combine: C,
    /// Accumulators by window, then by the key's encoding.
    local: Vec<(Window, KeyMap<C::Acc>)>,
    last: usize,
    /// Estimated bytes of the table: encoded keys plus a fixed cost per entry.
    bytes: usize,
    limit: usize,
    /// Encodes a key (reused).
    scratch: Vec<u8>,
    batches: Vec<Batch>,
    _t: PhantomData<fn(K)>,
}

/// A key's encoding, the table's key: Beam groups keys by their encoded
/// bytes, as the shuffle after the table does. Short encodings (most keys)
/// are stored in the entry itself, so a lookup compares a few machine words
/// instead of following a pointer to the key's heap copy, and the flush
/// writes them to the shuffle as they are.
#[derive(Clone, PartialEq, Eq)]
enum EncodedKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl Hash for EncodedKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The bytes alone: the variant and padding follow from them.
        state.write(self.as_bytes())
    }
}

/// Encodings up to this long are stored inline (the entry stays 24 bytes).
const INLINE_KEY: usize = 22;

impl EncodedKey {
    #[inline]
    fn new(encoded: &[u8]) -> EncodedKey {
        if encoded.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..encoded.len()].copy_from_slice(encoded);
            EncodedKey::Inline {
                len: encoded.len() as u8,
                bytes,
            }
        } else {
            EncodedKey::Heap(encoded.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            EncodedKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            EncodedKey::Heap(b) => b,
        }
    }
}

/// foldhash is several times faster than SipHash here, and these maps
/// never see keys chosen to collide from a network.
type KeyMap<A> = HashMap<EncodedKey, A, foldhash::fast::RandomState>;

/// What an accumulator table entry costs besides its key's bytes.
const ENTRY_OVERHEAD: usize = 48;

impl<K: Element + Hash + Eq, C: CombineFn> CombineSink<K, C> {
    /// Encodes the table's accumulators into the shuffle, keyed by
    /// (window, key) as GroupByKey keys are.
    fn flush(&mut self) -> Result<()> {
        let parts = self.batches.len();
        let key = &mut self.scratch;
        for (window, map) in &mut self.local {
            for (k, acc) in map.drain() {
                key.clear();
                window.encode(key);
                key.extend_from_slice(k.as_bytes());
                let p = partition_of(key, parts);
                let batch = &mut self.batches[p];
                batch.push(key, |v| acc.encode(v));
                if batch.bytes() > (256 << 10) {
                    self.shuffle.add(p, batch)?;
                }
            }
        }
        // One window's drained map keeps its capacity for the next fill.
        if self.local.len() > 1 {
            self.local.clear();
            self.last = 0;
        }
        self.bytes = 0;
        for (p, batch) in self.batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.shuffle.add(p, batch)?;
            }
        }
        Ok(())
    }

    /// Adds `v` to the accumulator of `k` in `window`; flushes when the
    /// table is full.
    #[inline]
    fn add(&mut self, window: Window, k: &K, v: C::In) -> Result<()> {
        self.scratch.clear();
        k.encode(&mut self.scratch);
        let key = EncodedKey::new(&self.scratch);
        let combine = &self.combine;
        let map = window_map(&mut self.local, &mut self.last, window);
        if let Some(acc) = map.get_mut(&key) {
            combine.add_input(acc, v);
            return Ok(());
        }
        let mut acc = combine.create();
        combine.add_input(&mut acc, v);
        map.insert(key, acc);
        self.bytes +=
            self.scratch.len() + ENTRY_OVERHEAD + std::mem::size_of::<(EncodedKey, C::Acc)>();
        if self.bytes > self.limit {
            self.flush()?;
        }
        Ok(())
    }
}

/// The map of `window` in `local`, remembering it in `last`.
#[inline]
fn window_map<'a, A>(
    local: &'a mut Vec<(Window, KeyMap<A>)>,
    last: &mut usize,
    window: Window,
) -> &'a mut KeyMap<A> {
    if local.get(*last).is_none_or(|(w, _)| *w != window) {
        *last = match local.iter().position(|(w, _)| *w == window) {
            Some(i) => i,
            None => {
                local.push((window, KeyMap::default()));
                local.len() - 1
            }
        };
    }
    &mut local[*last].1
}

impl<K: Element + Hash + Eq, C: CombineFn> Receiver<(K, C::In)> for CombineSink<K, C> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<(K, C::In)>) -> Result<()> {
        let (k, v) = wv.value;
        self.add(wv.window, &k, v)
    }
    fn receive_ref(&mut self, wv: &WindowedValue<(K, C::In)>) -> Result<()> {
        let (k, v) = &wv.value;
        self.add(wv.window, k, v.clone())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn teardown(&mut self) {
        // The last accumulators; a failure here fails the combine's reader.
        if let Err(e) = self.flush() {
            self.shuffle.fail(e);
        }
    }
}

struct CombineRoot<K, C> {
    label: String,
    combine: C,
    global_default: bool,
    _t: PhantomData<fn() -> K>,
}

/// One partition of the combine's shuffle: each (window, key)'s
/// accumulators, in key order.
struct CombineBundle<K, C> {
    label: String,
    shuffle: Arc<Shuffle>,
    part: usize,
    combine: C,
    _t: PhantomData<fn() -> K>,
}

impl<K: Element + Hash + Eq, C: CombineFn> Bundle<(K, C::Out)> for CombineBundle<K, C> {
    fn run(
        self: Box<Self>,
        out: &mut dyn Receiver<(K, C::Out)>,
        control: &RunControl,
    ) -> Result<()> {
        let mut merged = self.shuffle.drain(self.part)?;
        let mut n = 0u64;
        let mut key_bytes = Vec::new();
        let mut more = merged.advance()?;
        while more {
            n += 1;
            if n.is_multiple_of(128) {
                control.check()?;
            }
            key_bytes.clear();
            key_bytes.extend_from_slice(merged.key());
            let mut k: &[u8] = &key_bytes;
            let window = Window::decode(&mut k).map_err(|e| decode_err(&self.label, e))?;
            let key = decode_nested::<K>(k).map_err(|e| decode_err(&self.label, e))?;
            let mut acc =
                decode_nested::<C::Acc>(merged.value()).map_err(|e| decode_err(&self.label, e))?;
            loop {
                more = merged.advance()?;
                if !more || merged.key() != key_bytes.as_slice() {
                    break;
                }
                let a = decode_nested::<C::Acc>(merged.value())
                    .map_err(|e| decode_err(&self.label, e))?;
                self.combine.merge(&mut acc, a);
            }
            out.receive(WindowedValue {
                value: (key, self.combine.extract(acc)),
                timestamp: window.max_timestamp(),
                window,
            })?;
        }
        Ok(())
    }
}

impl<K: Element + Hash + Eq, C: CombineFn> RootOp for CombineRoot<K, C> {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        let shuffle = env.state::<Shuffle>(node)?;
        shuffle.check()?;
        if shuffle.is_empty()? {
            if self.global_default && env.graph.nodes[node].windowing == WindowFn::Global {
                // Combining an empty collection globally gives the empty result
                // (in the global window only: other windows have no default, as in Beam).
                if let Some(out) = self.combine.empty_output() {
                    let unit = K::decode_outer(&[]).map_err(|e| anyhow!("{e}"))?;
                    let bundles = vec_bundles(vec![WindowedValue::global((unit, out))], 1);
                    return run_bundles(node, env, bundles);
                }
            }
            return Ok(());
        }
        let bundles: Vec<Box<dyn Bundle<(K, C::Out)>>> = (0..shuffle.num_parts())
            .map(|part| {
                Box::new(CombineBundle::<K, C> {
                    label: self.label.clone(),
                    shuffle: shuffle.clone(),
                    part,
                    combine: self.combine.clone(),
                    _t: PhantomData,
                }) as Box<dyn Bundle<(K, C::Out)>>
            })
            .collect();
        run_bundles(node, env, bundles)
    }
}

// ---- File sinks ----

struct WriteSink {
    shuffle: Arc<Shuffle>,
    local: Vec<Batch>,
    bytes: usize,
}

impl WriteSink {
    fn push(&mut self, line: &[u8]) -> Result<()> {
        let p = partition_of(line, self.local.len());
        self.bytes += line.len() + 16;
        self.local[p].push(line, |_| {});
        if self.bytes > (1 << 20) {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        for (p, b) in self.local.iter_mut().enumerate() {
            if !b.is_empty() {
                self.shuffle.add(p, b)?;
            }
        }
        self.bytes = 0;
        Ok(())
    }
}

impl Receiver<String> for WriteSink {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<String>) -> Result<()> {
        self.push(wv.value.as_bytes())
    }
    fn receive_ref(&mut self, wv: &WindowedValue<String>) -> Result<()> {
        self.push(wv.value.as_bytes())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.flush()
    }
    fn teardown(&mut self) {}
}

struct WriteRoot {
    writer: Arc<ShardWriter>,
}

impl RootOp for WriteRoot {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        let w = &self.writer;
        let shuffle = env.state::<Shuffle>(node)?;
        let dir = w.dir();
        crate::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "transform '{}': cannot create directory {}",
                w.label,
                dir.display()
            )
        })?;
        let tmp = crate::fs::TempDir::new_in(&dir, ".bigflow-temp-").with_context(|| {
            format!(
                "transform '{}': cannot create a temporary directory in {}",
                w.label,
                dir.display()
            )
        })?;
        let temps: Vec<PathBuf> = (0..w.write.num_shards)
            .map(|i| tmp.path().join(format!("shard-{i}")))
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = env.run.config.workers.clamp(1, temps.len());
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= temps.len() {
                                return Ok(());
                            }
                            let mut merged = shuffle.drain(i)?;
                            let mut lines = || {
                                Ok(if merged.advance()? {
                                    Some(merged.key().to_vec())
                                } else {
                                    None
                                })
                            };
                            w.write_shard(i, &temps[i], &mut lines, &env.run.control)?;
                        }
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a writer thread panicked")))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        // Every shard is complete: move them into place.
        let finals = w.finalize(&temps.into_iter().enumerate().collect::<Vec<_>>())?;
        drop(tmp);
        let names = finals.into_iter().map(WindowedValue::global).collect();
        run_bundles::<String>(node, env, vec_bundles(names, 1))
    }
}

//! The DirectRunner's barriers: what a shuffle, a staging point or a lifted
//! combine is when this process runs the graph. The graph's constructors
//! (`pipeline.rs`) describe the transforms; these functions give each one
//! its DirectRunner execution: the sink its producers push into (a maker),
//! the root that reads the shuffled data back, and the run state they share
//! (a spilling [`Shuffle`] or per-partition accumulators).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow};

use crate::coders::Coded as _;
use crate::coders::{CoderError, decode_nested, encode_to_vec};
use crate::combiners::CombineFn;
use crate::graph::{
    Bundle, Element, Env, Maker, Receiver, RootOp, RunControl, StateInit, run_bundles, vec_bundles,
};
use crate::io::ShardWriter;
use crate::shuffle::{Record, Shuffle, partition_of};
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
    let l = label.to_string();
    Arc::new(move |cfg| {
        Ok(Arc::new(Shuffle::new(
            &l,
            cfg.workers * 4,
            cfg.memory_budget,
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
                local: (0..parts).map(|_| Vec::new()).collect(),
                bytes: 0,
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
                local: (0..parts).map(|_| Vec::new()).collect(),
                bytes: 0,
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
/// sees before the partitions merge.
pub(crate) fn combine_per_key<K, C>(
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
            Ok(Box::new(CombineSink::<K, C> {
                state: env.state::<CombineState<K, C::Acc>>(node)?,
                combine: c.clone(),
                local: Vec::new(),
                last: 0,
                entries: 0,
            }))
        }),
        root: Arc::new(CombineRoot::<K, C> {
            combine,
            global_default,
            _t: PhantomData,
        }),
        init_state: Arc::new(|cfg| {
            Ok(Arc::new(CombineState::<K, C::Acc> {
                parts: (0..cfg.workers * 4)
                    .map(|_| Mutex::new(AccMap::default()))
                    .collect(),
            }))
        }),
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
                local: (0..parts).map(|_| Vec::new()).collect(),
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
    local: Vec<Vec<Record>>,
    bytes: usize,
    _t: PhantomData<fn(T)>,
}

impl<T: Element> Receiver<T> for StageSink<T> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        let mut key = Vec::with_capacity(48);
        wv.window.encode(&mut key);
        key.extend_from_slice(&((wv.timestamp as u64) ^ (1 << 63)).to_be_bytes());
        wv.value.encode(&mut key);
        self.bytes += key.len() + 64;
        let p = partition_of(&key, self.local.len());
        self.local[p].push((key, Vec::new()));
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
        while let Some((key, _)) = merged.next_record()? {
            n += 1;
            if n.is_multiple_of(128) {
                control.check()?;
            }
            let mut k: &[u8] = &key;
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
    local: Vec<Vec<Record>>,
    bytes: usize,
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
        let mut key = Vec::with_capacity(32);
        wv.window.encode(&mut key);
        wv.value.0.encode(&mut key);
        let mut value = Vec::with_capacity(16);
        wv.value.1.encode(&mut value);
        self.bytes += key.len() + value.len() + 64;
        let p = partition_of(&key, self.local.len());
        self.local[p].push((key, value));
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
        while let Some((key, values)) = merged.next_group()? {
            n += 1;
            if n.is_multiple_of(128) {
                control.check()?;
            }
            let mut k: &[u8] = &key;
            let window = Window::decode(&mut k).map_err(|e| decode_err(&self.label, e))?;
            let key = decode_nested::<K>(k).map_err(|e| decode_err(&self.label, e))?;
            let vs = values
                .iter()
                .map(|v| decode_nested::<V>(v))
                .collect::<Result<Vec<V>, _>>()
                .map_err(|e| decode_err(&self.label, e))?;
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

/// Accumulators by (window, key); foldhash is several times faster than
/// SipHash here and the maps never see untrusted keys from a network.
type AccMap<K, A> = HashMap<(Window, K), A, foldhash::fast::RandomState>;

struct CombineState<K, A> {
    parts: Vec<Mutex<AccMap<K, A>>>,
}

fn hash_partition<H: Hash>(key: &H, parts: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % parts as u64) as usize
}

/// Per-worker partial accumulators: one map per window (batch pipelines
/// see few windows per bundle), so a lookup hashes only the key.
struct CombineSink<K, C: CombineFn> {
    state: Arc<CombineState<K, C::Acc>>,
    combine: C,
    local: Vec<(Window, KeyMap<K, C::Acc>)>,
    last: usize,
    entries: usize,
}

type KeyMap<K, A> = HashMap<K, A, foldhash::fast::RandomState>;

impl<K: Element + Hash + Eq, C: CombineFn> CombineSink<K, C> {
    fn flush(&mut self) -> Result<()> {
        let parts = self.state.parts.len();
        let mut batches: Vec<Vec<((Window, K), C::Acc)>> = (0..parts).map(|_| Vec::new()).collect();
        for (window, map) in &mut self.local {
            for (k, acc) in map.drain() {
                let key = (*window, k);
                batches[hash_partition(&key, parts)].push((key, acc));
            }
        }
        self.local.clear();
        self.last = 0;
        self.entries = 0;
        for (p, batch) in batches.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let mut m = self.state.parts[p]
                .lock()
                .map_err(|_| anyhow!("poisoned"))?;
            for (k, acc) in batch {
                match m.get_mut(&k) {
                    Some(cur) => self.combine.merge(cur, acc),
                    None => {
                        m.insert(k, acc);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The map of `window` in `local`, remembering it in `last`.
fn window_map<'a, K, A>(
    local: &'a mut Vec<(Window, KeyMap<K, A>)>,
    last: &mut usize,
    window: Window,
) -> &'a mut KeyMap<K, A> {
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
        let combine = &self.combine;
        let map = window_map(&mut self.local, &mut self.last, wv.window);
        match map.get_mut(&k) {
            Some(acc) => combine.add_input(acc, v),
            None => {
                let mut acc = combine.create();
                combine.add_input(&mut acc, v);
                map.insert(k, acc);
                self.entries += 1;
                if self.entries >= (1 << 17) {
                    self.flush()?;
                }
            }
        }
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.flush()
    }
    fn teardown(&mut self) {}
}

struct CombineRoot<K, C> {
    combine: C,
    global_default: bool,
    _t: PhantomData<fn() -> K>,
}

struct CombineBundle<K, C: CombineFn> {
    entries: Vec<((Window, K), C::Acc)>,
    combine: C,
}

impl<K: Element + Hash + Eq, C: CombineFn> Bundle<(K, C::Out)> for CombineBundle<K, C> {
    fn run(
        self: Box<Self>,
        out: &mut dyn Receiver<(K, C::Out)>,
        control: &RunControl,
    ) -> Result<()> {
        let mut keyed: Vec<(Vec<u8>, (Window, K), C::Acc)> = self
            .entries
            .into_iter()
            .map(|(k, a)| (encode_to_vec(&k), k, a))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (_, (window, key), acc)) in keyed.into_iter().enumerate() {
            if (i + 1).is_multiple_of(128) {
                control.check()?;
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
        let state = env.state::<CombineState<K, C::Acc>>(node)?;
        let mut bundles: Vec<Box<dyn Bundle<(K, C::Out)>>> = Vec::new();
        for part in &state.parts {
            let entries: Vec<_> = part
                .lock()
                .map_err(|_| anyhow!("poisoned"))?
                .drain()
                .collect();
            if !entries.is_empty() {
                bundles.push(Box::new(CombineBundle::<K, C> {
                    entries,
                    combine: self.combine.clone(),
                }));
            }
        }
        if bundles.is_empty()
            && self.global_default
            && env.graph.nodes[node].windowing == WindowFn::Global
        {
            // Combining an empty collection globally gives the empty result
            // (in the global window only: other windows have no default, as in Beam).
            if let Some(out) = self.combine.empty_output() {
                let unit = K::decode_outer(&[]).map_err(|e| anyhow!("{e}"))?;
                bundles = vec_bundles(vec![WindowedValue::global((unit, out))], 1);
            }
        }
        run_bundles(node, env, bundles)
    }
}

// ---- File sinks ----

struct WriteSink {
    shuffle: Arc<Shuffle>,
    local: Vec<Vec<Record>>,
    bytes: usize,
}

impl WriteSink {
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
        let line = wv.value.into_bytes();
        let p = partition_of(&line, self.local.len());
        self.bytes += line.len() + 64;
        self.local[p].push((line, Vec::new()));
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
                            let mut lines = || Ok(merged.next_record()?.map(|(line, _)| line));
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

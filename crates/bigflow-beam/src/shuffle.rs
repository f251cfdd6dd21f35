//! The DirectRunner's shuffle: hash-partitioned, sorted, spilling to disk.
//!
//! Records are `(key bytes, value bytes)`. Writers encode them into local
//! [`Batch`]es (one byte buffer and an index each, no allocation per
//! record) and hand each batch to its partition (a hash of the key bytes,
//! the same on every run). When a partition's buffered bytes exceed its
//! share of the memory budget its index is sorted and the records are
//! written to a *run* file. Reading a partition merges the in-memory
//! records with its runs in (key, value) order (more than [`FAN_IN`] runs
//! are first merged into longer ones), so groups come out contiguous and
//! the output is deterministic no matter how many threads wrote. Readers
//! see each record in place ([`Merged::key`], [`Merged::value`]).

use std::cmp::Ordering as Cmp;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow};

use crate::graph::SpillStats;

/// Per-record bookkeeping counted against the budget besides its bytes
/// (its index entry).
const RECORD_OVERHEAD: usize = 16;

/// How many runs a merge reads at once.
const FAN_IN: usize = 64;

/// The partition of a key: a hash that does not change between runs (or
/// versions: it is written out here), eight bytes at a time.
pub(crate) fn partition_of(key: &[u8], parts: usize) -> usize {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    // Fold the well-mixed high bits into the low ones the modulo keeps.
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    ((h >> 32) % parts as u64) as usize
}

/// Where a record's bytes are in a buffer: key at `start`, then the value.
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    key_len: u32,
    value_len: u32,
}

impl Entry {
    #[inline]
    fn key<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.start..self.start + self.key_len as usize]
    }
    #[inline]
    fn value<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let v = self.start + self.key_len as usize;
        &data[v..v + self.value_len as usize]
    }
}

/// (key, value) order of two records.
#[inline]
fn compare(ka: &[u8], va: &[u8], kb: &[u8], vb: &[u8]) -> Cmp {
    ka.cmp(kb).then_with(|| va.cmp(vb))
}

/// Records on their way to one partition: their bytes back to back.
#[derive(Default)]
pub(crate) struct Batch {
    data: Vec<u8>,
    entries: Vec<Entry>,
}

impl Batch {
    /// Appends a record: `key`, then what `value` writes.
    #[inline]
    pub fn push(&mut self, key: &[u8], value: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        self.data.extend_from_slice(key);
        value(&mut self.data);
        let value_len = self.data.len() - start - key.len();
        self.entries.push(Entry {
            start,
            key_len: key.len() as u32,
            value_len: value_len as u32,
        });
    }

    /// Bytes the batch holds, as the budget counts them.
    pub fn bytes(&self) -> usize {
        self.data.len() + self.entries.len() * RECORD_OVERHEAD
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }
}

#[derive(Default)]
struct Part {
    mem: Batch,
    runs: Vec<PathBuf>,
}

/// The shared state of one shuffle.
pub(crate) struct Shuffle {
    label: String,
    parts: Vec<Mutex<Part>>,
    part_budget: usize,
    dir: PathBuf,
    stats: Arc<SpillStats>,
    /// A writer's failure found where it could not be returned (a
    /// combine's last flush at teardown): the reader reports it.
    failure: Mutex<Option<String>>,
}

impl Shuffle {
    pub fn new(
        label: &str,
        parts: usize,
        budget: usize,
        dir: PathBuf,
        stats: Arc<SpillStats>,
    ) -> Self {
        let parts = parts.max(1);
        Shuffle {
            label: label.to_string(),
            parts: (0..parts).map(|_| Mutex::new(Part::default())).collect(),
            part_budget: (budget / parts).max(4096),
            dir,
            stats,
            failure: Mutex::new(None),
        }
    }

    pub fn num_parts(&self) -> usize {
        self.parts.len()
    }

    /// Records a writer's failure for [`Shuffle::check`].
    pub fn fail(&self, e: anyhow::Error) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert_with(|| format!("{e:#}"));
        }
    }

    /// The failure a writer recorded, if any.
    pub fn check(&self) -> Result<()> {
        match self.failure.lock().map(|f| f.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(anyhow!("{e}")),
            Err(_) => Err(anyhow!("shuffle of '{}' is poisoned", self.label)),
        }
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> Result<bool> {
        for p in &self.parts {
            let p = p
                .lock()
                .map_err(|_| anyhow!("shuffle of '{}' is poisoned", self.label))?;
            if !p.mem.is_empty() || !p.runs.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Adds (and clears) a batch of records of partition `p`, spilling
    /// when over budget.
    pub fn add(&self, p: usize, batch: &mut Batch) -> Result<()> {
        let mut part = self.parts[p]
            .lock()
            .map_err(|_| anyhow!("shuffle of '{}' is poisoned", self.label))?;
        let base = part.mem.data.len();
        part.mem.data.extend_from_slice(&batch.data);
        part.mem.entries.extend(batch.entries.iter().map(|e| Entry {
            start: e.start + base,
            ..*e
        }));
        batch.clear();
        if part.mem.bytes() > self.part_budget {
            self.spill(p, &mut part)?;
        }
        Ok(())
    }

    fn spill(&self, p: usize, part: &mut Part) -> Result<()> {
        sort(&mut part.mem);
        let path = self.dir.join(format!(
            "shuffle-{}-p{p}-r{}",
            uuid::Uuid::new_v4(),
            part.runs.len()
        ));
        let mut w = self.run_writer(&path)?;
        let mut bytes = 0u64;
        let data = &part.mem.data;
        for e in &part.mem.entries {
            write_record(&mut w, e.key(data), e.value(data))?;
            bytes += 8 + u64::from(e.key_len) + u64::from(e.value_len);
        }
        self.finish_run(w, &path)?;
        // The buffers keep their capacity (within the budget) for the next run.
        part.mem.clear();
        part.runs.push(path);
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Takes partition `p` out as one sorted stream of records. More than
    /// [`FAN_IN`] runs are first merged into fewer, longer runs, so the
    /// files open and the read buffers stay bounded.
    pub fn drain(&self, p: usize) -> Result<Merged> {
        let mut part = self.parts[p]
            .lock()
            .map_err(|_| anyhow!("shuffle of '{}' is poisoned", self.label))?;
        let mut mem = std::mem::take(&mut part.mem);
        let mut runs = std::mem::take(&mut part.runs);
        drop(part);
        let mut merges = 0;
        while runs.len() > FAN_IN {
            let group: Vec<PathBuf> = runs.drain(..FAN_IN).collect();
            let mut merged = Merged::new(self.open_runs(group)?)?;
            let path = self
                .dir
                .join(format!("shuffle-{}-p{p}-m{merges}", uuid::Uuid::new_v4()));
            merges += 1;
            let mut w = self.run_writer(&path)?;
            while merged.advance()? {
                write_record(&mut w, merged.key(), merged.value())?;
            }
            self.finish_run(w, &path)?;
            runs.push(path);
        }
        sort(&mut mem);
        let mut sources = vec![Source::Mem { batch: mem, at: 0 }];
        sources.extend(self.open_runs(runs)?);
        Merged::new(sources)
    }

    fn open_runs(&self, runs: Vec<PathBuf>) -> Result<Vec<Source>> {
        // The read buffers of one merge share about a partition's budget.
        let cap = (self.part_budget / runs.len().max(1)).clamp(16 << 10, 1 << 18);
        let mut sources = Vec::with_capacity(runs.len());
        for path in runs {
            let file = File::open(&path).with_context(|| {
                format!(
                    "'{}': cannot open spill file {}",
                    self.label,
                    path.display()
                )
            })?;
            sources.push(Source::Run {
                reader: BufReader::with_capacity(cap, file),
                path,
                record: Vec::new(),
                key_len: 0,
                done: false,
            });
        }
        Ok(sources)
    }

    fn run_writer(&self, path: &Path) -> Result<BufWriter<File>> {
        let file = File::create(path).with_context(|| {
            format!(
                "'{}': cannot create spill file {}",
                self.label,
                path.display()
            )
        })?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    }

    fn finish_run(&self, mut w: BufWriter<File>, path: &Path) -> Result<()> {
        w.flush().with_context(|| {
            format!(
                "'{}': cannot write spill file {}",
                self.label,
                path.display()
            )
        })
    }
}

/// Sorts a batch's index by (key, value).
fn sort(batch: &mut Batch) {
    let data = &batch.data;
    batch
        .entries
        .sort_unstable_by(|a, b| compare(a.key(data), a.value(data), b.key(data), b.value(data)));
}

fn write_record(w: &mut impl Write, k: &[u8], v: &[u8]) -> std::io::Result<()> {
    w.write_all(&(k.len() as u32).to_le_bytes())?;
    w.write_all(k)?;
    w.write_all(&(v.len() as u32).to_le_bytes())?;
    w.write_all(v)
}

/// A sorted stream of records, positioned on its current one.
enum Source {
    Mem {
        batch: Batch,
        at: usize,
    },
    Run {
        reader: BufReader<File>,
        path: PathBuf,
        /// The current record's key and value.
        record: Vec<u8>,
        key_len: usize,
        done: bool,
    },
}

impl Source {
    /// The current record, if any.
    #[inline]
    fn current(&self) -> Option<(&[u8], &[u8])> {
        match self {
            Source::Mem { batch, at } => batch
                .entries
                .get(*at)
                .map(|e| (e.key(&batch.data), e.value(&batch.data))),
            Source::Run {
                record,
                key_len,
                done,
                ..
            } => (!*done).then(|| record.split_at(*key_len)),
        }
    }

    /// Moves to the next record (the first, on a fresh run).
    fn advance(&mut self) -> Result<()> {
        match self {
            Source::Mem { at, .. } => {
                *at += 1;
                Ok(())
            }
            Source::Run {
                reader,
                path,
                record,
                key_len,
                done,
            } => {
                let mut len = [0u8; 4];
                match reader.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        *done = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
                let k = u32::from_le_bytes(len) as usize;
                record.resize(k, 0);
                let r = reader.read_exact(&mut record[..k]).and_then(|()| {
                    reader.read_exact(&mut len)?;
                    let v = u32::from_le_bytes(len) as usize;
                    record.resize(k + v, 0);
                    reader.read_exact(&mut record[k..])
                });
                r.with_context(|| format!("reading {}", path.display()))?;
                *key_len = k;
                Ok(())
            }
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Source::Run { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A partition's records in (key, value) order: call [`Merged::advance`],
/// then read the record with [`Merged::key`] and [`Merged::value`].
pub(crate) struct Merged {
    sources: Vec<Source>,
    /// Indices of the sources that have a record, a min-heap by record.
    heap: Vec<usize>,
    /// Whether the heap's top is a record already handed out.
    started: bool,
}

impl Merged {
    fn new(mut sources: Vec<Source>) -> Result<Merged> {
        for s in &mut sources {
            if let Source::Run { .. } = s {
                s.advance()?;
            }
        }
        let mut m = Merged {
            heap: (0..sources.len())
                .filter(|&i| sources[i].current().is_some())
                .collect(),
            sources,
            started: false,
        };
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        Ok(m)
    }

    #[inline]
    fn less(&self, a: usize, b: usize) -> bool {
        let (ka, va) = self.sources[a].current().expect("in the heap");
        let (kb, vb) = self.sources[b].current().expect("in the heap");
        compare(ka, va, kb, vb).then(a.cmp(&b)) == Cmp::Less
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < n && self.less(self.heap[l], self.heap[min]) {
                min = l;
            }
            if r < n && self.less(self.heap[r], self.heap[min]) {
                min = r;
            }
            if min == i {
                return;
            }
            self.heap.swap(i, min);
            i = min;
        }
    }

    /// Moves to the next record; `false` at the end.
    pub fn advance(&mut self) -> Result<bool> {
        if self.started {
            let Some(&top) = self.heap.first() else {
                return Ok(false);
            };
            self.sources[top].advance()?;
            if self.sources[top].current().is_none() {
                self.heap.swap_remove(0);
            }
            if !self.heap.is_empty() {
                self.sift_down(0);
            }
        }
        self.started = true;
        Ok(!self.heap.is_empty())
    }

    /// The current record's key (after `advance` gave `true`).
    #[inline]
    pub fn key(&self) -> &[u8] {
        self.current().0
    }

    /// The current record's value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        self.current().1
    }

    #[inline]
    fn current(&self) -> (&[u8], &[u8]) {
        self.sources[self.heap[0]]
            .current()
            .expect("a current record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key with its values, in order.
    fn groups(m: &mut Merged) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        let mut out: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
        while m.advance().unwrap() {
            match out.last_mut() {
                Some((k, vs)) if k.as_slice() == m.key() => vs.push(m.value().to_vec()),
                _ => out.push((m.key().to_vec(), vec![m.value().to_vec()])),
            }
        }
        out
    }

    #[test]
    fn spills_and_merges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(SpillStats::default());
        let s = Shuffle::new("t", 1, 4096, dir.path().into(), stats.clone());
        for round in 0..50u32 {
            let mut batch = Batch::default();
            for i in 0..20u32 {
                let key = format!("k{:03}", (i * 7 + round) % 40);
                batch.push(key.as_bytes(), |v| {
                    v.extend_from_slice(&round.to_be_bytes())
                });
            }
            s.add(0, &mut batch).unwrap();
        }
        assert!(stats.runs.load(Ordering::Relaxed) > 3, "budget forces runs");
        let mut m = s.drain(0).unwrap();
        let groups = groups(&mut m);
        let mut keys = Vec::new();
        let mut total = 0;
        for (k, vs) in groups {
            assert!(vs.windows(2).all(|w| w[0] <= w[1]));
            total += vs.len();
            keys.push(k);
        }
        assert_eq!(total, 1000);
        assert_eq!(keys.len(), 40);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        drop(m);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "runs removed"
        );
    }

    #[test]
    fn many_runs_merge_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(SpillStats::default());
        let s = Shuffle::new("t", 1, 4096, dir.path().into(), stats.clone());
        for round in 0..1500u32 {
            let mut batch = Batch::default();
            for i in 0..20u32 {
                let key = format!("k{:04}", (i * 31 + round * 7) % 500);
                batch.push(key.as_bytes(), |v| {
                    v.extend_from_slice(&round.to_be_bytes())
                });
            }
            s.add(0, &mut batch).unwrap();
        }
        assert!(
            stats.runs.load(Ordering::Relaxed) as usize > 2 * FAN_IN,
            "more runs than one merge reads"
        );
        let mut m = s.drain(0).unwrap();
        assert!(m.sources.len() <= FAN_IN + 1, "{} sources", m.sources.len());
        let (mut total, mut last) = (0, None);
        for (k, vs) in groups(&mut m) {
            assert!(last.as_ref().is_none_or(|l| *l < k));
            assert!(vs.windows(2).all(|w| w[0] <= w[1]));
            total += vs.len();
            last = Some(k);
        }
        assert_eq!(total, 30_000);
        drop(m);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        // Shard assignment is visible in output files: pinned.
        assert_eq!(partition_of(b"", 7), partition_of(b"", 7));
        let mut counts = [0usize; 8];
        for i in 0..80_000 {
            counts[partition_of(format!("word{i}").as_bytes(), 8)] += 1;
        }
        assert!(
            counts.iter().all(|&c| c > 9_000 && c < 11_000),
            "{counts:?}"
        );
    }
}

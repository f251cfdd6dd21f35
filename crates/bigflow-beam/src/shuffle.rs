//! The DirectRunner's shuffle: hash-partitioned, sorted, spilling to disk.
//!
//! Records are `(key bytes, value bytes)`. Writers buffer locally and hand
//! batches to the record's partition (a hash of the key bytes, the same on
//! every run). When a partition's buffered bytes exceed its share of the
//! memory budget it is sorted and written to a *run* file. Reading a
//! partition merges the in-memory records with its runs in (key, value)
//! order, so groups come out contiguous and the output is deterministic no
//! matter how many threads wrote.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, anyhow};

use crate::graph::SpillStats;

/// A key and a value, encoded.
pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// Per-record bookkeeping counted against the budget besides its bytes.
const RECORD_OVERHEAD: usize = 64;

/// The partition of a key: a hash that does not change between runs.
pub(crate) fn partition_of(key: &[u8], parts: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % parts as u64) as usize
}

#[derive(Default)]
struct Part {
    mem: Vec<Record>,
    mem_bytes: usize,
    runs: Vec<PathBuf>,
}

/// The shared state of one shuffle.
pub(crate) struct Shuffle {
    label: String,
    parts: Vec<Mutex<Part>>,
    part_budget: usize,
    dir: PathBuf,
    stats: Arc<SpillStats>,
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
        }
    }

    pub fn num_parts(&self) -> usize {
        self.parts.len()
    }

    /// Adds a batch of records of partition `p`, spilling when over budget.
    pub fn add(&self, p: usize, batch: &mut Vec<Record>) -> Result<()> {
        let mut part = self.parts[p]
            .lock()
            .map_err(|_| anyhow!("shuffle of '{}' is poisoned", self.label))?;
        for r in batch.drain(..) {
            part.mem_bytes += r.0.len() + r.1.len() + RECORD_OVERHEAD;
            part.mem.push(r);
        }
        if part.mem_bytes > self.part_budget {
            self.spill(p, &mut part)?;
        }
        Ok(())
    }

    fn spill(&self, p: usize, part: &mut Part) -> Result<()> {
        part.mem.sort_unstable();
        let path = self.dir.join(format!(
            "shuffle-{}-p{p}-r{}",
            uuid::Uuid::new_v4(),
            part.runs.len()
        ));
        let file = File::create(&path).with_context(|| {
            format!(
                "'{}': cannot create spill file {}",
                self.label,
                path.display()
            )
        })?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut bytes = 0u64;
        for (k, v) in part.mem.drain(..) {
            w.write_all(&(k.len() as u32).to_le_bytes())?;
            w.write_all(&k)?;
            w.write_all(&(v.len() as u32).to_le_bytes())?;
            w.write_all(&v)?;
            bytes += 8 + (k.len() + v.len()) as u64;
        }
        w.flush().with_context(|| {
            format!(
                "'{}': cannot write spill file {}",
                self.label,
                path.display()
            )
        })?;
        part.mem_bytes = 0;
        part.mem.shrink_to_fit();
        part.runs.push(path);
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Takes partition `p` out as one sorted stream of records.
    pub fn drain(&self, p: usize) -> Result<Merged> {
        let mut part = self.parts[p]
            .lock()
            .map_err(|_| anyhow!("shuffle of '{}' is poisoned", self.label))?;
        let mut mem = std::mem::take(&mut part.mem);
        mem.sort_unstable();
        let mut sources: Vec<Source> = vec![Source::Mem(mem.into_iter())];
        for path in std::mem::take(&mut part.runs) {
            let file = File::open(&path).with_context(|| {
                format!(
                    "'{}': cannot open spill file {}",
                    self.label,
                    path.display()
                )
            })?;
            sources.push(Source::Run(BufReader::with_capacity(1 << 18, file), path));
        }
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(r) = s.next_record()? {
                heap.push(Reverse((r, i)));
            }
        }
        Ok(Merged { sources, heap })
    }
}

enum Source {
    Mem(std::vec::IntoIter<Record>),
    Run(BufReader<File>, PathBuf),
}

impl Source {
    fn next_record(&mut self) -> Result<Option<Record>> {
        match self {
            Source::Mem(it) => Ok(it.next()),
            Source::Run(r, path) => {
                let mut len = [0u8; 4];
                match r.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
                let mut k = vec![0u8; u32::from_le_bytes(len) as usize];
                r.read_exact(&mut k)?;
                r.read_exact(&mut len)?;
                let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
                r.read_exact(&mut v)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(Some((k, v)))
            }
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Source::Run(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A partition's records in (key, value) order.
pub(crate) struct Merged {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<(Record, usize)>>,
}

impl Merged {
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let Some(Reverse((rec, i))) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(r) = self.sources[i].next_record()? {
            self.heap.push(Reverse((r, i)));
        }
        Ok(Some(rec))
    }

    /// The next key with all its values.
    pub fn next_group(&mut self) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>> {
        let Some((key, v)) = self.next_record()? else {
            return Ok(None);
        };
        let mut values = vec![v];
        while let Some(Reverse(((k, _), _))) = self.heap.peek() {
            if *k != key {
                break;
            }
            let (_, v) = self.next_record()?.expect("peeked");
            values.push(v);
        }
        Ok(Some((key, values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_and_merges_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(SpillStats::default());
        let s = Shuffle::new("t", 1, 4096, dir.path().into(), stats.clone());
        for round in 0..50u32 {
            let mut batch: Vec<Record> = (0..20u32)
                .map(|i| {
                    (
                        format!("k{:03}", (i * 7 + round) % 40).into_bytes(),
                        round.to_be_bytes().to_vec(),
                    )
                })
                .collect();
            s.add(0, &mut batch).unwrap();
        }
        assert!(stats.runs.load(Ordering::Relaxed) > 3, "budget forces runs");
        let mut m = s.drain(0).unwrap();
        let mut keys = Vec::new();
        let mut total = 0;
        while let Some((k, vs)) = m.next_group().unwrap() {
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
}

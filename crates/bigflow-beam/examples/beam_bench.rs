//! Benchmark driver for `bench/beam_wordcount.sh`.
//!
//! - `gen PATH MB`: writes about MB megabytes of generated English-like text
//!   (a Zipf-distributed vocabulary, ASCII, with apostrophes and punctuation).
//! - `wordcount INPUT OUTPUT_PREFIX`: Beam's canonical word count on the
//!   DirectRunner (`[\w']+` tokens, `word: count` lines, one shard).
//!   Both Rust variants find tokens with the same scanner (`words`), so the
//!   comparison measures the runner, not the regex engine.
//! - `wordcount-pairs INPUT OUTPUT_PREFIX`: the same with a DoFn that emits
//!   `(word, 1)` itself (one `String` per word instead of two).
//! - `handwritten INPUT OUTPUT`: the same word count as one hand-written
//!   single pass on one thread (buffered lines, one hash map).
//! - `limit INPUT OUTPUT`: the same word count as a hand-written parallel
//!   program (whole file in memory, one slice per core, borrowed keys, a
//!   fast hash, per-thread maps merged at the end): the machine's limit.
//! - `gbk RECORDS BUDGET_MB`: a GroupByKey of RECORDS (key, 100-byte value)
//!   pairs over 100k keys with the given memory budget; prints spill figures.
//! - `combine RECORDS KEYS BUDGET_MB`: a CombinePerKey (Sum) of RECORDS
//!   pairs over KEYS distinct string keys with the given memory budget;
//!   every key's sum is checked; prints spill figures.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::{Result, bail};
use bigflow_beam::prelude::*;

/// Whether `c` is in `[\w']` (Python's `\w`: alphanumeric or `_`).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '\''
}

/// The maximal runs of `[\w']` in `line`: the regex `[\w']+` without the
/// regex engine (an ASCII fast path), shared by both Rust variants.
fn words(line: &str) -> impl Iterator<Item = &str> {
    let bytes = line.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        // Skip separators.
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if b.is_ascii_alphanumeric() || b == b'_' || b == b'\'' {
                    break;
                }
                i += 1;
            } else {
                let c = line[i..].chars().next()?;
                if is_word_char(c) {
                    break;
                }
                i += c.len_utf8();
            }
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'\'') {
                    break;
                }
                i += 1;
            } else {
                let c = line[i..].chars().next()?;
                if !is_word_char(c) {
                    break;
                }
                i += c.len_utf8();
            }
        }
        Some(&line[start..i])
    })
}

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct ExtractWords;

impl DoFn for ExtractWords {
    type In = String;
    type Out = String;
    fn process(&mut self, line: &String, ctx: &mut Context<'_, String>) -> Result<()> {
        for w in words(line) {
            ctx.emit(w.to_string());
        }
        Ok(())
    }
}

/// Emits `(word, 1)` pairs itself: one `String` per word instead of the
/// canonical pipeline's two (the DoFn's and PairWithOne's clone).
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct ExtractPairs;

impl DoFn for ExtractPairs {
    type In = String;
    type Out = (String, i64);
    fn process(&mut self, line: &String, ctx: &mut Context<'_, (String, i64)>) -> Result<()> {
        for w in words(line) {
            ctx.emit((w.to_string(), 1));
        }
        Ok(())
    }
}

/// The word count with [`ExtractPairs`] in place of ExtractWords + PairWithOne.
fn wordcount_pairs(input: &str, output: &str) -> Result<()> {
    let p = Pipeline::new(PipelineOptions::default());
    p.read_text("ReadLines", input)
        .par_do("ExtractPairs", ExtractPairs)
        .combine_per_key("GroupAndSum", Sum::new())
        .map("Format", |(w, c)| format!("{w}: {c}"))
        .write_text("Write", WriteText::to(output));
    let r = p.run()?;
    eprintln!("pipeline: {:?}", r.elapsed);
    Ok(())
}

fn wordcount(input: &str, output: &str) -> Result<()> {
    let p = Pipeline::new(PipelineOptions::default());
    p.read_text("ReadLines", input)
        .par_do("ExtractWords", ExtractWords)
        .map("PairWithOne", |w| (w.clone(), 1i64))
        .combine_per_key("GroupAndSum", Sum::new())
        .map("Format", |(w, c)| format!("{w}: {c}"))
        .write_text("Write", WriteText::to(output));
    let r = p.run()?;
    eprintln!("pipeline: {:?}", r.elapsed);
    Ok(())
}

fn handwritten(input: &str, output: &str) -> Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, std::fs::File::open(input)?);
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 {
        for w in words(&line) {
            match counts.get_mut(w) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(w.to_string(), 1);
                }
            }
        }
        line.clear();
    }
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|(w, c)| format!("{w}: {c}"))
        .collect();
    lines.sort();
    let mut w = BufWriter::new(std::fs::File::create(output)?);
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.flush()?;
    Ok(())
}

/// The limit's key: a word of up to 22 bytes is copied into the entry (a
/// lookup compares a few machine words, without following a pointer into
/// the text); a longer one is borrowed from the text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Word<'a> {
    Short { len: u8, bytes: [u8; 22] },
    Long(&'a str),
}

impl<'a> Word<'a> {
    #[inline]
    fn new(w: &'a str) -> Word<'a> {
        if w.len() <= 22 {
            let mut bytes = [0u8; 22];
            bytes[..w.len()].copy_from_slice(w.as_bytes());
            Word::Short {
                len: w.len() as u8,
                bytes,
            }
        } else {
            Word::Long(w)
        }
    }

    #[inline]
    fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` at a character boundary: valid UTF-8.
            Word::Short { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Word::Long(w) => w,
        }
    }
}

impl std::hash::Hash for Word<'_> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_str().as_bytes())
    }
}

/// The lines that start in `[start, end)` of `path`: read from `start - 1`
/// (to see whether a line starts at `start`) to the end of the last such line.
fn read_owned_lines(path: &str, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity((end - from) as usize + (1 << 16));
    (&mut f).take(end - from).read_to_end(&mut buf)?;
    // Finish the last line, which may run past `end`.
    if buf.last().is_some_and(|&b| b != b'\n') {
        let mut rest = Vec::new();
        let mut chunk = [0u8; 1 << 12];
        loop {
            let n = f.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            if let Some(p) = chunk[..n].iter().position(|&b| b == b'\n') {
                rest.extend_from_slice(&chunk[..=p]);
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        buf.extend_from_slice(&rest);
    }
    // Drop the line that started before `start` (it belongs to the range before).
    let skip = if start == 0 {
        0
    } else {
        buf.iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |p| p + 1)
    };
    buf.drain(..skip);
    Ok(buf)
}

/// FxHash's multiply-rotate over 8 bytes at a time: a fast non-cryptographic
/// hash for the limit's maps (no dependency).
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A folded multiply mixes every bit into both ends: hashbrown takes
        // its bucket from the low bits and its tag from the top ones.
        let m = u128::from(self.0) * 0x9e37_79b9_7f4a_7c15_u128;
        (m as u64) ^ ((m >> 64) as u64)
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// The limit: the fastest plain word count we know how to write for this
/// machine. One thread per core, each reading its own byte range of the file
/// into memory in parallel (a thread owns the lines that start in its range),
/// short keys stored in the map's entries and long ones borrowed from that
/// memory (as the DirectRunner's combine table keeps short keys inline), a
/// multiply-rotate hash with a folded multiply to finish, one map per thread
/// merged at the end; the same tokens
/// (`words`) and the same output as the others.
fn limit(input: &str, output: &str) -> Result<()> {
    let len = std::fs::metadata(input)?.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let ranges: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || read_owned_lines(input, len * i / threads, len * (i + 1) / threads))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reading thread panicked"))
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    let texts = ranges
        .iter()
        .map(|r| std::str::from_utf8(r))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let maps: Vec<HashMap<Word<'_>, i64, FxBuild>> = std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .iter()
            .map(|slice| {
                s.spawn(move || {
                    let mut counts: HashMap<Word<'_>, i64, FxBuild> = HashMap::default();
                    for word in words(slice) {
                        let key = Word::new(word);
                        match counts.get_mut(&key) {
                            Some(c) => *c += 1,
                            None => {
                                counts.insert(key, 1);
                            }
                        }
                    }
                    counts
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a counting thread panicked"))
            .collect()
    });
    let mut maps = maps.into_iter();
    let mut total = maps.next().unwrap_or_default();
    for m in maps {
        for (w, c) in m {
            *total.entry(w).or_insert(0) += c;
        }
    }
    let mut lines: Vec<String> = total
        .into_iter()
        .map(|(w, c)| format!("{}: {c}", w.as_str()))
        .collect();
    lines.sort_unstable();
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(output)?);
    for l in lines {
        w.write_all(l.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// xorshift64*: a fixed, dependency-free generator for reproducible text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn gen_text(path: &str, mb: u64) -> Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let letters = b"etaoinshrdlcumwfgypbvkjxqz";
    let vocab: Vec<String> = (0..50_000)
        .map(|i| {
            let len = 2 + rng.below(9) as usize;
            let mut w: String = (0..len)
                .map(|_| letters[(rng.below(26) * rng.below(26) / 26) as usize] as char)
                .collect();
            if i % 13 == 0 {
                w.push_str("'s");
            }
            if i % 7 == 0 {
                w[..1].make_ascii_uppercase();
            }
            w
        })
        .collect();
    // Zipf-like: the k-th word drawn with probability ~ 1/k.
    let weights: Vec<f64> = (1..=vocab.len()).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(vocab.len());
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let limit = mb << 20;
    let mut written = 0u64;
    let punct = [",", ".", ";", ":", "!", "?", " -", ""];
    while written < limit {
        let words = 5 + rng.below(11);
        let mut line = String::new();
        for i in 0..words {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let k = cdf.partition_point(|c| *c < u).min(vocab.len() - 1);
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&vocab[k]);
            if rng.below(6) == 0 {
                line.push_str(punct[rng.below(punct.len() as u64) as usize]);
            }
        }
        line.push('\n');
        written += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn gbk(records: i64, budget_mb: usize) -> Result<()> {
    let mut o = PipelineOptions::default();
    o.direct.memory_budget_mb = Some(budget_mb);
    let p = Pipeline::new(o);
    let chunks = 64i64;
    let per = records / chunks;
    let payload = "v".repeat(100);
    let sums = p
        .create("Chunks", (0..chunks).collect())
        .flat_map("Records", move |c| {
            let payload = payload.clone();
            (c * per..(c + 1) * per).map(move |i| (i % 100_000, format!("{i}{payload}")))
        })
        .group_by_key("Group")
        .map("Size", |(_, vs)| vs.len() as i64)
        .combine_globally("Total", Sum::new());
    // The run fails unless every record came out of the shuffle.
    assert_that(&sums, equal_to(vec![per * chunks]));
    let r = p.run()?;
    println!(
        "gbk records={records} budget_mb={budget_mb} spilled_runs={} spilled_mib={:.1} elapsed={:.2?}",
        r.spilled_runs,
        r.spilled_bytes as f64 / (1 << 20) as f64,
        r.elapsed
    );
    Ok(())
}

/// A CombinePerKey (Sum) of RECORDS (key, 1) pairs over KEYS distinct
/// string keys with the given memory budget; every key's sum is checked.
fn combine(records: i64, keys: i64, budget_mb: usize) -> Result<()> {
    if keys <= 0 || records % keys != 0 {
        bail!("combine: RECORDS must be a multiple of KEYS");
    }
    let mut o = PipelineOptions::default();
    o.direct.memory_budget_mb = Some(budget_mb);
    let p = Pipeline::new(o);
    let chunks = 64i64;
    let per = records / chunks;
    let per_key = records / keys;
    let checked = p
        .create("Chunks", (0..chunks).collect())
        .flat_map("Records", move |c| {
            (c * per..(c + 1) * per).map(move |i| (format!("key-{:09}", i % keys), 1i64))
        })
        .combine_per_key("Sum", Sum::new())
        .map("Check", move |(_, s)| *s == per_key)
        .count_per_element("Tally");
    // The run fails unless every key came out once with its whole sum.
    assert_that(&checked, equal_to(vec![(true, keys)]));
    let r = p.run()?;
    println!(
        "combine records={records} keys={keys} budget_mb={budget_mb} spilled_runs={} spilled_mib={:.1} elapsed={:.2?}",
        r.spilled_runs,
        r.spilled_bytes as f64 / (1 << 20) as f64,
        r.elapsed
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn scanner_matches_the_regex() {
        let re = regex::Regex::new(r"[\w']+").unwrap();
        for line in [
            "Love's not Time's fool,",
            "  a_b--c' 12x, zażółć gęślą!",
            "",
            "...",
            "x",
        ] {
            let want: Vec<&str> = re.find_iter(line).map(|m| m.as_str()).collect();
            assert_eq!(super::words(line).collect::<Vec<_>>(), want, "{line}");
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", path, mb] => gen_text(path, mb.parse()?),
        ["wordcount", input, output] => wordcount(input, output),
        ["wordcount-pairs", input, output] => wordcount_pairs(input, output),
        ["handwritten", input, output] => handwritten(input, output),
        ["limit", input, output] => limit(input, output),
        ["gbk", records, budget] => gbk(records.parse()?, budget.parse()?),
        ["combine", records, keys, budget] => {
            combine(records.parse()?, keys.parse()?, budget.parse()?)
        }
        _ => bail!(
            "usage: beam_bench gen PATH MB | wordcount INPUT PREFIX | wordcount-pairs INPUT PREFIX | handwritten INPUT OUTPUT | limit INPUT OUTPUT | gbk RECORDS BUDGET_MB | combine RECORDS KEYS BUDGET_MB"
        ),
    }
}

/// The allocator a project's binary uses (the starter's `main.rs` declares
/// `bigflow::MiMalloc`), so the benchmark measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

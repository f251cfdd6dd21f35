//! Text and NDJSON files: `ReadFromText` and `WriteToText`.
//!
//! Reading takes a file name or glob, local or `gs://bucket/path` (see
//! the `fs` module). Plain files are split into byte ranges read in parallel
//! (a range owns the lines that start in it, as in Beam); gzip files (`.gz`,
//! or objects stored with `Content-Encoding: gzip`) are decompressed as a
//! stream, one bundle each. A bundle reads its range in chunks of 256 KiB
//! (more for a longer line), never the whole file, and hands lines to the transforms in
//! one reused buffer. Line endings (`\n`, `\r\n`) are stripped; a line that is not UTF-8
//! fails the run naming the file.
//!
//! Writing shards the lines by a hash of their bytes into
//! `prefix-00000-of-0000N` + suffix; each shard's lines are sorted, so the
//! output is the same on every run. Shards are written under a temporary
//! directory next to the output (`<dir>/.bigflow-temp-…/`, objects under
//! that prefix for `gs://`) and renamed into place only when all of them are
//! complete; a failed write leaves no shard under its final name.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::graph::{Bundle, Element, Env, Receiver, RootOp, RunControl, run_bundles};
use crate::pipeline::{PCollection, Pipeline, add_node};
use crate::shuffle::partition_of;
use crate::window::WindowedValue;

/// How to read text files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadText {
    /// A path or a glob (`data/*.txt`, `logs/**/*.gz`).
    pub pattern: String,
    /// Skip this many lines at the start of every file.
    pub skip_header_lines: usize,
}

impl ReadText {
    /// Reads the files matching `pattern`.
    pub fn from(pattern: impl Into<String>) -> Self {
        ReadText {
            pattern: pattern.into(),
            skip_header_lines: 0,
        }
    }
}

/// Bytes per bundle when splitting a plain file (at least).
const MIN_SPLIT: u64 = 1 << 20;

struct TextRoot {
    label: String,
    read: ReadText,
}

/// A part of a text source: the lines starting in `[start, end)` of a file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TextRange {
    path: PathBuf,
    start: u64,
    end: u64,
    skip: usize,
    /// The file is gzip (then the range is the whole file).
    #[serde(default)]
    gzip: bool,
}

impl TextRoot {
    /// The source's byte ranges: about four per worker thread (at least
    /// [`MIN_SPLIT`] bytes); gzip files and files with header lines whole.
    fn ranges(&self, workers: usize) -> Result<Vec<TextRange>> {
        let files = crate::fs::expand(&self.label, &self.read.pattern)?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        let chunk = (total / (workers as u64 * 4).max(1)).max(MIN_SPLIT);
        let mut ranges = Vec::new();
        for f in files {
            let len = f.size;
            if f.gzip || self.read.skip_header_lines > 0 || len <= chunk {
                ranges.push(TextRange {
                    path: f.path,
                    start: 0,
                    end: u64::MAX,
                    skip: self.read.skip_header_lines,
                    gzip: f.gzip,
                });
                continue;
            }
            let mut start = 0;
            while start < len {
                let end = (start + chunk).min(len);
                ranges.push(TextRange {
                    path: f.path.clone(),
                    start,
                    end,
                    skip: 0,
                    gzip: false,
                });
                start = end;
            }
        }
        Ok(ranges)
    }

    fn run_ranges(&self, node: usize, env: &Env, ranges: Vec<TextRange>) -> Result<()> {
        let bundles: Vec<Box<dyn Bundle<String>>> = ranges
            .into_iter()
            .map(|r| {
                Box::new(TextBundle {
                    label: self.label.clone(),
                    gzip: r.gzip || crate::fs::has_gz_extension(&r.path),
                    path: r.path,
                    start: r.start,
                    end: r.end,
                    skip: r.skip,
                }) as Box<dyn Bundle<String>>
            })
            .collect();
        run_bundles::<String>(node, env, bundles)
    }
}

impl RootOp for TextRoot {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        // Sixteen ranges a thread: a slow thread's last range is a short tail.
        let ranges = self.ranges(env.run.config.workers * 4)?;
        self.run_ranges(node, env, ranges)
    }

    /// Byte ranges as JSON, sized for 16 workers' threads.
    fn split(&self, _env: &Env) -> Result<Vec<Vec<u8>>> {
        self.ranges(16)?
            .iter()
            .map(|r| Ok(serde_json::to_vec(r)?))
            .collect()
    }

    fn run_parts(&self, node: usize, env: &Env, parts: &[Vec<u8>]) -> Result<()> {
        let ranges = parts
            .iter()
            .map(|p| {
                serde_json::from_slice(p).map_err(|e| {
                    anyhow!(
                        "transform '{}': a part is not a text range: {e}",
                        self.label
                    )
                })
            })
            .collect::<Result<Vec<TextRange>>>()?;
        self.run_ranges(node, env, ranges)
    }
}

/// The lines starting in `[start, end)` of one file.
struct TextBundle {
    label: String,
    path: PathBuf,
    start: u64,
    end: u64,
    skip: usize,
    gzip: bool,
}

impl TextBundle {
    fn read_err(&self, e: std::io::Error) -> anyhow::Error {
        let what = if self.gzip {
            " (is it a valid gzip file?)"
        } else {
            ""
        };
        anyhow!(
            "transform '{}': cannot read {}{what}: {e}",
            self.label,
            self.path.display()
        )
    }
}

/// Bytes a text bundle reads at a time (its buffer grows for longer lines):
/// large reads, small enough to stay in a core's cache while the lines are processed.
const READ_CHUNK: usize = 256 << 10;

/// The index of the first `needle` in `hay`: eight bytes at a time.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes")) ^ pattern;
        // The lowest zero byte of `w` is found exactly (borrows only
        // disturb the bytes above it).
        let z = w.wrapping_sub(LO) & !w & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|p| i + p)
}

impl Bundle<String> for TextBundle {
    /// Reads large chunks, validates each chunk's complete lines as UTF-8
    /// at once, and hands every line to the chain in one reused `String`
    /// (`receive_ref`): no allocation per line.
    fn run(self: Box<Self>, out: &mut dyn Receiver<String>, control: &RunControl) -> Result<()> {
        // The line that starts before `start` belongs to the previous
        // range: read from the byte before `start` and skip to the next line.
        let (mut reader, mut pos): (Box<dyn Read>, u64) = if self.gzip {
            let file = crate::fs::open(&self.path, 0, u64::MAX).map_err(|e| self.read_err(e))?;
            (
                Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                    1 << 16,
                    file,
                ))),
                0,
            )
        } else {
            let from = self.start.saturating_sub(1);
            let file = crate::fs::open(&self.path, from, self.end).map_err(|e| self.read_err(e))?;
            (file, from)
        };
        let mut skip_partial = !self.gzip && self.start > 0;
        let cap = if self.gzip {
            READ_CHUNK
        } else {
            (self.end - self.start)
                .saturating_add(4096)
                .min(READ_CHUNK as u64) as usize
        };
        let mut buf = vec![0u8; cap.max(4096)];
        let (mut head, mut filled, mut eof) = (0usize, 0usize, false);
        let mut line_no = 0usize;
        let mut wv = WindowedValue::global(String::with_capacity(256));
        'chunks: loop {
            // Keep the unfinished line, then fill the buffer.
            if head > 0 {
                buf.copy_within(head..filled, 0);
                filled -= head;
                head = 0;
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            while !eof && filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.read_err(e)),
                }
            }
            if head == filled {
                break;
            }
            if skip_partial {
                match find_byte(b'\n', &buf[head..filled]) {
                    Some(i) => {
                        head += i + 1;
                        pos += i as u64 + 1;
                        skip_partial = false;
                    }
                    None => {
                        pos += (filled - head) as u64;
                        head = filled;
                    }
                }
                if head == filled && eof {
                    break;
                }
                continue;
            }
            let region = &buf[head..filled];
            let complete = if eof {
                region
            } else {
                match region.iter().rposition(|&b| b == b'\n') {
                    Some(i) => &region[..=i],
                    // A line longer than the buffer: it grows.
                    None => continue,
                }
            };
            // Usually the whole chunk is valid; otherwise each line is
            // checked to name the one that is not.
            let text = std::str::from_utf8(complete).ok();
            let mut off = 0;
            while off < complete.len() {
                let nl = find_byte(b'\n', &complete[off..]).map(|i| off + i);
                let next = nl.map_or(complete.len(), |i| i + 1);
                let line_start = pos;
                if line_start >= self.end {
                    break 'chunks;
                }
                pos += (next - off) as u64;
                line_no += 1;
                let a = off;
                off = next;
                if line_no <= self.skip {
                    continue;
                }
                let mut b = nl.unwrap_or(complete.len());
                if nl.is_some() && b > a && complete[b - 1] == b'\r' {
                    b -= 1;
                }
                let line = match text {
                    Some(t) => &t[a..b],
                    None => match std::str::from_utf8(&complete[a..b]) {
                        Ok(l) => l,
                        Err(e) => bail!(
                            "transform '{}': {}: the line at byte {line_start} is not UTF-8 text ({e})",
                            self.label,
                            self.path.display(),
                        ),
                    },
                };
                if line_no.is_multiple_of(128) {
                    control.check()?;
                }
                wv.value.clear();
                wv.value.push_str(line);
                out.receive_ref(&wv)?;
            }
            head += complete.len();
            if eof && head == filled {
                break;
            }
        }
        // Drain a gzip stream to its end so a corrupt trailer is noticed.
        if self.gzip && !eof {
            std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| self.read_err(e))?;
        }
        Ok(())
    }
}

impl Pipeline {
    /// The lines of the files matching `pattern` (Beam's `ReadFromText`).
    pub fn read_text(&self, label: &str, pattern: impl Into<String>) -> PCollection<String> {
        self.read_text_with(label, ReadText::from(pattern))
    }

    /// Reads text with options.
    pub fn read_text_with(&self, label: &str, read: ReadText) -> PCollection<String> {
        let spec = serde_json::json!({"pattern": read.pattern, "skip_header_lines": read.skip_header_lines});
        let node = add_node(
            &self.graph,
            label,
            "ReadFromText",
            &[],
            crate::worker_ops::codec::<String>(),
            spec,
        );
        let mut g = self.graph.borrow_mut();
        g.nodes[node].primitive = crate::graph::Primitive::Source;
        g.nodes[node].root = Some(Arc::new(TextRoot {
            label: label.to_string(),
            read,
        }));
        drop(g);
        self.collection(node)
    }

    /// One value per line of NDJSON (JSON Lines) files; blank lines are
    /// skipped, a line that does not parse fails the run naming it.
    pub fn read_ndjson<T: Element + serde::de::DeserializeOwned>(
        &self,
        label: &str,
        pattern: impl Into<String>,
    ) -> PCollection<T> {
        self.read_text(&format!("{label}/Read"), pattern)
            .filter(&format!("{label}/SkipBlank"), |l| !l.trim().is_empty())
            .try_map(label, |line| {
                serde_json::from_str::<T>(line)
                    .map_err(|e| anyhow!("not valid JSON for this type: {e}"))
            })
    }
}

/// How to write text files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteText {
    /// Output path prefix (`out/counts` → `out/counts-00000-of-00001`).
    pub prefix: String,
    /// Appended to each file name (e.g. `.txt`).
    pub suffix: String,
    /// Number of shards (files); at least 1.
    pub num_shards: usize,
    /// Compress with gzip (adds `.gz` unless the suffix has it).
    pub gzip: bool,
}

impl WriteText {
    /// Writes to `prefix-SSSSS-of-NNNNN`, one shard.
    pub fn to(prefix: impl Into<String>) -> Self {
        WriteText {
            prefix: prefix.into(),
            suffix: String::new(),
            num_shards: 1,
            gzip: false,
        }
    }

    /// Sets the suffix.
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// Sets the number of shards.
    pub fn shards(mut self, n: usize) -> Self {
        self.num_shards = n;
        self
    }

    /// Gzip-compresses the shards.
    pub fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }

    /// The file name of shard `i`.
    pub fn shard_name(&self, i: usize) -> String {
        let gz = if self.gzip && !self.suffix.ends_with(".gz") {
            ".gz"
        } else {
            ""
        };
        format!(
            "{}-{i:05}-of-{:05}{}{gz}",
            self.prefix, self.num_shards, self.suffix
        )
    }
}

/// What a shard file holds.
#[derive(Clone)]
pub(crate) enum ShardFormat {
    /// One line per element (gzip-compressed if the write says so).
    Text,
    /// Parquet: each element is a JSON object decoded into this schema.
    #[cfg(feature = "parquet")]
    Parquet(crate::parquet_io::SchemaRef),
}

/// Writes the shards of a file sink: on the DirectRunner from its shuffle,
/// on a remote runner's workers one group at a time.
pub(crate) struct ShardWriter {
    pub label: String,
    pub write: WriteText,
    format: ShardFormat,
}

impl ShardWriter {
    /// The shard a line goes to.
    #[cfg_attr(not(feature = "portable"), allow(dead_code))]
    pub fn shard_of(&self, line: &[u8]) -> usize {
        partition_of(line, self.write.num_shards)
    }

    /// The directory the shards are written in.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.write.shard_name(0))
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Writes shard `shard` to `path` from `next` (lines in order).
    pub fn write_shard(
        &self,
        shard: usize,
        path: &Path,
        next: &mut dyn FnMut() -> Result<Option<Vec<u8>>>,
        control: &RunControl,
    ) -> Result<()> {
        let mut file = crate::fs::create(path).with_context(|| {
            format!(
                "transform '{}': cannot create {}",
                self.label,
                path.display()
            )
        })?;
        let cannot_write = || {
            format!(
                "transform '{}': cannot write {}",
                self.label,
                path.display()
            )
        };
        match &self.format {
            ShardFormat::Text => {
                let w = BufWriter::with_capacity(1 << 20, &mut file);
                if self.write.gzip {
                    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
                    write_lines(&mut gz, next, control).with_context(cannot_write)?;
                    gz.finish()
                        .and_then(|mut w| w.flush())
                        .with_context(cannot_write)?;
                } else {
                    let mut w = w;
                    write_lines(&mut w, next, control).with_context(cannot_write)?;
                    w.flush().with_context(cannot_write)?;
                }
            }
            #[cfg(feature = "parquet")]
            ShardFormat::Parquet(schema) => {
                let shard_name = self.write.shard_name(shard);
                crate::parquet_io::write_shard(
                    &self.label,
                    &shard_name,
                    &mut file,
                    schema.clone(),
                    next,
                    control,
                )?;
            }
        }
        let _ = shard;
        file.commit().with_context(cannot_write)
    }

    /// Moves complete temporary shards into place; nothing moves unless
    /// every shard is there.
    pub fn finalize(&self, temps: &[(usize, PathBuf)]) -> Result<Vec<String>> {
        let n = self.write.num_shards;
        let mut by_shard: Vec<Option<&PathBuf>> = vec![None; n];
        for (i, p) in temps {
            match by_shard.get_mut(*i) {
                Some(slot) => *slot = Some(p),
                None => anyhow::bail!(
                    "transform '{}': shard {i} is not one of the {n} shards",
                    self.label
                ),
            }
        }
        let missing: Vec<usize> = (0..n).filter(|i| by_shard[*i].is_none()).collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "transform '{}': shards {missing:?} of {n} were not written; no output was moved into place",
                self.label
            );
        }
        let moves: Vec<(PathBuf, PathBuf)> = by_shard
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let t = t.expect("checked above");
                (t.clone(), PathBuf::from(self.write.shard_name(i)))
            })
            .collect();
        crate::fs::rename_all(&moves).with_context(|| {
            format!(
                "transform '{}': cannot move the shards from {} into place",
                self.label,
                moves[0].0.parent().unwrap_or(Path::new("")).display()
            )
        })?;
        Ok(moves
            .into_iter()
            .map(|(_, f)| f.display().to_string())
            .collect())
    }
}

impl PCollection<String> {
    /// Writes one line per element (Beam's `WriteToText`); the result holds
    /// the names of the files written.
    pub fn write_text(&self, label: &str, write: WriteText) -> PCollection<String> {
        self.write_shards(label, "WriteToText", write, ShardFormat::Text)
    }

    /// Shards the elements by hash, sorts each shard, writes the shards in
    /// `format` under a temporary directory and moves them into place.
    pub(crate) fn write_shards(
        &self,
        label: &str,
        urn: &'static str,
        write: WriteText,
        format: ShardFormat,
    ) -> PCollection<String> {
        let mut write = write;
        if write.num_shards == 0 {
            self.graph.borrow_mut().errors.push(format!(
                "transform '{label}': num_shards must be at least 1"
            ));
            write.num_shards = 1;
        }
        if write.prefix.is_empty() {
            self.graph
                .borrow_mut()
                .errors
                .push(format!("transform '{label}': the output prefix is empty"));
        }
        let spec = serde_json::json!({"prefix": write.prefix, "suffix": write.suffix, "num_shards": write.num_shards, "gzip": write.gzip});
        let node = add_node(
            &self.graph,
            label,
            urn,
            &[self.node],
            crate::worker_ops::codec::<String>(),
            spec,
        );
        let writer = Arc::new(ShardWriter {
            label: label.to_string(),
            write,
            format,
        });
        let barrier = crate::runner::direct::barriers::write_files(writer.clone(), node);
        let mut g = self.graph.borrow_mut();
        g.add_consumer(self.node, node, barrier.maker);
        let n = &mut g.nodes[node];
        n.barrier = true;
        n.primitive = crate::graph::Primitive::WriteFiles;
        n.writer = Some(writer);
        n.root = Some(barrier.root);
        n.init_state = Some(barrier.init_state);
        drop(g);
        self.derive(node)
    }
}

impl<T: Element + serde::Serialize> PCollection<T> {
    /// Writes one JSON document per line (NDJSON).
    pub fn write_ndjson(&self, label: &str, write: WriteText) -> PCollection<String> {
        self.try_map(&format!("{label}/ToJson"), |v| {
            serde_json::to_string(v).map_err(|e| anyhow!("cannot serialize to JSON: {e}"))
        })
        .write_text(label, write)
    }
}

/// Writes `next`'s lines, each ended by `\n`.
fn write_lines(
    w: &mut impl Write,
    next: &mut dyn FnMut() -> Result<Option<Vec<u8>>>,
    control: &RunControl,
) -> Result<()> {
    let mut n = 0u64;
    while let Some(line) = next()? {
        n += 1;
        if n.is_multiple_of(128) {
            control.check()?;
        }
        w.write_all(&line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads every file matching `pattern` (local or `gs://`) into lines
/// (handy in tests).
pub fn read_lines(pattern: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in crate::fs::expand("read_lines", pattern)? {
        let file = crate::fs::open(&f.path, 0, u64::MAX)
            .with_context(|| format!("reading {}", f.path.display()))?;
        let r: Box<dyn Read> = if f.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for line in BufReader::new(r).lines() {
            out.push(line.with_context(|| format!("reading {}", f.path.display()))?);
        }
    }
    Ok(out)
}

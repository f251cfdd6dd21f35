//! Text and NDJSON files: `ReadFromText` and `WriteToText`.
//!
//! Reading takes a file name or glob, local or `gs://bucket/path` (see
//! the `fs` module). Plain files are split into byte ranges read in parallel
//! (a range owns the lines that start in it, as in Beam); gzip files (`.gz`,
//! or objects stored with `Content-Encoding: gzip`) are decompressed as a
//! stream, one bundle each. Lines are read one at a time, never the whole
//! file. Line endings (`\n`, `\r\n`) are stripped; a line that is not UTF-8
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
        let ranges = self.ranges(env.run.config.workers)?;
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

impl Bundle<String> for TextBundle {
    fn run(self: Box<Self>, out: &mut dyn Receiver<String>, control: &RunControl) -> Result<()> {
        let mut pos = self.start;
        let mut reader: Box<dyn BufRead> = if self.gzip {
            let file = crate::fs::open(&self.path, 0, u64::MAX).map_err(|e| self.read_err(e))?;
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)),
            ))
        } else {
            // The line that starts before `start` belongs to the previous
            // range: read from the byte before `start` and skip to the next line.
            let from = self.start.saturating_sub(1);
            let file = crate::fs::open(&self.path, from, self.end).map_err(|e| self.read_err(e))?;
            let mut r = BufReader::with_capacity(1 << 16, file);
            if self.start > 0 {
                let mut skipped = Vec::new();
                let n = r
                    .read_until(b'\n', &mut skipped)
                    .map_err(|e| self.read_err(e))?;
                pos = self.start - 1 + n as u64;
            }
            Box::new(r)
        };
        let mut buf = Vec::with_capacity(256);
        let mut line_no = 0usize;
        while pos < self.end {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| self.read_err(e))?;
            if n == 0 {
                break;
            }
            let line_start = pos;
            pos += n as u64;
            line_no += 1;
            if line_no <= self.skip {
                continue;
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            if line_no.is_multiple_of(128) {
                control.check()?;
            }
            // Hand the buffer over (no copy); the next line gets a new one.
            let bytes = std::mem::replace(&mut buf, Vec::with_capacity(n.max(64) + 16));
            let line = match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => bail!(
                    "transform '{}': {}: the line at byte {line_start} is not UTF-8 text ({})",
                    self.label,
                    self.path.display(),
                    e.utf8_error()
                ),
            };
            out.receive(WindowedValue::global(line))?;
        }
        // Drain a gzip stream to its end so a corrupt trailer is noticed.
        if self.gzip {
            std::io::copy(&mut reader.take(u64::MAX), &mut std::io::sink())
                .map_err(|e| self.read_err(e))?;
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

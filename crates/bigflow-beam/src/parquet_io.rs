//! Parquet files (feature `parquet`): Beam's `ReadFromParquet` and
//! `WriteToParquet`.
//!
//! Reading takes a file name or glob, local or `gs://bucket/path` (see
//! the `fs` module; from Cloud Storage only the footer and the row group's
//! column chunks are downloaded); every row group of every file is a
//! bundle, read in parallel, and each row becomes the element type through
//! serde (as a JSON object keyed by column: DATE as `"2020-08-01"`,
//! TIMESTAMP as an RFC 3339 string, NULL as `null`).
//!
//! Writing takes an Arrow schema, as Beam's `WriteToParquet` takes a
//! pyarrow schema: elements are serialized with serde and decoded into that
//! schema (a field that does not fit fails the run naming the shard).
//! Sharding, sorting and the move into place are those of
//! [`write_text`](crate::PCollection::write_text).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow};
pub use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};

use crate::graph::{Bundle, Element, Env, Receiver, RootOp, RunControl, run_bundles};
use crate::io::{ShardFormat, WriteText};
use crate::pipeline::{PCollection, Pipeline, add_node};
use crate::window::WindowedValue;

/// Rows per record batch, read or written.
const BATCH_ROWS: usize = 8192;

struct ParquetRoot {
    label: String,
    pattern: String,
}

impl RootOp for ParquetRoot {
    fn run(&self, node: usize, env: &Env) -> Result<()> {
        let mut bundles: Vec<Box<dyn Bundle<String>>> = Vec::new();
        for f in crate::fs::expand(&self.label, &self.pattern)? {
            let path = f.path;
            let file = Source::open(&path, f.size).map_err(|e| self.error(&path, e))?;
            let groups = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| self.error(&path, e))?
                .metadata()
                .num_row_groups();
            for row_group in 0..groups {
                bundles.push(Box::new(RowGroup {
                    label: self.label.clone(),
                    path: path.clone(),
                    size: f.size,
                    row_group,
                }));
            }
        }
        run_bundles::<String>(node, env, bundles)
    }
}

impl ParquetRoot {
    fn error(&self, path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "transform '{}': cannot read {} as Parquet: {e}",
            self.label,
            path.display()
        )
    }
}

/// A Parquet file to read: local, or a Cloud Storage object read by ranges.
enum Source {
    Local(File),
    #[cfg(feature = "gcs")]
    Gcs(crate::fs::RemoteFile),
}

impl Source {
    fn open(path: &Path, size: u64) -> Result<Source> {
        #[cfg(feature = "gcs")]
        if crate::fs::is_gcs(path) {
            return Ok(Source::Gcs(crate::fs::RemoteFile::open(path, size)?));
        }
        let _ = size;
        // Without the feature, a gs:// path fails in `fs::expand` first.
        Ok(Source::Local(File::open(path)?))
    }
}

impl Length for Source {
    fn len(&self) -> u64 {
        match self {
            Source::Local(f) => f.len(),
            #[cfg(feature = "gcs")]
            Source::Gcs(r) => r.size(),
        }
    }
}

impl ChunkReader for Source {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            Source::Local(f) => Ok(Box::new(f.get_read(start)?)),
            #[cfg(feature = "gcs")]
            Source::Gcs(r) => Ok(r.reader(start)?),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self {
            Source::Local(f) => f.get_bytes(start, length),
            #[cfg(feature = "gcs")]
            Source::Gcs(r) => r
                .bytes(start, length)
                .map(bytes::Bytes::from)
                .map_err(|e| parquet::errors::ParquetError::External(e.into())),
        }
    }
}

/// One row group of one file, as JSON objects.
struct RowGroup {
    label: String,
    path: PathBuf,
    size: u64,
    row_group: usize,
}

impl Bundle<String> for RowGroup {
    fn run(self: Box<Self>, out: &mut dyn Receiver<String>, control: &RunControl) -> Result<()> {
        let error = |e: &dyn std::fmt::Display| {
            anyhow!(
                "transform '{}': cannot read {} (row group {}): {e}",
                self.label,
                self.path.display(),
                self.row_group
            )
        };
        let file = Source::open(&self.path, self.size).map_err(|e| error(&e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| error(&e))?
            .with_row_groups(vec![self.row_group])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| error(&e))?;
        for batch in reader {
            control.check()?;
            let batch = batch.map_err(|e| error(&e))?;
            let mut json = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
            json.write(&batch).map_err(|e| error(&e))?;
            json.finish().map_err(|e| error(&e))?;
            let text = String::from_utf8(json.into_inner()).map_err(|e| error(&e))?;
            for line in text.lines() {
                out.receive(WindowedValue::global(line.to_string()))?;
            }
        }
        Ok(())
    }
}

impl Pipeline {
    /// The rows of the Parquet files matching `pattern` (Beam's
    /// `ReadFromParquet`), each deserialized into `T` from a JSON object
    /// keyed by column.
    pub fn read_parquet<T: Element + serde::de::DeserializeOwned>(
        &self,
        label: &str,
        pattern: impl Into<String>,
    ) -> PCollection<T> {
        let pattern = pattern.into();
        let read = format!("{label}/Read");
        let node = add_node(
            &self.graph,
            &read,
            "ReadFromParquet",
            &[],
            crate::worker_ops::codec::<String>(),
            serde_json::json!({ "pattern": pattern }),
        );
        let mut g = self.graph.borrow_mut();
        g.nodes[node].primitive = crate::graph::Primitive::Source;
        g.nodes[node].root = Some(Arc::new(ParquetRoot {
            label: read,
            pattern,
        }));
        drop(g);
        self.collection::<String>(node).try_map(label, |row| {
            serde_json::from_str::<T>(row).map_err(|e| anyhow!("a row does not fit this type: {e}"))
        })
    }
}

impl<T: Element + serde::Serialize> PCollection<T> {
    /// Writes the elements as Parquet files with `schema` (Beam's
    /// `WriteToParquet`): shards are `prefix-SSSSS-of-NNNNN` + suffix
    /// (`.parquet` unless set), Snappy-compressed. The result holds the
    /// names of the files written.
    pub fn write_parquet(
        &self,
        label: &str,
        write: WriteText,
        schema: SchemaRef,
    ) -> PCollection<String> {
        let mut write = write;
        if write.gzip {
            self.graph.borrow_mut().errors.push(format!(
                "transform '{label}': gzip does not apply to Parquet (it is compressed with Snappy)"
            ));
            write.gzip = false;
        }
        if write.suffix.is_empty() {
            write.suffix = ".parquet".into();
        }
        self.try_map(&format!("{label}/ToJson"), |v| {
            serde_json::to_string(v).map_err(|e| anyhow!("cannot serialize: {e}"))
        })
        .write_shards(label, "WriteToParquet", write, ShardFormat::Parquet(schema))
    }
}

/// Writes one shard: JSON objects from `next`, decoded into `schema`, as Parquet.
pub(crate) fn write_shard(
    label: &str,
    shard: &str,
    file: &mut (impl Write + Send),
    schema: SchemaRef,
    mut next: impl FnMut() -> Result<Option<Vec<u8>>>,
    control: &RunControl,
) -> Result<()> {
    let error = |e: &dyn std::fmt::Display| anyhow!("transform '{label}': writing {shard}: {e}");
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| error(&e))?;
    let mut decoder = arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(true)
        .build_decoder()
        .map_err(|e| error(&e))?;
    let mut rows = 0usize;
    while let Some(line) = next()? {
        let used = decoder.decode(&line).map_err(|e| error(&e))?;
        if used < line.len() {
            return Err(error(&"an element did not become one row"));
        }
        decoder.decode(b"\n").map_err(|e| error(&e))?;
        rows += 1;
        if rows.is_multiple_of(BATCH_ROWS) {
            control.check()?;
            if let Some(batch) = decoder.flush().map_err(|e| error(&e))? {
                writer.write(&batch).map_err(|e| error(&e))?;
            }
        }
    }
    if let Some(batch) = decoder.flush().map_err(|e| error(&e))? {
        writer.write(&batch).map_err(|e| error(&e))?;
    }
    writer.close().map_err(|e| error(&e))?;
    Ok(())
}

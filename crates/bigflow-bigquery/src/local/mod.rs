//! The embedded local warehouse: BigQuery SQL on DataFusion over Parquet files.
//!
//! - [`storage`]: the files, manifests and atomic commits;
//! - [`dialect`]: BigQuery SQL rewritten for DataFusion;
//! - [`functions`]: BigQuery functions as UDFs;
//! - this module: [`LocalWarehouse`], the [`Backend`] on top of them:
//!   statements (`CREATE TABLE`, `INSERT`, `DROP TABLE`, queries), writes of
//!   query results with the table's schema enforced, partitions, loads;
//! - [`dml`]: `UPDATE`, `DELETE` and `MERGE` as whole-table rewrites;
//! - [`overflow`]: INT64 arithmetic and `SUM` that fail on overflow;
//! - [`limits`]: nesting, string size, recursion and date range limits, so
//!   that no input crashes, exhausts memory or runs forever.

mod calendar;
mod casts;
pub mod dialect;
mod dml;
pub mod functions;
mod json;
pub mod limits;
mod literals;
mod overflow;
mod ranges;
mod regexp;
pub mod storage;
mod string_agg;
mod text;
mod typed;
mod udf;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Date32Type, Schema, SchemaRef};
use chrono::{NaiveDate, Utc};
use datafusion::common::{Column, DataFusionError, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::options::JsonReadOptions;
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Expr as DfExpr, lit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    ColumnOption, DataType as SqlType, Expr as SqlExpr, ObjectType, Query, Statement, TableObject,
};
use futures_util::StreamExt;
use indexmap::IndexMap;

use crate::backend::{
    Backend, DryRun, FileFormat, Partitioning, QueryContext, QueryResult, TableInfo, WriteMode,
};
use crate::error::{BqError, Position, Result};
use crate::names::{TableId, partition_id};
use crate::schema::{Field, from_arrow_schema, to_arrow_schema};

use dialect::{Rewriter, TableRef, object_name_span, object_name_text, position, resolve};
use storage::{DataFile, Manifest, Staged, Storage};

/// A query being planned (boxed: planning a view plans its query).
type PlannedQuery<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<(DataFrame, Vec<TableRef>)>> + Send + 'a>>;

/// How deep views may refer to views.
const MAX_VIEW_DEPTH: usize = 16;

/// The environment variable that overrides the warehouse directory.
pub const WAREHOUSE_ENV: &str = "BIGFLOW_WAREHOUSE";

/// The default warehouse directory: `$BIGFLOW_WAREHOUSE`, else `.bigflow/warehouse`
/// under the working directory.
pub fn default_dir() -> PathBuf {
    match std::env::var_os(WAREHOUSE_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(".bigflow").join("warehouse"),
    }
}

/// The embedded warehouse.
pub struct LocalWarehouse {
    storage: Storage,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for LocalWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWarehouse")
            .field("root", &self.storage.root())
            .finish()
    }
}

/// The text of an error DataFusion wrapped around a function's refusal of
/// its arguments: `Some((function, cause))`.
/// How the warehouse's analyzer rules begin the message of a planning
/// error that is the query's mistake (BigQuery refuses the query too), not
/// the engine's limit.
pub(crate) const INVALID_QUERY: &str = "invalid query: ";

fn coercion_refusal(message: &str) -> Option<(&str, &str)> {
    let rest = message.split_once("Function '")?.1;
    let (function, rest) = rest.split_once("' user-defined coercion failed with: ")?;
    let cause = rest
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Execution error: ");
    Some((function, cause))
}

/// A DataFusion error as the warehouse's: what the engine cannot do is
/// [`BqError::Unsupported`] (DataFusion's planner refusing valid GoogleSQL
/// it has no plan for), what fails while running is [`BqError::Engine`],
/// and the refusals of the `bq_*` functions (BigQuery's own rules, e.g. a
/// condition that is not BOOL) are [`BqError::Sql`].
/// The longest engine message passed on whole; the rest of a longer one
/// (a 100 kB value quoted by a cast error) is counted, not repeated.
const MAX_MESSAGE_CHARS: usize = 2000;

fn bounded_message(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &message[..cut],
            message[cut..].chars().count()
        ),
        None => message,
    }
}

fn df_error(e: DataFusionError) -> BqError {
    let position = e.diagnostic().and_then(|d| d.span).and_then(|s| {
        (s.start.line > 0).then_some(Position {
            line: s.start.line,
            column: s.start.column,
        })
    });
    // The cause, not the planner stage it surfaced in ("Optimizer rule
    // 'simplify_expressions' failed caused by …").
    let root = e.find_root();
    let message = bounded_message(root.strip_backtrace().to_string());
    if let Some((function, cause)) = coercion_refusal(&message) {
        return if let Some(construct) = cause.strip_prefix("unsupported: ") {
            BqError::Unsupported {
                construct: construct.to_string(),
                position,
            }
        } else if function.starts_with("bq_") {
            BqError::Sql {
                message: cause.to_string(),
                position,
            }
        } else {
            BqError::Unsupported {
                construct: format!("{}: {cause}", function.to_uppercase()),
                position,
            }
        };
    }
    let message = message
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    // The warehouse's analyzer rules refusing what BigQuery refuses.
    if let Some(m) = message.strip_prefix(INVALID_QUERY) {
        return BqError::Sql {
            message: m.to_string(),
            position,
        };
    }
    // Arrow's decimal kernels widen the scale of a quotient or product before
    // BigQuery's rounding to NUMERIC: their overflow may be of a value
    // BigQuery has (INT64 overflow is `bq_int64_*`'s own error).
    if matches!(root, DataFusionError::ArrowError(..)) && message.contains("Overflow happened on") {
        return BqError::Unsupported {
            construct: format!(
                "NUMERIC arithmetic whose intermediate value leaves the engine's decimal range ({message})"
            ),
            position,
        };
    }
    // What the engine cannot do with valid GoogleSQL, found while running.
    let limits = [
        "Cannot access field",
        "Nested comparison",
        "not supported for Null",
        "is too large to store in a Decimal",
        "Unsupported",
        "not yet supported",
        "not implemented",
    ];
    if matches!(
        root,
        DataFusionError::Execution(_) | DataFusionError::ArrowError(..)
    ) && limits.iter().any(|l| message.contains(l))
    {
        return BqError::Unsupported {
            construct: message,
            position,
        };
    }
    match root {
        DataFusionError::NotImplemented(m) => BqError::Unsupported {
            construct: m.clone(),
            position,
        },
        DataFusionError::IoError(_)
        | DataFusionError::ParquetError(_)
        | DataFusionError::ArrowError(..)
        | DataFusionError::Execution(_)
        | DataFusionError::External(_)
        | DataFusionError::ResourcesExhausted(_) => BqError::Engine(message),
        // An unknown name is the query's mistake (see `plan_error` for
        // names the query does know).
        DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { field, .. } => BqError::Sql {
                message: format!("Unrecognized name: {}", field.name),
                position,
            },
            _ => BqError::Sql { message, position },
        },
        DataFusionError::Configuration(_) => BqError::Sql { message, position },
        // The planner's and the engine's own limits on valid GoogleSQL.
        _ => BqError::Unsupported {
            construct: message,
            position,
        },
    }
}

/// A planning error of a query that names `known` (its tables' columns and
/// fields, its aliases): a name the query knows that DataFusion does not
/// resolve (a struct field, a correlated reference, `ARRAY<…>[…]`) is the
/// engine's limit, not the query's mistake.
fn plan_error(e: DataFusionError, known: &std::collections::HashSet<String>) -> BqError {
    let missing = match e.find_root() {
        DataFusionError::SchemaError(schema, _) => match schema.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { field, .. } => {
                Some(field.name.clone())
            }
            _ => None,
        },
        _ => None,
    };
    let Some(name) = missing else {
        return df_error(e);
    };
    let keyword = matches!(
        name.as_str(),
        "ARRAY" | "STRUCT" | "RANGE" | "INTERVAL" | "JSON" | "NUMERIC" | "BIGNUMERIC" | "DEFAULT"
    );
    if !keyword && !known.contains(&name.to_lowercase()) {
        return df_error(e);
    }
    let position = match df_error(e) {
        BqError::Sql { position, .. } => position,
        _ => None,
    };
    BqError::Unsupported {
        construct: if keyword {
            format!("this use of {name} (typed literals and constructors)")
        } else {
            format!(
                "the reference to {name} here (a struct field, an outer query's column or an alias the engine does not resolve in this place)"
            )
        },
        position,
    }
}

/// `e` with the names tables are registered under for a statement
/// (`__bq_t0`, …) replaced by the tables' own.
fn internal_names(e: BqError, tables: &[TableRef]) -> BqError {
    let fix = |text: String| {
        let mut text = text;
        // The longest names first: `__bq_t10` before `__bq_t1`.
        for t in tables.iter().rev() {
            text = text.replace(&t.name, &format!("`{}`", t.id));
        }
        text
    };
    match e {
        BqError::Sql { message, position } => BqError::Sql {
            message: fix(message),
            position,
        },
        BqError::Unsupported {
            construct,
            position,
        } => BqError::Unsupported {
            construct: fix(construct),
            position,
        },
        BqError::Engine(m) => BqError::Engine(fix(m)),
        other => other,
    }
}

fn statement_kind(stmt: &Statement) -> String {
    let text = stmt.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [a, b]
            if matches!(
                a.to_ascii_uppercase().as_str(),
                "CREATE" | "DROP" | "ALTER" | "TRUNCATE"
            ) =>
        {
            format!(
                "{} {} statement",
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase()
            )
        }
        [a, ..] => format!("{} statement", a.to_ascii_uppercase()),
        [] => "empty statement".into(),
    }
}

fn unknown_table(t: &TableId, position: Option<Position>) -> BqError {
    BqError::UnknownTable {
        table: t.to_string(),
        position,
        hint: " in the local warehouse; create it first (create_table, CREATE TABLE)".into(),
    }
}

/// `true` if a value of `src` can be stored in a column of `dst` without loss of meaning.
fn compatible(src: &DataType, dst: &DataType) -> bool {
    use DataType::*;
    if src == dst || matches!(src, Null) {
        return true;
    }
    // A RANGE takes only a RANGE of its element type.
    if crate::range::element_of(src).is_some() || crate::range::element_of(dst).is_some() {
        return false;
    }
    match (src, dst) {
        (
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32,
            Int64 | Float64 | Decimal128(..) | Decimal256(..),
        ) => true,
        (UInt64, Int64 | Float64) => true,
        (Float16 | Float32 | Float64, Float64 | Decimal128(..) | Decimal256(..)) => true,
        (
            Decimal128(..) | Decimal256(..) | Decimal32(..) | Decimal64(..),
            Decimal128(..) | Decimal256(..) | Float64,
        ) => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (Binary | LargeBinary | BinaryView | FixedSizeBinary(_), Binary) => true,
        (Date32 | Date64, Date32) => true,
        (Timestamp(..), Timestamp(..)) => true,
        (Time32(_) | Time64(_), Time64(_)) => true,
        (List(a) | LargeList(a) | ListView(a) | FixedSizeList(a, _), List(b)) => {
            compatible(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(x, y)| {
                    x.name().eq_ignore_ascii_case(y.name())
                        && compatible(x.data_type(), y.data_type())
                })
        }
        _ => false,
    }
}

fn bq_name(t: &DataType) -> String {
    if crate::range::contains_range(t) {
        return typed::type_name(t);
    }
    crate::schema::bq_type_of(t)
        .map(|(name, _, repeated)| {
            if repeated {
                format!("ARRAY<{name}>")
            } else {
                name.to_string()
            }
        })
        .unwrap_or_else(|| t.to_string())
}

/// Maps result columns onto a table's columns, by name.
struct Conform {
    table: String,
    target: SchemaRef,
    /// For each target column: the source column index.
    sources: Vec<Option<usize>>,
}

impl Conform {
    fn new(table: &TableId, src: &Schema, target: SchemaRef) -> Result<Conform> {
        let mismatch = |column: &str, cause: String| BqError::TypeMismatch {
            table: table.to_string(),
            column: column.to_string(),
            cause,
        };
        for f in src.fields() {
            if !target
                .fields()
                .iter()
                .any(|t| t.name().eq_ignore_ascii_case(f.name()))
            {
                let names: Vec<&str> = target.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(mismatch(
                    f.name(),
                    format!(
                        "the table has no such column (its columns: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        let mut sources = Vec::new();
        for t in target.fields() {
            let idx = src
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(t.name()));
            match idx {
                Some(i) => {
                    let s = src.field(i).data_type();
                    if !compatible(s, t.data_type()) {
                        return Err(mismatch(
                            t.name(),
                            format!(
                                "the column is {} but the value is {}",
                                bq_name(t.data_type()),
                                bq_name(s)
                            ),
                        ));
                    }
                }
                None if !t.is_nullable() => {
                    return Err(mismatch(
                        t.name(),
                        "the column is REQUIRED but no value is given".into(),
                    ));
                }
                None => {}
            }
            sources.push(idx);
        }
        Ok(Conform {
            table: table.to_string(),
            target,
            sources,
        })
    }

    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.sources.len());
        for (t, src) in self.target.fields().iter().zip(&self.sources) {
            let col = match src {
                Some(i) => {
                    cast(batch.column(*i), t.data_type()).map_err(|e| BqError::TypeMismatch {
                        table: self.table.clone(),
                        column: t.name().clone(),
                        cause: e.to_string(),
                    })?
                }
                None => new_null_array(t.data_type(), batch.num_rows()),
            };
            if let Some(v) = limits::out_of_range(col.as_ref()) {
                return Err(limits::out_of_range_error(t.name(), &v, Some(&self.table)));
            }
            if !t.is_nullable() && col.null_count() > 0 {
                return Err(BqError::TypeMismatch {
                    table: self.table.clone(),
                    column: t.name().clone(),
                    cause: "NULL in a REQUIRED column".into(),
                });
            }
            columns.push(col);
        }
        RecordBatch::try_new(self.target.clone(), columns)
            .map_err(|e| BqError::Engine(format!("writing into `{}`: {e}", self.table)))
    }
}

/// How a write assigns rows to partitions.
enum Splitter {
    None,
    Fixed(String),
    Column {
        index: usize,
        only: Option<String>,
    },
    /// By the day in the source's last column, [`HIDDEN_PARTITION`], which
    /// is not written (rewrites of ingestion-partitioned tables).
    Hidden {
        index: usize,
    },
}

const NULL_PARTITION: &str = "__NULL__";

/// The name of a source column that carries each row's ingestion partition
/// (a DATE) through a rewrite; it is split on, never written.
const HIDDEN_PARTITION: &str = "__bigflow_partition";

/// Row indices of a batch grouped by the day of a DATE/TIMESTAMP column (`None`: NULL).
fn day_groups(column: &ArrayRef) -> Result<BTreeMap<Option<NaiveDate>, Vec<u32>>> {
    let days = cast(column, &DataType::Date32).map_err(|e| BqError::Engine(e.to_string()))?;
    let days = days.as_primitive::<Date32Type>();
    let mut groups: BTreeMap<Option<NaiveDate>, Vec<u32>> = BTreeMap::new();
    for i in 0..days.len() {
        let day = (!days.is_null(i)).then(|| {
            NaiveDate::from_num_days_from_ce_opt(days.value(i).saturating_add(719_163))
                .unwrap_or_default()
        });
        groups.entry(day).or_default().push(i as u32);
    }
    Ok(groups)
}

/// The rows `rows` of `batch` (the batch itself when that is all of them).
fn take_rows(batch: &RecordBatch, rows: Vec<u32>) -> Result<RecordBatch> {
    if rows.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    take_record_batch(batch, &UInt32Array::from(rows)).map_err(|e| BqError::Engine(e.to_string()))
}

impl Splitter {
    fn split(
        &self,
        table: &TableId,
        batch: RecordBatch,
    ) -> Result<Vec<(Option<String>, RecordBatch)>> {
        match self {
            Splitter::None => Ok(vec![(None, batch)]),
            Splitter::Fixed(p) => Ok(vec![(Some(p.clone()), batch)]),
            Splitter::Hidden { index } => day_groups(batch.column(*index))?
                .into_iter()
                .map(|(day, rows)| Ok((day.map(partition_id), take_rows(&batch, rows)?)))
                .collect(),
            Splitter::Column { index, only } => {
                let mut out = Vec::new();
                for (day, rows) in day_groups(batch.column(*index))? {
                    let key = match day {
                        Some(d) => partition_id(d),
                        None => NULL_PARTITION.to_string(),
                    };
                    if let Some(only) = only
                        && &key != only
                    {
                        return Err(BqError::WrongPartition {
                            table: table.to_string(),
                            partition: Some(only.clone()),
                            cause: if key == NULL_PARTITION {
                                format!(
                                    "{} row(s) have NULL in the partitioning column",
                                    rows.len()
                                )
                            } else {
                                format!("{} row(s) belong to partition {key}", rows.len())
                            },
                        });
                    }
                    out.push((Some(key), take_rows(&batch, rows)?));
                }
                Ok(out)
            }
        }
    }
}

/// Paths removed on drop unless cleared.
struct TmpFiles(Vec<PathBuf>);

impl Drop for TmpFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One staged file being written.
struct PartWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl LocalWarehouse {
    /// The warehouse in `dir` (created when first written).
    pub fn open(dir: impl Into<PathBuf>) -> Result<LocalWarehouse> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .min(8),
            )
            .thread_name("bigflow-warehouse")
            .thread_stack_size(limits::WORKER_STACK)
            .enable_all()
            .build()
            .map_err(|e| BqError::Engine(format!("cannot start the query runtime: {e}")))?;
        Ok(LocalWarehouse {
            storage: Storage::new(dir),
            runtime,
        })
    }

    /// The warehouse directory.
    pub fn dir(&self) -> &Path {
        self.storage.root()
    }

    /// The physical plan DataFusion runs for one SELECT query, as text:
    /// with `analyze`, after running it, with each operator's rows, time
    /// and memory (DataFusion's `EXPLAIN ANALYZE`). For engineers finding
    /// why a query is slow; BigQuery itself has no EXPLAIN statement.
    pub fn explain(&self, sql: &str, ctx: &QueryContext, analyze: bool) -> Result<String> {
        limits::on_large_stack(|| {
            let q = Self::single_query(sql, "explain")?;
            self.block_on(async {
                let (df, _) = self.plan_query(q, ctx).await?;
                let batches = df
                    .explain(false, analyze)
                    .map_err(df_error)?
                    .collect()
                    .await
                    .map_err(df_error)?;
                let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .map_err(|e| BqError::Engine(e.to_string()))?;
                Ok(text.to_string())
            })
        })
        .map_err(|e| dialect::within(e, sql))
    }

    /// Tables of a dataset.
    pub fn list_tables(&self, project: &str, dataset: &str) -> Vec<String> {
        self.storage.list_tables(project, dataset)
    }

    fn session(&self) -> SessionContext {
        // DataFusion's tuning knobs (`DATAFUSION_EXECUTION_BATCH_SIZE`, …)
        // may be set in the environment; the settings below, which give
        // BigQuery's meaning, are not.
        let base = SessionConfig::from_env().unwrap_or_else(|e| {
            tracing::warn!("ignoring the DATAFUSION_* settings of the environment: {e}");
            SessionConfig::new()
        });
        let mut config = base.with_information_schema(false).with_target_partitions(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        );
        let opts = config.options_mut();
        opts.sql_parser.enable_ident_normalization = false;
        opts.sql_parser.map_string_types_to_utf8view = false;
        opts.sql_parser.collect_spans = true;
        // BigQuery: NULLs first in ascending order, last in descending.
        opts.sql_parser.default_null_ordering = "nulls_min".into();
        opts.execution.time_zone = Some("UTC".into());
        opts.execution.parquet.schema_force_view_types = false;
        // Filters are evaluated while the Parquet files are decoded, so the
        // other columns of rows a filter (or a join's dynamic filter) drops
        // are never decoded: TPC-H SF1 27 % faster (geometric mean; Q17, Q18
        // 2-3x). Filters keep the order they are written in (reordering
        // them made scans with unselective filters slower).
        if std::env::var_os("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS").is_none() {
            opts.execution.parquet.pushdown_filters = true;
        }
        // JSON field access (`json.a`, `json['a']`) ahead of DataFusion's
        // STRUCT field access.
        let mut planners: Vec<Arc<dyn datafusion::logical_expr::planner::ExprPlanner>> =
            vec![Arc::new(typed::JsonFieldPlanner::new())];
        planners.extend(datafusion::execution::SessionStateDefaults::default_expr_planners());
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_expr_planners(planners)
            .with_physical_optimizer_rule(Arc::new(limits::RecursionLimit))
            .build();
        let ctx = SessionContext::new_with_state(state);
        functions::register(&ctx);
        for f in typed::udfs()
            .into_iter()
            .chain(casts::udfs())
            .chain(regexp::udfs())
            .chain(json::udfs())
            .chain(ranges::udfs())
            .chain(calendar::udfs())
            .chain(text::udfs())
        {
            ctx.register_udf(f);
        }
        overflow::register(&ctx);
        ctx.register_udaf(string_agg::BqStringAgg::udaf());
        limits::cap_string_functions(&ctx);
        ctx
    }

    /// Runs a future to completion; from inside another tokio runtime (an
    /// async caller) it runs on a helper thread, where blocking is allowed.
    fn block_on<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(f);
        }
        std::thread::scope(|s| match s.spawn(|| self.runtime.block_on(f)).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    /// The manifest of a table that exists and is not damaged (every file
    /// it lists is there: see [`Storage::check_files`]).
    fn manifest(&self, id: &TableId, pos: Option<Position>) -> Result<Manifest> {
        let m = self
            .storage
            .read_manifest(id)?
            .ok_or_else(|| unknown_table(id, pos))?;
        self.storage.check_files(id, &m)?;
        Ok(m)
    }

    async fn table_frame(
        &self,
        session: &SessionContext,
        t: &TableRef,
        pseudo: bool,
    ) -> Result<DataFrame> {
        let m = self.manifest(&t.id, t.position)?;
        let schema = with_string_views(&to_arrow_schema(&m.schema)?);
        let path_of = |f: &DataFile| {
            self.storage
                .data_path(&t.id, &f.name)
                .to_string_lossy()
                .to_string()
        };
        let read = |paths: Vec<String>| {
            let schema = schema.clone();
            async move {
                if paths.is_empty() {
                    session.read_batch(RecordBatch::new_empty(Arc::new(schema)))
                } else {
                    session
                        .read_parquet(paths, ParquetReadOptions::default().schema(&schema))
                        .await
                }
            }
        };
        if !(pseudo && m.partitioning == Some(Partitioning::Ingestion)) {
            return read(m.files.iter().map(path_of).collect())
                .await
                .map_err(df_error);
        }
        let mut by_partition: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for f in &m.files {
            by_partition
                .entry(f.partition.clone())
                .or_default()
                .push(path_of(f));
        }
        if by_partition.is_empty() {
            by_partition.insert(None, vec![]);
        }
        let mut union: Option<DataFrame> = None;
        for (p, paths) in by_partition {
            let day = p
                .as_deref()
                .and_then(|p| NaiveDate::parse_from_str(p, "%Y%m%d").ok());
            let ts = day.map(|d| {
                d.and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp_micros()
            });
            let days = day.map(|d| (d - NaiveDate::default()).num_days() as i32);
            let mut cols: Vec<DfExpr> = schema
                .fields()
                .iter()
                .map(|f| DfExpr::Column(Column::new_unqualified(f.name())))
                .collect();
            cols.push(
                lit(ScalarValue::TimestampMicrosecond(ts, Some("UTC".into())))
                    .alias("_PARTITIONTIME"),
            );
            cols.push(lit(ScalarValue::Date32(days)).alias("_PARTITIONDATE"));
            let df = read(paths)
                .await
                .map_err(df_error)?
                .select(cols)
                .map_err(df_error)?;
            union = Some(match union {
                None => df,
                Some(u) => u.union(df).map_err(df_error)?,
            });
        }
        union.ok_or_else(|| BqError::Engine("no partitions".into()))
    }

    /// Rewrites and plans a query; returns the frame and the tables it reads.
    async fn plan_query(
        &self,
        query: Query,
        ctx: &QueryContext,
    ) -> Result<(DataFrame, Vec<TableRef>)> {
        self.plan_query_in(query, ctx, 0).await
    }

    /// [`Self::plan_query`] inside `depth` views.
    fn plan_query_in<'a>(
        &'a self,
        query: Query,
        ctx: &'a QueryContext,
        depth: usize,
    ) -> PlannedQuery<'a> {
        Box::pin(self.plan_query_at(query, ctx, depth))
    }

    async fn plan_query_at(
        &self,
        mut query: Query,
        ctx: &QueryContext,
        depth: usize,
    ) -> Result<(DataFrame, Vec<TableRef>)> {
        let session = self.session();
        let state = session.state();
        let known = |name: &str| {
            state.scalar_functions().contains_key(name)
                || state.aggregate_functions().contains_key(name)
                || state.window_functions().contains_key(name)
        };
        let mut rw = Rewriter::new(ctx, &known);
        rw.rewrite_query(&mut query)?;
        // Each table or view the query reads, and the names of its columns.
        let mut columns = Vec::new();
        // Column (and field) names: JSON, STRING, other; `None` when two
        // columns of the name differ.
        let mut json_kinds: std::collections::HashMap<String, Option<&'static str>> =
            Default::default();
        // Whether one of them has NUMERIC/BIGNUMERIC columns.
        let mut decimals = false;
        let mut frames = Vec::new();
        for t in &rw.tables {
            fn names(fields: &[Field], out: &mut Vec<String>) {
                for f in fields {
                    out.push(f.name.clone());
                    names(&f.fields, out);
                }
            }
            let df = match self.storage.read_view(&t.id)? {
                Some(view) if self.storage.read_manifest(&t.id)?.is_none() => {
                    if depth >= MAX_VIEW_DEPTH {
                        return Err(BqError::Sql {
                            message: format!(
                                "view `{}` refers to views {MAX_VIEW_DEPTH} deep (does it refer to itself?)",
                                t.id
                            ),
                            position: t.position,
                        });
                    }
                    let q = Self::single_query(&view.sql, "a view")?;
                    let view_ctx = QueryContext {
                        default_project: view.default_project,
                        default_dataset: view.default_dataset,
                        ..QueryContext::default()
                    };
                    let (df, _) = self.plan_query_in(q, &view_ctx, depth + 1).await?;
                    columns.extend(df.schema().fields().iter().map(|f| f.name().clone()));
                    // A view's STRING columns may be JSON or not.
                    for f in df.schema().fields() {
                        json_kinds.insert(f.name().to_lowercase(), None);
                    }
                    df
                }
                _ => {
                    let m = self.manifest(&t.id, t.position)?;
                    fn has_decimal(fields: &[Field]) -> bool {
                        fields.iter().any(|f| {
                            matches!(f.field_type.as_str(), "NUMERIC" | "BIGNUMERIC")
                                || has_decimal(&f.fields)
                        })
                    }
                    decimals |= has_decimal(&m.schema);
                    names(&m.schema, &mut columns);
                    fn kinds(
                        fields: &[Field],
                        out: &mut std::collections::HashMap<String, Option<&'static str>>,
                    ) {
                        for f in fields {
                            let kind = match (f.field_type.as_str(), f.mode.as_str()) {
                                ("JSON", "REPEATED") | ("STRING", "REPEATED") => "OTHER",
                                ("JSON", _) => "JSON",
                                ("STRING", _) => "STRING",
                                _ => "OTHER",
                            };
                            out.entry(f.name.to_lowercase())
                                .and_modify(|k| {
                                    if *k != Some(kind) {
                                        *k = None;
                                    }
                                })
                                .or_insert(Some(kind));
                            kinds(&f.fields, out);
                        }
                    }
                    kinds(&m.schema, &mut json_kinds);
                    self.table_frame(&session, t, rw.pseudo_columns).await?
                }
            };
            frames.push(df);
        }
        dialect::fold_case(&mut query, &columns);
        dialect::json_column_kinds(&mut query, &json_kinds);
        for (t, df) in rw.tables.iter().zip(frames) {
            session
                .register_table(t.name.as_str(), df.into_view())
                .map_err(df_error)?;
        }
        let retypes = decimals || dialect::divides_or_decimals(&query);
        let mut known: std::collections::HashSet<String> =
            columns.iter().map(|c| c.to_lowercase()).collect();
        known.extend(
            dialect::query_names(&query)
                .into_iter()
                .map(|n| n.to_lowercase()),
        );
        let stmt = DfStatement::Statement(Box::new(Statement::Query(Box::new(query))));
        let internal = |e: BqError| internal_names(e, &rw.tables);
        let state = session.state();
        let plan = state
            .statement_to_plan(stmt)
            .await
            .map_err(|e| internal(plan_error(e, &known)))?;
        // Analyzed now (the analyzer runs again when the plan is executed)
        // where the warehouse's rules change types (`/` makes FLOAT64 of
        // INT64s, NUMERIC arithmetic stays NUMERIC), so that the frame's
        // schema is the result's.
        let plan = if retypes {
            state
                .analyzer()
                .execute_and_check(plan, state.config_options(), |_, _| {})
                .map_err(|e| internal(plan_error(e, &known)))?
        } else {
            plan
        };
        let df = session
            .execute_logical_plan(plan)
            .await
            .map_err(|e| internal(plan_error(e, &known)))?;
        Ok((without_string_views(df)?, rw.tables))
    }

    async fn collect(&self, df: DataFrame) -> Result<QueryResult> {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(df_error)?;
        for b in &batches {
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                if let Some(v) = limits::out_of_range(c.as_ref()) {
                    return Err(limits::out_of_range_error(f.name(), &v, None));
                }
            }
        }
        Ok(QueryResult {
            schema,
            batches,
            affected_rows: None,
        })
    }

    /// Streams a frame's rows into `table` (or one partition), then commits.
    ///
    /// `rewrite`: the frame is the whole table rewritten from manifest
    /// version `rewrite` (UPDATE, DELETE): a commit in between is an error,
    /// and an ingestion-partitioned table's rows keep their partitions
    /// through the [`HIDDEN_PARTITION`] column.
    async fn write_frame(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        mode: WriteMode,
        df: DataFrame,
        create: Option<(Option<Partitioning>, IndexMap<String, String>)>,
        rewrite: Option<u64>,
    ) -> Result<u64> {
        let full: Schema = df.schema().as_arrow().clone();
        let hidden = full
            .fields()
            .iter()
            .position(|f| f.name() == HIDDEN_PARTITION);
        // The hidden column is last: the other source indices stay the same.
        let src = match hidden {
            Some(h) => Schema::new(full.fields()[..h].to_vec()),
            None => full,
        };
        let existing = self.storage.read_manifest(table)?;
        let (fields, partitioning) = match (&existing, mode, &create) {
            (_, WriteMode::CreateOrReplace, _) => (
                relaxed(from_arrow_schema(&src)?),
                create.as_ref().and_then(|c| c.0.clone()),
            ),
            (Some(m), _, _) => (m.schema.clone(), m.partitioning.clone()),
            (None, _, Some((p, _))) => (relaxed(from_arrow_schema(&src)?), p.clone()),
            (None, _, None) => {
                return Err(BqError::UnknownTable {
                    table: table.to_string(),
                    position: None,
                    hint: format!(
                        "; {} needs an existing table: create it first (create_table, CREATE TABLE)",
                        if mode == WriteMode::Truncate {
                            "write_truncate"
                        } else {
                            "write_append"
                        }
                    ),
                });
            }
        };
        let target = Arc::new(to_arrow_schema(&fields)?);
        let conform = Conform::new(table, &src, target.clone())?;
        let splitter = match (&partitioning, partition) {
            (Some(Partitioning::Ingestion), None) if hidden.is_some() => Splitter::Hidden {
                index: hidden.unwrap_or_default(),
            },
            (None, Some(day)) => {
                return Err(BqError::WrongPartition {
                    table: table.to_string(),
                    partition: Some(partition_id(day)),
                    cause:
                        "the table is not partitioned; write the whole table (partitioned=false)"
                            .into(),
                });
            }
            (None, None) => Splitter::None,
            (Some(Partitioning::Ingestion), day) => {
                Splitter::Fixed(partition_id(day.unwrap_or_else(|| Utc::now().date_naive())))
            }
            (Some(Partitioning::Column { column }), day) => Splitter::Column {
                index: target.index_of(column).map_err(|_| {
                    BqError::Engine(format!("partitioning column {column} missing in `{table}`"))
                })?,
                only: day.map(partition_id),
            },
        };
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writers: BTreeMap<Option<String>, PartWriter> = BTreeMap::new();
        // Files being written are removed if the write fails half-way.
        let mut guard = TmpFiles(Vec::new());
        let mut stream = df.execute_stream().await.map_err(df_error)?;
        let mut total = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(df_error)?;
            let parts = match splitter {
                // Split on the source's hidden column, then drop it.
                Splitter::Hidden { .. } => splitter
                    .split(table, batch)?
                    .into_iter()
                    .map(|(key, part)| Ok((key, conform.apply(&part)?)))
                    .collect::<Result<Vec<_>>>()?,
                _ => splitter.split(table, conform.apply(&batch)?)?,
            };
            for (key, part) in parts {
                if part.num_rows() == 0 {
                    continue;
                }
                let w = match writers.entry(key) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        let path = self.storage.staging_path(table)?;
                        guard.0.push(path.clone());
                        let file = File::create(&path).map_err(|e| BqError::io(&path, e))?;
                        let writer =
                            ArrowWriter::try_new(file, target.clone(), Some(props.clone()))
                                .map_err(|e| BqError::Engine(e.to_string()))?;
                        v.insert(PartWriter {
                            path,
                            writer,
                            rows: 0,
                        })
                    }
                };
                w.rows += part.num_rows() as u64;
                total += part.num_rows() as u64;
                w.writer
                    .write(&part)
                    .map_err(|e| BqError::Engine(e.to_string()))?;
            }
        }
        let mut staged = Vec::new();
        for (key, w) in writers {
            let PartWriter { path, writer, rows } = w;
            // Registered first so the file is removed if anything below fails.
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut s = Staged {
                path: path.clone(),
                file: DataFile {
                    name,
                    partition: key,
                    rows,
                    bytes: 0,
                },
            };
            let file = writer
                .into_inner()
                .map_err(|e| BqError::Engine(e.to_string()))?;
            file.sync_all().map_err(|e| BqError::io(&path, e))?;
            s.file.bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            staged.push(s);
        }
        // From here on the staged files clean up after themselves.
        guard.0.clear();
        let replace_key = partition.map(partition_id);
        let labels = create.map(|c| c.1).unwrap_or_default();
        self.storage.commit(table, staged, move |current| {
            let m = match (current, mode) {
                (current, WriteMode::CreateOrReplace) => storage::replace(
                    current,
                    Manifest::new(fields.clone(), partitioning.clone(), labels),
                ),
                (Some(m), _) if rewrite.is_some_and(|v| v != m.version) => {
                    return Err(BqError::Engine(format!(
                        "`{table}` was changed by another writer during this statement; run it again"
                    )));
                }
                (Some(mut m), _) => {
                    if m.schema != fields {
                        return Err(BqError::Engine(format!(
                            "`{table}` was changed by another writer during this write; run it again"
                        )));
                    }
                    if mode == WriteMode::Truncate {
                        m.drop_files(replace_key.as_deref());
                    }
                    m
                }
                (None, _) => return Err(unknown_table(table, None)),
            };
            Ok((Some(m), total))
        })
    }

    fn create_table_statement(
        &self,
        stmt: &datafusion::sql::sqlparser::ast::CreateTable,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let id = resolve(&stmt.name, ctx)?;
        let span = object_name_span(&stmt.name);
        let unsupported = |what: &str| BqError::Unsupported {
            construct: what.to_string(),
            position: position(span),
        };
        if stmt.temporary {
            // Only a script makes temporary tables (see `TempTables`).
            return Err(unsupported("CREATE TEMP TABLE outside a script"));
        }
        if stmt.like.is_some() || stmt.clone.is_some() {
            return Err(unsupported("CREATE TABLE LIKE/CLONE"));
        }
        let exists = self.storage.read_manifest(&id)?.is_some();
        if self.storage.read_view(&id)?.is_some() {
            return Err(BqError::TableExists {
                table: id.to_string(),
            });
        }
        if exists && stmt.if_not_exists {
            return Ok(empty_result());
        }
        if exists && !stmt.or_replace {
            return Err(BqError::TableExists {
                table: id.to_string(),
            });
        }
        let mut fields = Vec::new();
        for c in &stmt.columns {
            let mut f = sql_type_to_field(&c.name.value, &c.data_type).map_err(|what| {
                BqError::Unsupported {
                    construct: format!("column type {what} of `{}`", c.name.value),
                    position: position(c.name.span),
                }
            })?;
            if c.options
                .iter()
                .any(|o| matches!(o.option, ColumnOption::NotNull))
            {
                f.mode = "REQUIRED".into();
            }
            fields.push(f);
        }
        let spec = |fields: &[Field]| -> Result<Option<Partitioning>> {
            match &stmt.partition_by {
                None => Ok(None),
                Some(e) => {
                    partition_spec(e, fields)
                        .map(Some)
                        .map_err(|cause| BqError::Unsupported {
                            construct: format!("PARTITION BY {e} ({cause})"),
                            position: position(span),
                        })
                }
            }
        };
        let labels = ctx.table_labels.clone();
        if let Some(q) = &stmt.query {
            let q = (**q).clone();
            return self.block_on(async {
                let (df, _) = self.plan_query(q, ctx).await?;
                let partitioning = spec(&relaxed(from_arrow_schema(df.schema().as_arrow())?))?;
                let n = self
                    .write_frame(
                        &id,
                        None,
                        WriteMode::CreateOrReplace,
                        df,
                        Some((partitioning, labels)),
                        None,
                    )
                    .await?;
                Ok(QueryResult {
                    affected_rows: Some(n),
                    ..empty_result()
                })
            });
        }
        let partitioning = spec(&fields)?;
        if fields.is_empty() {
            return Err(BqError::Sql {
                message: format!("CREATE TABLE `{id}` has no columns"),
                position: position(span),
            });
        }
        to_arrow_schema(&fields)?;
        let manifest = Manifest::new(fields, partitioning, labels);
        let if_not_exists = stmt.if_not_exists;
        self.storage
            .commit(&id, vec![], move |current| match current {
                Some(old) if if_not_exists => Ok((Some(old), ())),
                current => Ok((Some(storage::replace(current, manifest)), ())),
            })?;
        Ok(empty_result())
    }

    /// `CREATE [OR REPLACE] VIEW [IF NOT EXISTS] v AS SELECT …`: the query is
    /// planned now (so a bad one fails here) and stored as text, read again
    /// each time a query names the view.
    fn create_view_statement(
        &self,
        cv: &datafusion::sql::sqlparser::ast::CreateView,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let id = resolve(&cv.name, ctx)?;
        let pos = position(object_name_span(&cv.name));
        if cv.materialized {
            return Err(BqError::Unsupported {
                construct: "CREATE MATERIALIZED VIEW".into(),
                position: pos,
            });
        }
        if self.storage.read_manifest(&id)?.is_some() {
            return Err(BqError::Sql {
                message: format!(
                    "`{id}` already exists as a table, and a view cannot take its name (CREATE OR REPLACE VIEW does not replace tables): drop the table first (DROP TABLE) or name the view differently"
                ),
                position: pos,
            });
        }
        if self.storage.read_view(&id)?.is_some() {
            if cv.if_not_exists {
                return Ok(empty_result());
            }
            if !cv.or_replace {
                return Err(BqError::TableExists {
                    table: id.to_string(),
                });
            }
        }
        let sql = cv.query.to_string();
        self.block_on(self.plan_query((*cv.query).clone(), ctx))?;
        self.storage.write_view(
            &id,
            Some(&storage::ViewDef {
                sql,
                default_project: ctx.default_project.clone(),
                default_dataset: ctx.default_dataset.clone(),
            }),
        )?;
        Ok(empty_result())
    }

    fn insert_statement(
        &self,
        ins: &datafusion::sql::sqlparser::ast::Insert,
        ctx: &QueryContext,
    ) -> Result<QueryResult> {
        let TableObject::TableName(name) = &ins.table else {
            return Err(BqError::Unsupported {
                construct: "INSERT INTO a table function".into(),
                position: None,
            });
        };
        if ins.or.is_some() || ins.ignore || ins.on.is_some() || ins.overwrite {
            return Err(BqError::Unsupported {
                construct: "INSERT OR …, INSERT IGNORE, INSERT OVERWRITE and ON CONFLICT (BigQuery's INSERT has none of them)".into(),
                position: position(object_name_span(name)),
            });
        }
        let id = resolve(name, ctx)?;
        let pos = position(object_name_span(name));
        let m = self.manifest(&id, pos)?;
        let Some(source) = &ins.source else {
            return Err(BqError::Unsupported {
                construct: "INSERT without VALUES or SELECT".into(),
                position: pos,
            });
        };
        let targets: Vec<String> = if ins.columns.is_empty() {
            m.schema.iter().map(|f| f.name.clone()).collect()
        } else {
            ins.columns.iter().map(object_name_text).collect()
        };
        let q = (**source).clone();
        self.block_on(async {
            let (df, _) = self.plan_query(q, ctx).await?;
            let width = df.schema().fields().len();
            if width != targets.len() {
                return Err(BqError::Sql {
                    message: format!(
                        "INSERT INTO `{id}` names {} column(s) but gives {width} value(s) per row",
                        targets.len()
                    ),
                    position: pos,
                });
            }
            let cols: Vec<DfExpr> = df
                .schema()
                .columns()
                .into_iter()
                .zip(&targets)
                .map(|(c, t)| DfExpr::Column(c).alias(t))
                .collect();
            let df = df.select(cols).map_err(df_error)?;
            let n = self
                .write_frame(&id, None, WriteMode::Append, df, None, None)
                .await?;
            Ok(QueryResult {
                affected_rows: Some(n),
                ..empty_result()
            })
        })
    }

    fn run_statement(&self, stmt: Statement, ctx: &QueryContext) -> Result<QueryResult> {
        match stmt {
            Statement::Query(q) => self.block_on(async {
                let (df, tables) = self.plan_query(*q, ctx).await?;
                self.collect(df)
                    .await
                    .map_err(|e| internal_names(e, &tables))
            }),
            Statement::CreateTable(ct) => self.create_table_statement(&ct, ctx),
            Statement::CreateView(cv) => self.create_view_statement(&cv, ctx),
            Statement::Drop {
                object_type: ObjectType::View,
                if_exists,
                names,
                ..
            } => {
                for n in &names {
                    let id = resolve(n, ctx)?;
                    if self.storage.read_view(&id)?.is_none() {
                        if if_exists {
                            continue;
                        }
                        return Err(BqError::UnknownTable {
                            table: id.to_string(),
                            position: position(object_name_span(n)),
                            hint: " (no view of that name)".into(),
                        });
                    }
                    self.storage.write_view(&id, None)?;
                }
                Ok(empty_result())
            }
            Statement::Insert(ins) => self.insert_statement(&ins, ctx),
            Statement::Delete(del) => self.delete_statement(&del, ctx),
            Statement::Update(upd) => self.update_statement(&upd, ctx),
            Statement::Merge(merge) => self.merge_statement(&merge, ctx),
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } => {
                for n in &names {
                    let id = resolve(n, ctx)?;
                    if self.storage.read_manifest(&id)?.is_none() {
                        if if_exists {
                            continue;
                        }
                        return Err(unknown_table(&id, position(object_name_span(n))));
                    }
                    self.storage.commit(&id, vec![], |_| Ok((None, ())))?;
                }
                Ok(empty_result())
            }
            other => Err(BqError::Unsupported {
                construct: statement_kind(&other),
                position: None,
            }),
        }
    }

    fn single_query(sql: &str, what: &str) -> Result<Query> {
        let mut stmts = dialect::parse(sql)?;
        if stmts.len() != 1 {
            return Err(BqError::Sql {
                message: format!(
                    "{what} takes one SELECT query, got {} statements",
                    stmts.len()
                ),
                position: None,
            });
        }
        match stmts.remove(0) {
            Statement::Query(q) => Ok(*q),
            other => Err(BqError::Sql {
                message: format!(
                    "{what} takes a SELECT query, got a {}",
                    statement_kind(&other)
                ),
                position: None,
            }),
        }
    }
}

/// `schema` with its STRING columns read as `Utf8View` instead of `Utf8`.
///
/// Inside a query, strings are views: a hash join copies the build side's
/// string columns into every output row, and with `Utf8` that is a copy of
/// the bytes (10 M `country`/`category` values in the benchmark's join +
/// group by), while a view copies 16 bytes that hold a short string inline;
/// grouping by short views also compares them without touching a buffer.
/// Measured at 10 M fact rows on 2 cores (`bench/run warehouse`): join +
/// group by 0.38 s → 0.20 s, the other queries unchanged. Results are cast
/// back to `Utf8` by [`without_string_views`], so callers never see views.
fn with_string_views(schema: &Schema) -> Schema {
    let fields: Vec<arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `t` with every `Utf8View`/`BinaryView`, also nested, as `Utf8`/`Binary`.
fn viewless(t: &DataType) -> DataType {
    use arrow::datatypes::Field as ArrowField;
    let field = |f: &ArrowField| Arc::new(f.clone().with_data_type(viewless(f.data_type())));
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::ListView(f) => DataType::ListView(field(f)),
        DataType::LargeListView(f) => DataType::LargeListView(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| field(f)).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// A query's frame with its view columns (see [`with_string_views`]) cast
/// to the plain types of its schema; the frame itself when it has none.
fn without_string_views(df: DataFrame) -> Result<DataFrame> {
    let schema = df.schema().clone();
    if schema
        .fields()
        .iter()
        .all(|f| viewless(f.data_type()) == *f.data_type())
    {
        return Ok(df);
    }
    let cols: Vec<DfExpr> = schema
        .iter()
        .map(|(q, f)| {
            let col = DfExpr::Column(Column::new(q.cloned(), f.name()));
            let plain = viewless(f.data_type());
            if plain == *f.data_type() {
                col
            } else {
                datafusion::logical_expr::cast(col, plain).alias_qualified(q.cloned(), f.name())
            }
        })
        .collect();
    df.select(cols).map_err(df_error)
}

/// Query results make NULLABLE columns in BigQuery (REPEATED stays).
fn relaxed(fields: Vec<Field>) -> Vec<Field> {
    fields
        .into_iter()
        .map(|mut f| {
            if f.mode == "REQUIRED" {
                f.mode = "NULLABLE".into();
            }
            f.fields = relaxed(f.fields);
            f
        })
        .collect()
}

fn empty_result() -> QueryResult {
    QueryResult {
        schema: Arc::new(Schema::empty()),
        batches: vec![],
        affected_rows: None,
    }
}

/// A BigQuery column type of CREATE TABLE → a schema field; `Err(type)` if unknown.
fn sql_type_to_field(name: &str, t: &SqlType) -> std::result::Result<Field, String> {
    use datafusion::sql::sqlparser::ast::ArrayElemTypeDef;
    let simple = |ty: &str| Ok(Field::new(name, ty));
    match t {
        SqlType::String(_) | SqlType::Varchar(_) | SqlType::Text => simple("STRING"),
        SqlType::Bytes(_) => simple("BYTES"),
        SqlType::Int64
        | SqlType::Integer(_)
        | SqlType::Int(_)
        | SqlType::BigInt(_)
        | SqlType::SmallInt(_)
        | SqlType::TinyInt(_) => simple("INT64"),
        SqlType::Float64 | SqlType::Float(_) | SqlType::Double(_) => simple("FLOAT64"),
        SqlType::Numeric(_) | SqlType::Decimal(_) => simple("NUMERIC"),
        SqlType::BigNumeric(_) | SqlType::BigDecimal(_) => simple("BIGNUMERIC"),
        SqlType::Bool | SqlType::Boolean => simple("BOOL"),
        SqlType::Date => simple("DATE"),
        SqlType::Datetime(_) => simple("DATETIME"),
        SqlType::Timestamp(_, _) => simple("TIMESTAMP"),
        SqlType::Time(_, _) => simple("TIME"),
        SqlType::JSON => simple("JSON"),
        SqlType::Array(ArrayElemTypeDef::AngleBracket(inner)) => {
            let f = sql_type_to_field(name, inner)?;
            if f.mode == "REPEATED" {
                return Err(format!("{t} (arrays of arrays)"));
            }
            Ok(f.mode("REPEATED"))
        }
        SqlType::Struct(fields, _)
            if fields.len() == 2
                && fields[0].field_name.as_ref().map(|n| n.value.as_str())
                    == Some(crate::range::START) =>
        {
            let element = match &fields[0].field_type {
                SqlType::Date => "DATE",
                SqlType::Datetime(_) => "DATETIME",
                SqlType::Timestamp(_, _) => "TIMESTAMP",
                _ => return Err(t.to_string()),
            };
            Ok(Field::range(name, element))
        }
        SqlType::Struct(fields, _) => {
            let sub = fields
                .iter()
                .enumerate()
                .map(|(i, sf)| {
                    let n = sf
                        .field_name
                        .as_ref()
                        .map(|n| n.value.clone())
                        .unwrap_or_else(|| format!("_field_{}", i + 1));
                    sql_type_to_field(&n, &sf.field_type)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Field::new(name, "STRUCT").fields(sub))
        }
        other => Err(other.to_string()),
    }
}

/// `PARTITION BY …` → the partitioning.
fn partition_spec(e: &SqlExpr, fields: &[Field]) -> std::result::Result<Partitioning, String> {
    let column = |c: &str, allowed: &[&str]| -> std::result::Result<Partitioning, String> {
        let f = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(c))
            .ok_or_else(|| format!("no column {c}"))?;
        if !allowed.contains(&f.field_type.as_str()) || f.mode == "REPEATED" {
            return Err(format!(
                "column {c} is {}, expected {}",
                f.field_type,
                allowed.join(" or ")
            ));
        }
        Ok(Partitioning::Column {
            column: f.name.clone(),
        })
    };
    match e {
        SqlExpr::Identifier(i) if i.value.eq_ignore_ascii_case("_PARTITIONDATE") => Ok(Partitioning::Ingestion),
        SqlExpr::Identifier(i) => column(&i.value, &["DATE"]),
        SqlExpr::Function(f) => {
            let name = object_name_text(&f.name).to_ascii_lowercase();
            let args: Vec<String> = match &f.args {
                datafusion::sql::sqlparser::ast::FunctionArguments::List(l) => {
                    l.args.iter().map(|a| a.to_string()).collect()
                }
                _ => vec![],
            };
            match (name.as_str(), args.as_slice()) {
                ("date", [a]) if a.eq_ignore_ascii_case("_PARTITIONTIME") => Ok(Partitioning::Ingestion),
                ("date", [a]) => column(a, &["TIMESTAMP", "DATETIME"]),
                ("timestamp_trunc" | "datetime_trunc" | "date_trunc", [a, unit]) if unit.eq_ignore_ascii_case("DAY") => {
                    if a.eq_ignore_ascii_case("_PARTITIONTIME") {
                        Ok(Partitioning::Ingestion)
                    } else {
                        column(a, &["TIMESTAMP", "DATETIME", "DATE"])
                    }
                }
                _ => Err("only day partitioning: _PARTITIONDATE, DATE(_PARTITIONTIME), a DATE column, DATE(ts) or TIMESTAMP_TRUNC(ts, DAY)".into()),
            }
        }
        _ => Err("only day partitioning: _PARTITIONDATE, DATE(_PARTITIONTIME), a DATE column, DATE(ts) or TIMESTAMP_TRUNC(ts, DAY)".into()),
    }
}

/// The temporary tables of one script (one `execute`): `CREATE TEMP TABLE t`
/// makes a table in a dataset of its own, which the script's later
/// statements name `t` (without a dataset), and which is dropped when the
/// script ends, however it ends.
#[derive(Default)]
struct TempTables {
    /// Where they are: project and dataset, once the first is created.
    dataset: Option<(String, String)>,
    /// Their names (lower case, as BigQuery's table names in a script
    /// compare) and where they are.
    tables: Vec<(String, TableId)>,
}

impl TempTables {
    /// Points the statement's names of temporary tables at them; a
    /// `CREATE TEMP TABLE` makes a name one (as a plain `CREATE TABLE` there).
    fn rewrite(&mut self, stmt: &mut Statement, ctx: &QueryContext) -> Result<()> {
        use datafusion::sql::sqlparser::ast::{
            Ident, ObjectName, ObjectNamePart, visit_relations_mut,
        };
        if let Statement::CreateTable(ct) = stmt
            && ct.temporary
        {
            let span = object_name_span(&ct.name);
            let [ObjectNamePart::Identifier(name)] = ct.name.0.as_slice() else {
                return Err(BqError::Sql {
                    message: format!(
                        "a temporary table's name has no dataset: `{}`",
                        object_name_text(&ct.name)
                    ),
                    position: position(span),
                });
            };
            let key = name.value.to_lowercase();
            if !self.tables.iter().any(|(n, _)| *n == key) {
                let (project, dataset) = self
                    .dataset
                    .get_or_insert_with(|| {
                        let project = if ctx.default_project.is_empty() {
                            "_local".to_string()
                        } else {
                            ctx.default_project.clone()
                        };
                        let unique = storage::unique_name("t").replace(['-', '.'], "_");
                        (project, format!("_script_{unique}"))
                    })
                    .clone();
                let id = TableId::new(&project, &dataset, &name.value)?;
                self.tables.push((key, id));
            }
            ct.temporary = false;
        }
        if self.tables.is_empty() {
            return Ok(());
        }
        let tables = &self.tables;
        let point = |name: &mut ObjectName| {
            if let [ObjectNamePart::Identifier(i)] = name.0.as_slice()
                && let Some((_, id)) = tables.iter().find(|(n, _)| *n == i.value.to_lowercase())
            {
                let span = i.span;
                name.0 = [&id.project, &id.dataset, &id.table]
                    .into_iter()
                    .map(|p| ObjectNamePart::Identifier(Ident::with_span(span, p.as_str())))
                    .collect();
            }
        };
        if let Statement::CreateTable(ct) = stmt {
            point(&mut ct.name);
        }
        if let Statement::Drop { names, .. } = stmt {
            names.iter_mut().for_each(point);
        }
        let _ = visit_relations_mut(stmt, |name| {
            point(name);
            std::ops::ControlFlow::<()>::Continue(())
        });
        Ok(())
    }

    /// Drops every temporary table and their dataset.
    fn drop_all(&self, storage: &Storage) -> Result<()> {
        let mut first_error = None;
        for (_, id) in &self.tables {
            if let Err(e) = storage.commit(id, vec![], |_| Ok((None, ()))) {
                first_error.get_or_insert(e);
            }
        }
        if let Some((project, dataset)) = &self.dataset
            && let Err(e) = storage.delete_dataset(project, dataset)
        {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Backend for LocalWarehouse {
    fn name(&self) -> &str {
        "local"
    }

    fn execute(&self, sql: &str, ctx: &QueryContext) -> Result<QueryResult> {
        limits::on_large_stack(|| {
            let stmts = dialect::parse(sql)?;
            let mut temps = TempTables::default();
            let run = (|| {
                let mut last = empty_result();
                for mut stmt in stmts {
                    temps.rewrite(&mut stmt, ctx)?;
                    last = self.run_statement(stmt, ctx)?;
                }
                Ok(last)
            })();
            // The script's temporary tables go with it, also after an error.
            let dropped = temps.drop_all(&self.storage);
            let last = run?;
            dropped?;
            Ok(last)
        })
        .map_err(|e| dialect::within(e, sql))
    }

    fn write_query(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        mode: WriteMode,
        sql: &str,
        ctx: &QueryContext,
    ) -> Result<u64> {
        let what = match mode {
            WriteMode::Truncate => "write_truncate",
            WriteMode::Append => "write_append",
            WriteMode::CreateOrReplace => "write_tmp",
        };
        limits::on_large_stack(|| {
            let q = Self::single_query(sql, what)?;
            let labels = ctx.table_labels.clone();
            self.block_on(async {
                let (df, _) = self.plan_query(q, ctx).await?;
                let create = (mode == WriteMode::CreateOrReplace).then_some((None, labels));
                self.write_frame(table, partition, mode, df, create, None)
                    .await
            })
        })
    }

    fn dry_run(&self, sql: &str, ctx: &QueryContext) -> Result<DryRun> {
        limits::on_large_stack(|| {
            let q = Self::single_query(sql, "dry_run")?;
            self.block_on(async {
                let (df, tables) = self.plan_query(q, ctx).await?;
                let mut bytes = 0;
                for t in tables {
                    if let Some(m) = self.storage.read_manifest(&t.id)? {
                        bytes += m.files.iter().map(|f| f.bytes).sum::<u64>();
                    }
                }
                Ok(DryRun {
                    schema: Arc::new(df.schema().as_arrow().clone()),
                    bytes_processed: bytes,
                })
            })
        })
    }

    fn table_exists(&self, table: &TableId) -> Result<bool> {
        Ok(
            self.storage.read_manifest(table)?.is_some()
                || self.storage.read_view(table)?.is_some(),
        )
    }

    fn table_info(&self, table: &TableId) -> Result<TableInfo> {
        let m = self.manifest(table, None)?;
        Ok(TableInfo {
            num_rows: m.num_rows(),
            schema: m.schema,
            partitioning: m.partitioning,
            labels: m.labels,
        })
    }

    fn create_table(
        &self,
        table: &TableId,
        schema: &[Field],
        partitioning: Option<Partitioning>,
        labels: &IndexMap<String, String>,
        if_not_exists: bool,
    ) -> Result<()> {
        to_arrow_schema(schema)?;
        if let Some(Partitioning::Column { column }) = &partitioning {
            let ok = schema.iter().any(|f| {
                &f.name == column
                    && matches!(f.field_type.as_str(), "DATE" | "TIMESTAMP" | "DATETIME")
                    && f.mode != "REPEATED"
            });
            if !ok {
                return Err(BqError::Config(format!(
                    "`{table}`: the partitioning column {column} must be a DATE, TIMESTAMP or DATETIME column of the schema"
                )));
            }
        }
        let manifest = Manifest::new(schema.to_vec(), partitioning, labels.clone());
        self.storage.commit(table, vec![], |current| match current {
            Some(old) if if_not_exists => Ok((Some(old), ())),
            Some(_) => Err(BqError::TableExists {
                table: table.to_string(),
            }),
            None => Ok((Some(manifest), ())),
        })
    }

    fn insert_rows(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        rows: &[serde_json::Value],
    ) -> Result<u64> {
        let m = self.manifest(table, None)?;
        let schema = Arc::new(to_arrow_schema(&m.schema)?);
        let input = |cause: String| BqError::Input {
            table: table.to_string(),
            cause,
        };
        for (i, r) in rows.iter().enumerate() {
            if !r.is_object() {
                return Err(input(format!("row {} is not a JSON object: {r}", i + 1)));
            }
        }
        // RANGE values as text or {start, end}, as BigQuery takes them.
        let converted;
        let rows = if m.schema.iter().any(|f| f.range_element_type.is_some()) {
            converted = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    crate::range::row_to_stored(&m.schema, r)
                        .map_err(|why| input(format!("row {}: {why}", i + 1)))
                })
                .collect::<Result<Vec<_>>>()?;
            converted.as_slice()
        } else {
            rows
        };
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .with_strict_mode(true)
            .build_decoder()
            .map_err(|e| input(e.to_string()))?;
        decoder.serialize(rows).map_err(|e| input(e.to_string()))?;
        let batch = decoder
            .flush()
            .map_err(|e| input(e.to_string()))?
            .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
        self.write_batches(table, partition, vec![batch], WriteMode::Append)
    }

    fn load_file(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        path: &Path,
        format: FileFormat,
        mode: WriteMode,
    ) -> Result<u64> {
        if !path.is_file() {
            return Err(BqError::Input {
                table: table.to_string(),
                cause: format!("{} is not a file", path.display()),
            });
        }
        let existing = self.storage.read_manifest(table)?;
        let schema = match &existing {
            Some(m) => Some(to_arrow_schema(&m.schema)?),
            None if mode == WriteMode::CreateOrReplace => None,
            None => return Err(unknown_table(table, None)),
        };
        let p = path.to_string_lossy().to_string();
        self.block_on(async {
            let session = self.session();
            let df = match format {
                FileFormat::Parquet => session.read_parquet(p, ParquetReadOptions::default()).await,
                FileFormat::Csv => {
                    let mut o = CsvReadOptions::new().has_header(true).file_extension("");
                    if let Some(s) = &schema {
                        o = o.schema(s);
                    }
                    session.read_csv(p, o).await
                }
                FileFormat::NdJson => {
                    let mut o = JsonReadOptions::default().file_extension("");
                    if let Some(s) = &schema {
                        o = o.schema(s);
                    }
                    session.read_json(p, o).await
                }
            }
            .map_err(|e| BqError::Input {
                table: table.to_string(),
                cause: format!("{}: {}", path.display(), e.strip_backtrace()),
            })?;
            self.write_frame(table, partition, mode, df, None, None)
                .await
                .map_err(|e| e.loading(table, path))
        })
    }

    fn write_batches(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        batches: Vec<RecordBatch>,
        mode: WriteMode,
    ) -> Result<u64> {
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Ok(0),
        };
        self.block_on(async {
            let session = self.session();
            let provider = datafusion::datasource::MemTable::try_new(schema, vec![batches])
                .map_err(df_error)?;
            let df = session.read_table(Arc::new(provider)).map_err(df_error)?;
            self.write_frame(table, partition, mode, df, None, None)
                .await
        })
    }

    fn delete_dataset(&self, project: &str, dataset: &str) -> Result<()> {
        self.storage.delete_dataset(project, dataset)
    }

    fn ensure_dataset(
        &self,
        project: &str,
        dataset: &str,
        labels: &IndexMap<String, String>,
    ) -> Result<()> {
        let dir = self.storage.dataset_dir(project, dataset);
        std::fs::create_dir_all(&dir).map_err(|e| BqError::io(&dir, e))?;
        let path = dir.join("_dataset.json");
        if labels.is_empty() && path.exists() {
            return Ok(());
        }
        storage::write_json(&path, &serde_json::json!({ "labels": labels }))
    }
}

/// A warehouse in a temporary directory, and a context whose default
/// dataset is `p.d` (unit tests of this module and its submodules).
#[cfg(test)]
fn test_warehouse() -> (tempfile::TempDir, LocalWarehouse, QueryContext) {
    let dir = tempfile::tempdir().unwrap();
    let w = LocalWarehouse::open(dir.path()).unwrap();
    let ctx = QueryContext {
        default_project: "p".into(),
        default_dataset: "d".into(),
        ..QueryContext::default()
    };
    (dir, w, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_when_called_from_async_code() {
        let dir = tempfile::tempdir().unwrap();
        let w = LocalWarehouse::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(async { w.execute("SELECT 1 AS one", &QueryContext::default()) });
        assert_eq!(r.unwrap().num_rows(), 1);
    }

    #[test]
    fn temp_tables_live_for_their_script() {
        let (dir, w, ctx) = test_warehouse();
        w.execute(
            "CREATE TABLE t (x INT64); INSERT INTO t VALUES (1), (2), (3)",
            &ctx,
        )
        .unwrap();
        let r = w
            .execute(
                "CREATE TEMP TABLE big AS SELECT x FROM t WHERE x > 1;
                 INSERT INTO Big VALUES (10);
                 CREATE TEMPORARY TABLE other (y INT64);
                 INSERT INTO other SELECT x * 2 FROM big;
                 SELECT SUM(y) AS s FROM other",
                &ctx,
            )
            .unwrap();
        let s = r.batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(s, 30);
        // Gone after the script, with their dataset, even when it fails.
        let e = w
            .execute("SELECT * FROM big", &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("big"), "{e}");
        let e = w
            .execute(
                "CREATE TEMP TABLE big AS SELECT 1 AS x; SELECT * FROM nowhere",
                &ctx,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("nowhere"), "{e}");
        assert_eq!(w.list_tables("p", "d"), ["t"]);
        let datasets: Vec<_> = std::fs::read_dir(dir.path().join("p"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(datasets, ["d"]);
        // A temporary table has no dataset.
        let e = w
            .execute("CREATE TEMP TABLE d.x AS SELECT 1 AS a", &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no dataset"), "{e}");
    }

    #[test]
    fn views_that_refer_to_each_other_fail_instead_of_recursing() {
        let (_dir, w, ctx) = test_warehouse();
        w.execute(
            "CREATE VIEW v1 AS SELECT 1 AS a; CREATE VIEW v2 AS SELECT * FROM v1;
             CREATE OR REPLACE VIEW v1 AS SELECT * FROM v2",
            &ctx,
        )
        .unwrap();
        let e = w.execute("SELECT * FROM v1", &ctx).unwrap_err().to_string();
        assert!(e.contains("refers to views 16 deep"), "{e}");
        assert_eq!(w.list_tables("p", "d"), ["v1", "v2"]);
    }

    #[test]
    fn string_columns_come_back_as_plain_strings() {
        // Tables are read with string views; results, dry runs and written
        // tables must still have plain `Utf8` (see `with_string_views`).
        let (_dir, w, ctx) = test_warehouse();
        w.execute("CREATE TABLE t (name STRING, day STRING)", &ctx)
            .unwrap();
        w.execute(
            "INSERT INTO t VALUES ('a', '2020-02-28'), ('bb', '2020-02-29')",
            &ctx,
        )
        .unwrap();
        let queries = [
            "SELECT x.name, y.name AS other, UPPER(x.name) AS up, PARSE_DATE('%Y-%m-%d', x.day) AS d, \
             STRUCT(x.name AS n) AS s FROM t AS x JOIN t AS y ON x.name = y.name ORDER BY x.name",
            "SELECT ARRAY_AGG(name ORDER BY name) AS names, MAX(name) AS name FROM t",
        ];
        for sql in queries {
            let r = w.execute(sql, &ctx).unwrap();
            for f in r.schema.fields() {
                assert_eq!(viewless(f.data_type()), *f.data_type(), "{sql}: {f}");
            }
            for b in &r.batches {
                assert_eq!(b.schema(), r.schema);
            }
            let dry = w.dry_run(sql, &ctx).unwrap();
            assert_eq!(dry.schema.as_ref(), r.schema.as_ref());
        }
        let r = w.execute(queries[0], &ctx).unwrap();
        let names = r.batches[0].column(0).as_string::<i32>();
        assert_eq!(names.iter().collect::<Vec<_>>(), [Some("a"), Some("bb")]);
        w.execute("CREATE TABLE u AS SELECT name, day FROM t", &ctx)
            .unwrap();
        let id = TableId::new("p", "d", "u").unwrap();
        let types: Vec<String> = w
            .table_info(&id)
            .unwrap()
            .schema
            .into_iter()
            .map(|f| f.field_type)
            .collect();
        assert_eq!(types, ["STRING", "STRING"]);
    }

    /// Each row of a one-column result, as text (`NULL` for NULL).
    fn column_text(w: &LocalWarehouse, ctx: &QueryContext, sql: &str) -> Vec<String> {
        let r = w.execute(sql, ctx).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut out = Vec::new();
        for b in &r.batches {
            for i in 0..b.num_rows() {
                let c = b.column(0);
                out.push(if c.is_null(i) {
                    "NULL".to_string()
                } else {
                    arrow::util::display::array_value_to_string(c, i).unwrap()
                });
            }
        }
        out
    }

    #[test]
    fn json_functions_tell_json_from_strings() {
        let (_dir, w, ctx) = test_warehouse();
        let one = |sql: &str| column_text(&w, &ctx, sql).join("|");
        // JSON null: JSON 'null' from JSON, SQL NULL from a STRING.
        assert_eq!(
            one("SELECT JSON_QUERY(JSON '{\"a\": null}', '$.a')"),
            "null"
        );
        assert_eq!(one("SELECT JSON_QUERY('{\"a\": null}', '$.a')"), "NULL");
        assert_eq!(
            one("SELECT JSON_EXTRACT('{\"a\": \"x\", \"a\": 2}', '$')"),
            "{\"a\":\"x\",\"a\":2}"
        );
        assert_eq!(
            one("SELECT JSON_QUERY(JSON '{\"a\": \"x\", \"a\": 2}', '$')"),
            "{\"a\":\"x\"}"
        );
        assert_eq!(
            one("SELECT JSON_VALUE(JSON '{\"a\": [1, {\"b.c\": 7}]}', '$.a[1].\"b.c\"')"),
            "7"
        );
        assert_eq!(
            one("SELECT JSON_EXTRACT_SCALAR('{\"a\": [1, {\"b.c\": 7}]}', \"$.a[1]['b.c']\")"),
            "7"
        );
        assert_eq!(one("SELECT INT64(JSON '10.0') + 1"), "11");
        assert!(w.execute("SELECT INT64(JSON '\"4\"')", &ctx).is_err());
        assert_eq!(one("SELECT SAFE.INT64(JSON '\"4\"')"), "NULL");
        assert_eq!(
            one("SELECT JSON_OBJECT('b', 1, 'a', [STRUCT('x' AS s)], 'c', JSON_ARRAY('x', NULL))"),
            "{\"b\":1,\"a\":[{\"s\":\"x\"}],\"c\":[\"x\",null]}"
        );
        assert_eq!(
            one("SELECT JSON_SET(JSON '{\"a\": 1}', '$.b[1]', 'x')"),
            "{\"a\":1,\"b\":[null,\"x\"]}"
        );
        // A far index fails instead of padding the memory full, whether the
        // array exists or JSON_SET creates it.
        for q in [
            "SELECT JSON_SET(JSON '{}', '$.a[999999999]', 1)",
            "SELECT JSON_SET(JSON '{\"a\": []}', '$.a[999999999]', 1)",
            "SELECT JSON_ARRAY_INSERT(JSON '[]', '$[999999999]', 1)",
        ] {
            let e = w.execute(q, &ctx).unwrap_err().to_string();
            assert!(
                e.contains("the array index 999999999 is too large"),
                "{q}: {e}"
            );
        }
        // Field access of JSON: a literal, a column, a subscript.
        assert_eq!(one("SELECT (JSON '{\"a\": {\"b\": [5, 6]}}').a.b[1]"), "6");
        assert_eq!(
            one("SELECT j.a, j['a'], j.nope FROM (SELECT JSON '{\"a\": 1}' AS j)"),
            "1"
        );
        // A table's column is JSON or STRING by its type.
        w.execute("CREATE TABLE t (j JSON, s STRING)", &ctx)
            .unwrap();
        w.execute(
            "INSERT INTO t VALUES ('{\"a\": null, \"b\": 2}', 'x')",
            &ctx,
        )
        .unwrap();
        assert_eq!(one("SELECT JSON_QUERY(j, '$.b') FROM t"), "2");
        assert_eq!(one("SELECT JSON_QUERY(j, '$.a') FROM t"), "null");
        assert_eq!(one("SELECT JSON_QUERY(t.j, '$.a') FROM t"), "null");
        assert_eq!(
            one("SELECT JSON_OBJECT('k', s, 'j', j) FROM t"),
            "{\"k\":\"x\",\"j\":{\"a\":null,\"b\":2}}"
        );
        // A name the query defines may be either: where the two would
        // answer differently, refused.
        for sql in [
            "SELECT JSON_QUERY(j, '$.a') FROM (SELECT s AS j FROM t)",
            "SELECT JSON_OBJECT('k', x) FROM (SELECT s AS x FROM t)",
        ] {
            let e = w.execute(sql, &ctx).unwrap_err();
            assert!(matches!(e, BqError::Unsupported { .. }), "{sql}: {e}");
        }
        assert_eq!(
            one("SELECT JSON_QUERY(PARSE_JSON(j), '$.a') FROM t"),
            "null"
        );
    }

    #[test]
    fn array_subqueries_and_aggregates() {
        let (_dir, w, ctx) = test_warehouse();
        let one = |sql: &str| column_text(&w, &ctx, sql).join("|");
        assert_eq!(
            one("SELECT ARRAY(SELECT x FROM UNNEST([3, 1, 2]) AS x ORDER BY x DESC)"),
            "[3, 2, 1]"
        );
        assert_eq!(
            one("SELECT ARRAY(SELECT x FROM UNNEST([3, 1, 2]) AS x ORDER BY -x LIMIT 2)"),
            "[3, 2]"
        );
        assert_eq!(
            one("SELECT ARRAY(SELECT 1 FROM UNNEST([1]) AS x WHERE x > 1)"),
            "[]"
        );
        assert_eq!(
            one("SELECT ARRAY(SELECT AS STRUCT x, 'a' AS y FROM UNNEST([1]) AS x)"),
            "[{x: 1, y: a}]"
        );
        assert_eq!(
            one("SELECT ARRAY_AGG(x ORDER BY x LIMIT 2) FROM UNNEST([5, 4, 3]) AS x"),
            "[3, 4]"
        );
        assert_eq!(
            one(
                "SELECT ARRAY_CONCAT_AGG(a ORDER BY a[OFFSET(0)]) FROM UNNEST([STRUCT([3, 4] AS a), STRUCT(NULL), STRUCT([1])])"
            ),
            "[1, 3, 4]"
        );
        assert_eq!(
            one("SELECT ARRAY_CONCAT_AGG(a) FROM (SELECT CAST(NULL AS ARRAY<INT64>) AS a)"),
            "NULL"
        );
        assert_eq!(
            one("SELECT ARRAY_IS_DISTINCT([1.0, -0.0, 0.0]), ARRAY_IS_DISTINCT([NULL, 1])"),
            "false"
        );
        assert!(
            w.execute("SELECT ARRAY_CONCAT_AGG(x) FROM (SELECT [[1]] AS x)", &ctx)
                .is_err()
        );
    }

    #[test]
    fn small_functions() {
        let (_dir, w, ctx) = test_warehouse();
        let one = |sql: &str| column_text(&w, &ctx, sql).join("|");
        assert_eq!(one("SELECT IS_INF(CAST('-inf' AS FLOAT64))"), "true");
        assert_eq!(one("SELECT IS_INF(1)"), "false");
        assert_eq!(one("SELECT UNIX_DATE(DATE '1969-01-01')"), "-365");
        assert_eq!(one("SELECT DATE_FROM_UNIX_DATE(16071)"), "2014-01-01");
        assert_eq!(one("SELECT CURRENT_DATE(CAST(NULL AS STRING))"), "NULL");
        assert_eq!(
            one(
                "SELECT ABS(DATE_DIFF(CURRENT_DATE('+14'), CURRENT_DATE('UTC-1200'), DAY)) IN (1, 2)"
            ),
            "true"
        );
        assert_eq!(
            one("SELECT DATETIME_BUCKET(DATETIME '2020-02-15 14:57:39', INTERVAL 7 DAY)"),
            "2020-02-09T00:00:00"
        );
        assert_eq!(
            one("SELECT DATE_BUCKET(DATE '2020-02-15', INTERVAL 7 DAY, DATE '2150-12-11')"),
            "2020-02-14"
        );
        assert!(matches!(
            w.execute(
                "SELECT DATE_BUCKET(DATE '2020-02-15', INTERVAL 1 MONTH)",
                &ctx
            ),
            Err(BqError::Unsupported { .. })
        ));
        assert_eq!(one("SELECT TIME(15, 4, 5)"), "15:04:05");
        assert_eq!(
            one("SELECT TIME(TIMESTAMP '2020-01-01 10:00:00+00', 'Asia/Kolkata')"),
            "15:30:00"
        );
        assert_eq!(
            one("SELECT SPLIT_SUBSTR('www.abc.com', '.', -2)"),
            "abc.com"
        );
    }

    #[test]
    fn qualify_without_its_own_analytic_function() {
        // Valid GoogleSQL: the SELECT list has the analytic function.
        let (_dir, w, ctx) = test_warehouse();
        let r = w
            .execute(
                "SELECT x, COUNT(x) OVER (ORDER BY x ROWS UNBOUNDED PRECEDING) AS n \
                 FROM UNNEST([1, 2, 3]) AS x QUALIFY x > 1 ORDER BY x",
                &ctx,
            )
            .unwrap();
        let rows = crate::format::to_json_rows(&r.batches).unwrap();
        assert_eq!(
            serde_json::Value::from(
                rows.into_iter()
                    .map(serde_json::Value::Object)
                    .collect::<Vec<_>>()
            ),
            serde_json::json!([{"x": 2, "n": 2}, {"x": 3, "n": 3}])
        );
        // Without any, it is an error, as in BigQuery.
        assert!(
            w.execute("SELECT x FROM UNNEST([1, 2]) AS x QUALIFY x > 1", &ctx)
                .is_err()
        );
    }

    #[test]
    fn array_concat_its_aggregate_and_decimal_array_literals() {
        let (_dir, w, ctx) = test_warehouse();
        let json = |sql: &str| {
            let r = w
                .execute(sql, &ctx)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            serde_json::Value::from(
                crate::format::to_json_rows(&r.batches)
                    .unwrap()
                    .into_iter()
                    .map(serde_json::Value::Object)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            json(
                "SELECT ARRAY_CONCAT([1], CAST(NULL AS ARRAY<INT64>)) AS a, ARRAY_CONCAT([1], [2]) AS b"
            ),
            serde_json::json!([{"a": null, "b": [1, 2]}])
        );
        assert_eq!(
            json(
                "SELECT ARRAY_CONCAT_AGG(x ORDER BY n) AS a FROM UNNEST([STRUCT(2 AS n, [3, 4] AS x), \
                 (1, [1, 2]), (3, CAST(NULL AS ARRAY<INT64>)), (4, [])])"
            ),
            serde_json::json!([{"a": [1, 2, 3, 4]}])
        );
        assert_eq!(
            json("SELECT ARRAY_CONCAT_AGG(x) AS a FROM UNNEST([CAST(NULL AS ARRAY<INT64>)]) AS x"),
            serde_json::json!([{"a": null}])
        );
        assert!(
            w.execute("SELECT ARRAY_CONCAT_AGG(x) FROM (SELECT [[1]] AS x)", &ctx)
                .is_err()
        );
        // LIMIT: the first n elements (arrays) in the aggregate's order.
        assert_eq!(
            json(
                "SELECT ARRAY_AGG(x ORDER BY x DESC LIMIT 2) AS a, \
                 ARRAY_CONCAT_AGG([x, x] ORDER BY x LIMIT 2) AS c FROM UNNEST([3, 1, 2]) AS x"
            ),
            serde_json::json!([{"a": [3, 2], "c": [1, 1, 2, 2]}])
        );
        assert!(
            w.execute("SELECT ARRAY_AGG(x LIMIT -1) FROM UNNEST([1]) AS x", &ctx)
                .is_err()
        );
        let r = w
            .execute(
                "SELECT CAST(x AS STRING) AS s FROM UNNEST(ARRAY<BIGNUMERIC>[1.00000000000000000000000000000000000001, -2.7]) AS x",
                &ctx,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let text = crate::format::to_json_rows(&r.batches).unwrap();
        assert!(
            text[0]["s"]
                .to_string()
                .contains("1.00000000000000000000000000000000000001"),
            "{text:?}"
        );
    }

    #[test]
    fn decimal_intermediate_overflow_is_unsupported_not_an_answer() {
        // BigQuery answers this; Arrow's quotient overflows while widening.
        let (_dir, w, ctx) = test_warehouse();
        let e = w
            .execute(
                "SELECT CAST('99999999999999999999999999999.999999999' AS NUMERIC) / 2",
                &ctx,
            )
            .unwrap_err();
        assert!(matches!(e, BqError::Unsupported { .. }), "{e:?}");
    }

    #[test]
    fn numeric_with_float64_literals_stays_numeric() {
        let (_dir, w, ctx) = test_warehouse();
        let types = |sql: &str| {
            let r = w
                .execute(sql, &ctx)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            r.batches[0]
                .schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect::<Vec<_>>()
        };
        let max = "CAST('99999999999999999999999999999.999999999' AS NUMERIC)";
        // A FLOAT64 literal coerces to NUMERIC (DataFusion made DECIMAL(38, 15)
        // of both, where NUMERIC's largest values overflow).
        let sql = format!("SELECT x FROM (SELECT {max} x UNION ALL SELECT 3.5 UNION ALL SELECT 0)");
        assert_eq!(types(&sql), [DataType::Decimal128(38, 9)]);
        let mut values = column_text(&w, &ctx, &sql);
        values.sort();
        assert_eq!(
            values,
            [
                "0.000000000",
                "3.500000000",
                "99999999999999999999999999999.999999999"
            ]
        );
        let sql = format!("SELECT x FROM UNNEST([{max}, 1.25]) x");
        assert_eq!(types(&sql), [DataType::Decimal128(38, 9)]);
        // With a FLOAT64 value that is not a literal, the common type is FLOAT64.
        let sql = format!("SELECT {max} x UNION ALL SELECT f FROM (SELECT CAST(2.5 AS FLOAT64) f)");
        assert_eq!(types(&sql), [DataType::Float64]);
        let sql = format!("SELECT [{max}, f] FROM (SELECT CAST(2.5 AS FLOAT64) f)");
        assert_eq!(types(&sql), [DataType::new_list(DataType::Float64, true)]);
    }

    #[test]
    fn float64_order_puts_nan_first_in_sorts_and_windows() {
        let (_dir, w, ctx) = test_warehouse();
        let values = "UNNEST([CAST('nan' AS FLOAT64), 1.0, CAST('-inf' AS FLOAT64), NULL, \
                      CAST('inf' AS FLOAT64), -0.0, 0.0, -CAST('nan' AS FLOAT64)])";
        let one = |sql: &str| column_text(&w, &ctx, sql).join(" ");
        assert_eq!(
            one(&format!(
                "SELECT x FROM {values} x WHERE x IS NULL OR x != 0 ORDER BY x"
            )),
            "NULL NaN NaN -inf 1.0 inf"
        );
        assert_eq!(
            one(&format!(
                "SELECT x FROM {values} x WHERE x IS NULL OR x != 0 ORDER BY x DESC"
            )),
            "inf 1.0 -inf NaN NaN NULL"
        );
        assert_eq!(
            one(&format!(
                "SELECT ARRAY_TO_STRING(ARRAY_AGG(CAST(x AS STRING) ORDER BY x), ',') \
                 FROM {values} x WHERE x != 0"
            )),
            "nan,nan,-inf,1,inf"
        );
        // NaN values are peers, -0 and 0 too.
        assert_eq!(
            one(&format!(
                "SELECT RANK() OVER (ORDER BY x) FROM {values} x ORDER BY x, 1"
            )),
            "1 2 2 4 5 5 7 8"
        );
        // A RANGE frame with an offset: NaN ± 1 is NaN (its peers only).
        assert_eq!(
            one(&format!(
                "SELECT COUNT(*) OVER (ORDER BY x RANGE BETWEEN UNBOUNDED PRECEDING AND 1 FOLLOWING) \
                 FROM {values} x ORDER BY x, 1"
            )),
            "1 3 3 4 7 7 7 8"
        );
    }

    #[test]
    fn int64_range_frames_beyond_int64_bound_the_frame() {
        let (_dir, w, ctx) = test_warehouse();
        let one = |sql: &str| column_text(&w, &ctx, sql).join(" ");
        // `key ± 2` leaves INT64's range: the frame is bounded by the
        // values there are, not wrapped around.
        assert_eq!(
            one(
                "SELECT COUNT(*) OVER (ORDER BY x RANGE BETWEEN 2 PRECEDING AND 2 FOLLOWING) \
                 FROM UNNEST([9223372036854775807, 9223372036854775806, -9223372036854775807, \
                 -9223372036854775808, 1, NULL]) x ORDER BY x"
            ),
            "1 2 2 1 2 2"
        );
        // Other frames of the same window share its sort.
        assert_eq!(
            one(
                "SELECT COUNT(*) OVER (ORDER BY x RANGE BETWEEN 9223372036854775807 PRECEDING AND CURRENT ROW) \
                 + 10 * COUNT(*) OVER (ORDER BY x) FROM UNNEST([9223372036854775807, -9223372036854775808]) x \
                 ORDER BY x"
            ),
            "11 21"
        );
        // The key of a RANGE frame with an offset must be numeric.
        let e = w
            .execute(
                "SELECT COUNT(*) OVER (ORDER BY b RANGE BETWEEN 0 PRECEDING AND CURRENT ROW) \
                 FROM UNNEST([true]) b",
                &ctx,
            )
            .unwrap_err();
        assert!(
            matches!(&e, BqError::Sql { message, .. } if message.contains("must be numeric")),
            "{e:?}"
        );
    }

    #[test]
    fn sums_beyond_their_type_are_errors() {
        let (_dir, w, ctx) = test_warehouse();
        let max = "CAST('99999999999999999999999999999.999999999' AS NUMERIC)";
        for sql in [
            format!("SELECT SUM(v) FROM UNNEST([{max}, 10]) v"),
            format!("SELECT SUM(v) OVER () FROM UNNEST([{max}, 10]) v"),
            format!(
                "SELECT SUM(v) OVER (ORDER BY v ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM UNNEST([{max}, 10]) v"
            ),
            format!("SELECT k, SUM(v) FROM UNNEST([{max}, 10]) v, UNNEST([1]) k GROUP BY k"),
            "SELECT SUM(DISTINCT v) OVER () FROM UNNEST([1.79769e+308, 1.79769e+307]) v".into(),
        ] {
            let e = w.execute(&sql, &ctx).unwrap_err();
            assert!(e.to_string().contains("overflow"), "{sql}: {e}");
        }
        // Without overflow: the sums, NaN for DISTINCT's NaNs.
        assert_eq!(
            column_text(
                &w,
                &ctx,
                &format!("SELECT SUM(v) FROM UNNEST([{max}, -10]) v")
            ),
            ["99999999999999999999999999989.999999999"]
        );
        assert_eq!(
            column_text(
                &w,
                &ctx,
                "SELECT SUM(DISTINCT v) OVER () FROM UNNEST([1.5, 1.5, CAST('nan' AS FLOAT64)]) v LIMIT 1"
            ),
            ["NaN"]
        );
        // A sliding FLOAT64 sum gives back what a large value absorbed.
        assert_eq!(
            column_text(
                &w,
                &ctx,
                "SELECT SUM(v) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
                 FROM UNNEST([1.79769e+308, 1, 2]) v WITH OFFSET i ORDER BY i"
            ),
            ["1.79769e308", "1.79769e308", "3.0"]
        );
        // An integer literal beyond INT64 is the query's error.
        let e = w.execute("SELECT 18446744073709551615", &ctx).unwrap_err();
        assert!(
            matches!(&e, BqError::Sql { message, .. } if message.contains("Invalid integer literal")),
            "{e:?}"
        );
        assert_eq!(
            column_text(&w, &ctx, "SELECT -9223372036854775808"),
            ["-9223372036854775808"]
        );
    }

    #[test]
    fn windows_that_name_a_window() {
        let (_dir, w, ctx) = test_warehouse();
        let rows = |sql: &str| {
            let r = w
                .execute(sql, &ctx)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let mut out = Vec::new();
            for b in &r.batches {
                for i in 0..b.num_rows() {
                    let row: Vec<String> = b
                        .columns()
                        .iter()
                        .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap())
                        .collect();
                    out.push(row.join(","));
                }
            }
            out.sort();
            out.join(" ")
        };
        let data = "FROM UNNEST([1, 2, 3, 4]) x";
        // `OVER (w …)` keeps w's PARTITION BY and ORDER BY, with its own frame.
        assert_eq!(
            rows(&format!(
                "SELECT x, FIRST_VALUE(x) OVER (w ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) {data} \
                 WINDOW w AS (PARTITION BY MOD(x, 2) ORDER BY x DESC)"
            )),
            "1,3 2,4 3,3 4,4"
        );
        // A named window naming another.
        assert_eq!(
            rows(&format!(
                "SELECT x, SUM(x) OVER w2 {data} \
                 WINDOW w1 AS (PARTITION BY MOD(x, 2)), w2 AS (w1 ORDER BY x)"
            )),
            "1,1 2,2 3,4 4,6"
        );
    }

    #[test]
    fn min_and_max_of_float64_with_nan_are_nan() {
        let (_dir, w, ctx) = test_warehouse();
        let one = |sql: &str| column_text(&w, &ctx, sql).join(" ");
        let values =
            "UNNEST([1.0, CAST('nan' AS FLOAT64), CAST('-inf' AS FLOAT64), 3.0]) x WITH OFFSET k";
        assert_eq!(one(&format!("SELECT MIN(x) FROM {values}")), "NaN");
        assert_eq!(one(&format!("SELECT MAX(x) FROM {values}")), "NaN");
        assert_eq!(
            one(&format!(
                "SELECT MAX(x) FROM {values} GROUP BY MOD(k, 2) ORDER BY MOD(k, 2)"
            )),
            "1.0 NaN"
        );
        assert_eq!(
            one(&format!(
                "SELECT MIN(x) OVER (ORDER BY k ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
                 FROM {values} ORDER BY k"
            )),
            "1.0 NaN NaN -inf"
        );
        assert_eq!(
            one(&format!("SELECT MIN(x) FROM {values} WHERE NOT IS_NAN(x)")),
            "-inf"
        );
    }

    #[test]
    fn compatible_types() {
        use arrow::datatypes::TimeUnit;
        assert!(compatible(&DataType::Int32, &DataType::Float64));
        assert!(compatible(&DataType::Utf8View, &DataType::Utf8));
        assert!(compatible(
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
            &crate::schema::timestamp_type()
        ));
        assert!(!compatible(&DataType::Utf8, &DataType::Int64));
        assert!(!compatible(&DataType::Float64, &DataType::Int64));
        assert!(!compatible(&DataType::Date32, &DataType::Utf8));
    }
}

/// Casts as BigQuery converts (see [`casts`]), through whole queries.
#[cfg(test)]
mod cast_tests {
    use super::*;

    /// The first row's values as text, or the error.
    fn row(
        w: &LocalWarehouse,
        ctx: &QueryContext,
        sql: &str,
    ) -> std::result::Result<Vec<String>, String> {
        let r = w.execute(sql, ctx).map_err(|e| e.to_string())?;
        let b = &r.batches[0];
        Ok(b.columns()
            .iter()
            .map(|c| arrow::util::display::array_value_to_string(c, 0).unwrap())
            .collect())
    }

    #[test]
    fn casts_convert_as_bigquery_does() {
        let (_dir, w, ctx) = test_warehouse();
        let ok = |sql: &str| row(&w, &ctx, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let err = |sql: &str| row(&w, &ctx, sql).expect_err(sql);
        assert_eq!(
            ok("SELECT CAST('-0x100' AS INT64), CAST(' 12 ' AS INT64), SAFE_CAST('0x' AS INT64)"),
            ["-256", "12", ""]
        );
        assert!(err("SELECT CAST('0xFFFFFFFFFFFFFFFF' AS INT64)").contains("Bad int64 value"));
        // A huge value is quoted in part, not whole.
        let huge = err("SELECT CAST(REPEAT('9', 100000) AS INT64)");
        assert!(
            huge.len() < 3000 && huge.contains("more characters)"),
            "{}",
            &huge[..200]
        );
        assert_eq!(
            ok(
                "SELECT CAST('01:02:3' AS TIME), CAST('12:59:60.5' AS TIME), \
                CAST('2006-1-2 1:02:03' AS DATETIME), DATETIME '2015-11-06 23:59:60'"
            ),
            [
                "01:02:03",
                "13:00:00",
                "2006-01-02T01:02:03",
                "2015-11-07T00:00:00"
            ]
        );
        assert!(
            err("SELECT CAST('2006-01-02 01:02:03 UTC' AS DATETIME)")
                .contains("Invalid datetime string")
        );
        // A bad literal in a branch no row reaches is no error.
        assert_eq!(
            w.execute(
                "SELECT k, CAST(s AS TIME) FROM (SELECT 0 AS k, 'a' AS s) WHERE k > 0",
                &ctx
            )
            .unwrap()
            .num_rows(),
            0
        );
        assert_eq!(
            ok("SELECT DATE('2020-09-01 23:34:56-08'), SAFE_CAST('24:00:00' AS TIME)"),
            ["2020-09-02", ""]
        );
        assert_eq!(
            ok(
                "SELECT CAST(CAST(0 AS NUMERIC) AS STRING), CAST(CAST('-1.50' AS BIGNUMERIC) AS STRING), \
                CAST(BIGNUMERIC '1e2' AS STRING), CAST('-1.5E-3' AS NUMERIC)"
            ),
            ["0", "-1.5", "100", "-0.001500000"]
        );
        assert_eq!(
            ok(
                "SELECT CAST((99999999999999999999999999.999999999, 1.5) AS STRUCT<NUMERIC, BIGNUMERIC>).c0, \
                CAST(-1/1024 AS NUMERIC), SAFE_CAST(CAST('nan' AS FLOAT64) AS NUMERIC)"
            ),
            ["100000000000000004764729344.000000000", "-0.000976563", ""]
        );
        assert_eq!(
            ok("SELECT CAST(CAST(NULL AS STRUCT<a FLOAT64>) AS STRUCT<x NUMERIC>) IS NULL"),
            ["true"]
        );
        assert_eq!(
            ok(
                "SELECT SAFE_CAST('abcdef' AS STRING(5)), CAST(b'abc' AS BYTES(3)), CAST('ééé' AS STRING(3))"
            ),
            ["", "616263", "ééé"]
        );
        assert!(
            err("SELECT CAST(123456 AS STRING(5))")
                .contains("STRING(5) has maximum length 5 but got a value with length 6")
        );
        // DATETIME compared with text past the nanosecond range (year 2262).
        assert_eq!(
            ok(
                "SELECT DATETIME '4321-10-20 10:20:30' BETWEEN '4320-01-01' AND '4330-02-02 10:20:30', \
                TIMESTAMP '4321-10-20 10:20:30' > '2000-01-01'"
            ),
            ["true", "true"]
        );
        // A scalar subquery with no row is NULL, even of a NOT NULL column.
        assert_eq!(
            ok(
                "SELECT (SELECT 1 FROM UNNEST([1]) WHERE FALSE UNION ALL SELECT 2 FROM UNNEST([1]) WHERE FALSE), \
                (SELECT 1 FROM UNNEST([1]) WHERE FALSE) IS NULL, (SELECT 1) IS NULL"
            ),
            ["", "true", "false"]
        );
        assert_eq!(
            ok(
                "SELECT REGEXP_INSTR('abcabc', 'a(b)c', 2, 1, 1), REGEXP_INSTR('щцфщфф', 'щ(.).', 1, 2), \
                REGEXP_INSTR('abc', 'c'), REGEXP_INSTR(NULL, 'c')"
            ),
            ["6", "5", "3", ""]
        );
        assert!(err("SELECT REGEXP_INSTR('abc', '(')").contains("regular expression"));
        // STRING_AGG of BYTES is BYTES.
        assert_eq!(
            ok(
                "SELECT STRING_AGG(b ORDER BY b), STRING_AGG(b, b'-' ORDER BY b DESC), \
                STRING_AGG(DISTINCT b, b'' ORDER BY b), \
                STRING_AGG(s) FROM (SELECT b'a' AS b, 'x' AS s UNION ALL SELECT NULL, 'x' \
                UNION ALL SELECT b'b', 'x' UNION ALL SELECT b'a', 'x')"
            ),
            ["612c612c62", "622d612d61", "6162", "x,x,x,x"]
        );
        assert_eq!(
            ok(
                "SELECT (SELECT STRING_AGG(b) FROM UNNEST([b'a']) b WHERE FALSE), \
                (SELECT STRING_AGG(b) FROM UNNEST([b'a', b'a']) b GROUP BY b)"
            ),
            ["", "612c61"]
        );
        // Comparisons with NaN are false, with NULL NULL.
        assert_eq!(
            ok(
                "SELECT CAST('NaN' AS FLOAT64) BETWEEN 1 AND NULL, CAST('NaN' AS FLOAT64) BETWEEN NULL AND NULL, \
                CAST('NaN' AS FLOAT64) = NULL, CAST('NaN' AS FLOAT64) != 1"
            ),
            ["false", "", "", "true"]
        );
    }
}

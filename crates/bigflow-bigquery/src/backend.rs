//! The backend trait: what the Dataset operations need from an engine.
//!
//! The local warehouse ([`crate::local::LocalWarehouse`]) implements it now;
//! the BigQuery REST client implements the same trait, so the behavioural
//! suite in `tests/` runs unchanged on both.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use indexmap::IndexMap;

use crate::error::Result;
use crate::names::TableId;
use crate::schema::Field;

/// Where a statement runs: the dataset bare table names belong to, and job labels.
#[derive(Debug, Clone, Default)]
pub struct QueryContext {
    /// Project of `dataset.table` and bare names.
    pub default_project: String,
    /// Dataset of bare names.
    pub default_dataset: String,
    /// Labels of the query job.
    pub job_labels: IndexMap<String, String>,
    /// Labels put on tables the statement creates.
    pub table_labels: IndexMap<String, String>,
}

/// What a statement returned.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The result's columns (empty for DDL).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Rows inserted by DML.
    pub affected_rows: Option<u64>,
}

impl QueryResult {
    /// Number of result rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// How a write treats existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace the table's (or the partition's) rows; the table must exist.
    Truncate,
    /// Add rows; the table must exist.
    Append,
    /// Create or replace an unpartitioned table with the result's schema.
    CreateOrReplace,
}

/// A table's day partitioning.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Partitioning {
    /// By load time (`PARTITION BY _PARTITIONDATE`); exposes `_PARTITIONTIME`/`_PARTITIONDATE`.
    Ingestion,
    /// By the day of a DATE, DATETIME or TIMESTAMP column.
    Column {
        /// The column.
        column: String,
    },
}

/// The format of a file to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// Newline-delimited JSON.
    NdJson,
}

/// A table's description.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// Its columns.
    pub schema: Vec<Field>,
    /// Its partitioning.
    pub partitioning: Option<Partitioning>,
    /// Its labels.
    pub labels: IndexMap<String, String>,
    /// Its row count.
    pub num_rows: u64,
}

/// What a dry run found out.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// The result's columns.
    pub schema: SchemaRef,
    /// Bytes the query would read (local: the size of the Parquet files of the tables it names).
    pub bytes_processed: u64,
}

/// An engine the Dataset operations run on. All methods are blocking.
pub trait Backend: Send + Sync {
    /// A short name for logs (`local`, `bigquery`).
    fn name(&self) -> &str;

    /// Runs one statement: a query, `CREATE TABLE`, `INSERT`, `DROP TABLE`.
    fn execute(&self, sql: &str, ctx: &QueryContext) -> Result<QueryResult>;

    /// Writes a query's result into `table` (or its day `partition`).
    fn write_query(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        mode: WriteMode,
        sql: &str,
        ctx: &QueryContext,
    ) -> Result<u64>;

    /// Plans a query without running it.
    fn dry_run(&self, sql: &str, ctx: &QueryContext) -> Result<DryRun>;

    /// Whether the table exists.
    fn table_exists(&self, table: &TableId) -> Result<bool>;

    /// Describes a table (`UnknownTable` if it does not exist).
    fn table_info(&self, table: &TableId) -> Result<TableInfo>;

    /// Creates a table from a schema; an existing one is an error unless `if_not_exists`.
    fn create_table(
        &self,
        table: &TableId,
        schema: &[Field],
        partitioning: Option<Partitioning>,
        labels: &IndexMap<String, String>,
        if_not_exists: bool,
    ) -> Result<()>;

    /// Appends JSON rows (objects keyed by column) to a table or partition; all or nothing.
    fn insert_rows(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        rows: &[serde_json::Value],
    ) -> Result<u64>;

    /// Loads a file into a table or partition, appending or truncating.
    fn load_file(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        path: &Path,
        format: FileFormat,
        mode: WriteMode,
    ) -> Result<u64>;

    /// Writes Arrow batches into a table or partition.
    fn write_batches(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        batches: Vec<RecordBatch>,
        mode: WriteMode,
    ) -> Result<u64>;

    /// Deletes a dataset and its tables; a missing dataset is not an error.
    fn delete_dataset(&self, project: &str, dataset: &str) -> Result<()>;

    /// Creates the dataset if it is missing; sets its labels unless `labels` is empty.
    fn ensure_dataset(
        &self,
        project: &str,
        dataset: &str,
        labels: &IndexMap<String, String>,
    ) -> Result<()>;
}

//! BigQuery for BigFlow workflows: the `Dataset` API over two backends, an
//! embedded local warehouse (DataFusion over Parquet) and BigQuery itself.
//!
//! - [`config`]: [`DatasetConfig`], per-environment project, dataset, tables and labels;
//!   [`template`]: `{table}`/`{alias}`/`{property}`/`{dt}` in SQL.
//! - [`dataset`]: [`Dataset`] and its lazy [`Operation`]s, jobs ([`DatasetJob`]),
//!   components ([`component`]) and the immediate [`DatasetManager`].
//! - [`backend`]: the [`Backend`] trait the operations run on;
//!   [`local`]: the embedded warehouse ([`LocalWarehouse`]);
//!   [`bigquery`]: BigQuery itself, or its emulator ([`BigQueryBackend`]).
//! - [`schema`], [`names`], [`error`]: BigQuery schemas, table names, errors.
//! - [`adhoc`] and [`format`]: ad-hoc queries printed as a table, JSON or CSV.
//!
//! User documentation: `docs/bigquery.md`.

pub mod adhoc;
pub mod backend;
pub mod bigquery;
pub mod config;
pub mod dataset;
pub mod error;
pub mod format;
pub mod local;
pub mod names;
pub mod range;
pub mod schema;
pub mod template;

pub use backend::{Backend, FileFormat, Partitioning, QueryContext, QueryResult, WriteMode};
pub use bigflow_gcp::AuthMethod;
pub use bigquery::BigQueryBackend;
pub use config::{BackendKind, DatasetConfig, DatasetSettings};
pub use dataset::{
    Component, Dataset, DatasetJob, DatasetManager, Operation, Output, RunContext, component,
    component_of,
};
pub use error::{BqError, Position, Result};
pub use local::LocalWarehouse;
pub use names::TableId;
pub use schema::Field;

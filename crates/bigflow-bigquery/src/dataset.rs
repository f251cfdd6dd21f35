//! The Dataset API: BigFlow's `Dataset` operations as lazy values and jobs.
//!
//! - [`Dataset`] is a [`DatasetConfig`] plus an engine. Its methods
//!   (`create_table`, `write_truncate`, `collect`, …) return an [`Operation`]:
//!   nothing runs until the operation becomes a job ([`Operation::to_job`]) or
//!   is run ad hoc ([`Operation::run`]).
//! - [`DatasetManager`] is a dataset bound to an environment and a runtime;
//!   its methods run at once. Jobs make one per execution; a [`Component`]
//!   (BigFlow's `@component`) is any Rust function receiving one or more of them.
//!
//! Write operations on a partitioned table write the runtime's day partition
//! (`table$YYYYMMDD`) unless `.partitioned(false)`, as in BigFlow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::RecordBatch;
use bigflow_core::job::{Job, JobEnvironment, JobResult, JobSettings, WithSettings};
use bigflow_core::{JobContext, ResolvedConfig};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::backend::{Backend, FileFormat, Partitioning, QueryContext, QueryResult, WriteMode};
use crate::config::{BackendKind, DatasetConfig, DatasetSettings};
use crate::error::{BqError, Result};
use crate::local::{self, LocalWarehouse};
use crate::names::{TableId, split_partition};
use crate::schema::Field;
use crate::template::{TemplateVars, render};

/// Local warehouses opened by this process, one per directory.
fn local_warehouse(dir: &Path) -> Result<Arc<dyn Backend>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<LocalWarehouse>>>> = OnceLock::new();
    let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut map = OPEN
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(w) = map.get(&key) {
        return Ok(w.clone());
    }
    let w = Arc::new(LocalWarehouse::open(key.clone())?);
    map.insert(key, w.clone());
    Ok(w)
}

/// The local warehouse at `dir` (shared within the process).
pub fn open_local(dir: &Path) -> Result<Arc<dyn Backend>> {
    local_warehouse(dir)
}

/// A dataset: per-environment settings and the engine they run on.
#[derive(Clone)]
pub struct Dataset {
    config: Arc<DatasetConfig>,
    backend: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("config", &self.config)
            .finish()
    }
}

impl DatasetConfig {
    /// The dataset of this configuration (BigFlow's `create_dataset_manager`).
    pub fn create_dataset(&self) -> Dataset {
        Dataset::new(self.clone())
    }
}

/// Where and when an operation runs.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// Environment (`None`: `$bf_env`, else the config's default).
    pub env: Option<String>,
    /// The runtime as given (`{dt}`), `YYYY-MM-DD[ HH:MM:SS]`.
    pub runtime: String,
    /// The workflow's config, for template values.
    pub config: Option<ResolvedConfig>,
}

impl RunContext {
    /// A context for an ad-hoc run at `runtime`.
    pub fn at(runtime: &str) -> Result<RunContext> {
        bigflow_core::parse_runtime(runtime).map_err(|e| BqError::Config(e.to_string()))?;
        Ok(RunContext {
            env: std::env::var("bf_env").ok().filter(|e| !e.is_empty()),
            runtime: runtime.to_string(),
            config: None,
        })
    }
}

impl Dataset {
    /// A dataset on the engine its configuration names (the local warehouse by default).
    pub fn new(config: DatasetConfig) -> Dataset {
        Dataset {
            config: Arc::new(config),
            backend: None,
        }
    }

    /// A dataset on a given engine (tests, the BigQuery client).
    pub fn with_backend(config: DatasetConfig, backend: Arc<dyn Backend>) -> Dataset {
        Dataset {
            config: Arc::new(config),
            backend: Some(backend),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DatasetConfig {
        &self.config
    }

    /// The engine `env` runs on, described for people.
    fn engine_in(&self, env: &str) -> String {
        match (&self.backend, self.config.settings(Some(env))) {
            (Some(_), _) => "a backend given in code".into(),
            (None, Ok(settings)) => settings.backend.describe(),
            (None, Err(_)) => "unknown".into(),
        }
    }

    /// The dataset bound to an environment and runtime: its methods run at once.
    pub fn manager(&self, run: &RunContext) -> Result<DatasetManager> {
        self.manager_with(run, None)
    }

    /// [`Dataset::manager`] for a running job: on BigQuery, raising the job's
    /// cancel token cancels the query job being waited for (`jobs.cancel`),
    /// and each job is sent with `jobTimeoutMs` = the job's execution timeout.
    pub fn manager_with(
        &self,
        run: &RunContext,
        control: Option<&JobControl>,
    ) -> Result<DatasetManager> {
        let settings = self.config.settings(run.env.as_deref())?.clone();
        if self.backend.is_none() && settings.backend.is_local() {
            refuse_local_in_image(
                run.env.as_deref().unwrap_or(self.config.default_env()),
                &settings,
            )?;
        }
        let backend = match &self.backend {
            Some(b) => b.clone(),
            None => match &settings.backend {
                BackendKind::Local => local_warehouse(&local::default_dir())?,
                BackendKind::LocalAt(dir) => local_warehouse(dir)?,
                BackendKind::BigQuery {
                    endpoint,
                    location,
                    auth,
                } => {
                    let mut backend = crate::bigquery::BigQueryBackend::connect(
                        &settings.project_id,
                        endpoint.as_deref(),
                        location.as_deref(),
                        auth,
                    )?;
                    if let Some(control) = control {
                        let client = backend.client_mut();
                        client.cancel = Some(control.cancel.flag());
                        client.job_timeout = Some(control.timeout);
                    }
                    Arc::new(backend)
                }
            },
        };
        let day = bigflow_core::parse_runtime(&run.runtime)
            .map_err(|e| BqError::Config(e.to_string()))?
            .date();
        let qctx = QueryContext {
            default_project: settings.project_id.clone(),
            default_dataset: settings.dataset_name.clone(),
            job_labels: settings.job_labels.clone(),
            table_labels: settings.table_labels.clone(),
        };
        // As BigFlow's dataset manager does: the dataset exists from the start.
        backend.ensure_dataset(
            &settings.project_id,
            &settings.dataset_name,
            &settings.dataset_labels,
        )?;
        Ok(DatasetManager {
            settings,
            backend,
            dt: run.runtime.clone(),
            day,
            extra: run.config.clone(),
            qctx,
        })
    }

    fn op(&self, kind: OpKind) -> Operation {
        Operation {
            dataset: self.clone(),
            kind,
            partitioned: true,
        }
    }

    /// `CREATE TABLE …` (bare table names are in this dataset).
    pub fn create_table(&self, ddl: &str) -> Operation {
        self.op(OpKind::CreateTable(ddl.into()))
    }

    /// Replaces the table's rows (or the runtime's partition) with the query's result.
    pub fn write_truncate(&self, table: &str, sql: &str) -> Operation {
        self.op(OpKind::Write(table.into(), sql.into(), WriteMode::Truncate))
    }

    /// Appends the query's result to the table (or the runtime's partition).
    pub fn write_append(&self, table: &str, sql: &str) -> Operation {
        self.op(OpKind::Write(table.into(), sql.into(), WriteMode::Append))
    }

    /// Creates or replaces an unpartitioned table with the query's result.
    pub fn write_tmp(&self, table: &str, sql: &str) -> Operation {
        self.op(OpKind::Write(
            table.into(),
            sql.into(),
            WriteMode::CreateOrReplace,
        ))
        .partitioned(false)
    }

    /// Runs SQL (any statement) and returns its rows.
    pub fn collect(&self, sql: &str) -> Operation {
        self.op(OpKind::Collect(sql.into()))
    }

    /// Runs a query and returns its rows as JSON objects.
    pub fn collect_list(&self, sql: &str) -> Operation {
        self.op(OpKind::CollectList(sql.into()))
    }

    /// Checks and plans a query without running it.
    pub fn dry_run(&self, sql: &str) -> Operation {
        self.op(OpKind::DryRun(sql.into()))
    }

    /// Whether a table exists.
    pub fn table_exists(&self, table: &str) -> Operation {
        self.op(OpKind::TableExists(table.into()))
    }

    /// Appends rows (JSON objects) to a table (or the runtime's partition).
    pub fn insert(&self, table: &str, rows: Vec<Value>) -> Operation {
        self.op(OpKind::Insert(table.into(), rows))
    }

    /// Creates a day-partitioned (ingestion time) table from a schema, as BigFlow does.
    pub fn create_table_from_schema(&self, table: &str, schema: Vec<Field>) -> Operation {
        self.op(OpKind::CreateFromSchema(table.into(), schema))
    }

    /// Loads a Parquet, CSV (with header) or newline-delimited JSON file into a table.
    pub fn load_table(
        &self,
        table: &str,
        path: impl Into<PathBuf>,
        format: FileFormat,
        mode: WriteMode,
    ) -> Operation {
        self.op(OpKind::Load(table.into(), path.into(), format, mode))
    }

    /// Deletes the dataset and its tables.
    pub fn delete_dataset(&self) -> Operation {
        self.op(OpKind::DeleteDataset)
    }

    /// A job that fails until `table` has rows matching `where_clause` (retried by the scheduler).
    pub fn sensor(&self, table: &str, where_clause: &str) -> Operation {
        self.op(OpKind::Sensor(table.into(), where_clause.into()))
    }
}

#[derive(Debug, Clone)]
enum OpKind {
    CreateTable(String),
    Write(String, String, WriteMode),
    Collect(String),
    CollectList(String),
    DryRun(String),
    TableExists(String),
    Insert(String, Vec<Value>),
    CreateFromSchema(String, Vec<Field>),
    Load(String, PathBuf, FileFormat, WriteMode),
    DeleteDataset,
    Sensor(String, String),
}

/// What an operation produced.
#[derive(Debug, Clone)]
pub enum Output {
    /// Nothing to report.
    Done,
    /// Rows written.
    Written(u64),
    /// A statement's result.
    Result(QueryResult),
    /// Rows as JSON objects.
    Rows(Vec<Map<String, Value>>),
    /// A dry run's summary.
    DryRun(String),
    /// `table_exists`.
    Exists(bool),
}

/// A lazy Dataset operation.
#[derive(Debug, Clone)]
pub struct Operation {
    dataset: Dataset,
    kind: OpKind,
    partitioned: bool,
}

impl Operation {
    /// Whether writes go to the runtime's day partition (default `true`; BigFlow's `partitioned`).
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// Runs the operation with a manager.
    pub fn execute(&self, ds: &DatasetManager) -> Result<Output> {
        let p = self.partitioned;
        Ok(match &self.kind {
            OpKind::CreateTable(ddl) => {
                ds.create_table(ddl)?;
                Output::Done
            }
            OpKind::Write(t, sql, WriteMode::Truncate) => {
                Output::Written(ds.write_truncate(t, sql, p)?)
            }
            OpKind::Write(t, sql, WriteMode::Append) => {
                Output::Written(ds.write_append(t, sql, p)?)
            }
            OpKind::Write(t, sql, WriteMode::CreateOrReplace) => {
                Output::Written(ds.write_tmp(t, sql)?)
            }
            OpKind::Collect(sql) => Output::Result(ds.collect(sql)?),
            OpKind::CollectList(sql) => Output::Rows(ds.collect_list(sql)?),
            OpKind::DryRun(sql) => Output::DryRun(ds.dry_run(sql)?),
            OpKind::TableExists(t) => Output::Exists(ds.table_exists(t)?),
            OpKind::Insert(t, rows) => Output::Written(ds.insert(t, rows, p)?),
            OpKind::CreateFromSchema(t, schema) => {
                ds.create_table_from_schema(t, schema)?;
                Output::Done
            }
            OpKind::Load(t, path, format, mode) => {
                Output::Written(ds.load_table(t, path, *format, *mode, p)?)
            }
            OpKind::DeleteDataset => {
                ds.delete_dataset()?;
                Output::Done
            }
            OpKind::Sensor(t, w) => {
                ds.sensor(t, w)?;
                Output::Done
            }
        })
    }

    /// Runs the operation now for `runtime` (`YYYY-MM-DD[ HH:MM:SS]`), in `$bf_env` or the default environment.
    pub fn run(&self, runtime: &str) -> Result<Output> {
        let ds = self.dataset.manager(&RunContext::at(runtime)?)?;
        self.execute(&ds)
    }

    /// The operation as a job with BigFlow's default retry settings.
    pub fn to_job(&self, id: &str) -> DatasetJob {
        let op = self.clone();
        let dataset = self.dataset.clone();
        DatasetJob {
            id: id.to_string(),
            settings: JobSettings::default(),
            datasets: vec![dataset],
            run: Arc::new(move |ds: &[DatasetManager]| {
                let out = op.execute(&ds[0])?;
                log_output(&out);
                Ok(())
            }),
        }
    }
}

fn log_output(out: &Output) {
    match out {
        Output::Written(n) => tracing::info!(rows = n, "rows written"),
        // DML returns no rows: what it changed is its affected-row count.
        Output::Result(QueryResult {
            affected_rows: Some(n),
            ..
        }) => tracing::info!(affected_rows = n, "statement done"),
        Output::Result(r) => tracing::info!(rows = r.num_rows(), "statement done"),
        Output::Rows(r) => tracing::info!(rows = r.len(), "rows collected"),
        Output::DryRun(s) => tracing::info!("{s}"),
        Output::Exists(e) => tracing::info!(exists = e, "table exists"),
        Output::Done => {}
    }
}

type ComponentFn = Arc<dyn Fn(&[DatasetManager]) -> anyhow::Result<()> + Send + Sync>;

/// A job made of Dataset work: an [`Operation`] or a [`Component`].
#[derive(Clone)]
pub struct DatasetJob {
    id: String,
    settings: JobSettings,
    datasets: Vec<Dataset>,
    run: ComponentFn,
}

impl DatasetJob {
    /// Runs the job now (tests, ad-hoc use).
    pub fn run_at(&self, run: &RunContext) -> anyhow::Result<()> {
        self.run_with(run, None)
    }

    fn run_with(&self, run: &RunContext, control: Option<&JobControl>) -> anyhow::Result<()> {
        let managers = self
            .datasets
            .iter()
            .map(|d| d.manager_with(run, control))
            .collect::<Result<Vec<_>>>()?;
        (self.run)(&managers)
    }
}

impl WithSettings for DatasetJob {
    fn settings_mut(&mut self) -> &mut JobSettings {
        &mut self.settings
    }
}

/// What a running job hands its datasets: its cancel token and execution timeout.
#[derive(Debug, Clone)]
pub struct JobControl {
    /// Raised by the runner on timeout or interrupt.
    pub cancel: bigflow_core::context::CancelToken,
    /// The job's execution timeout.
    pub timeout: std::time::Duration,
}

/// Set in the project's image (`build-image`): the binary runs in a pod.
pub const IN_IMAGE_VAR: &str = "BIGFLOW_IN_IMAGE";
/// Set to `1` to let a local warehouse run inside the image anyway.
pub const ALLOW_LOCAL_VAR: &str = "BIGFLOW_ALLOW_LOCAL_WAREHOUSE";

/// Inside the image, a local warehouse would write Parquet into the pod's
/// disk and reach no BigQuery: refused unless explicitly allowed.
fn refuse_local_in_image(env: &str, settings: &DatasetSettings) -> Result<()> {
    let in_image = std::env::var_os(IN_IMAGE_VAR).is_some_and(|v| !v.is_empty());
    let allowed = std::env::var(ALLOW_LOCAL_VAR).as_deref() == Ok("1");
    if in_image && !allowed {
        return Err(BqError::Config(format!(
            "environment '{env}' of dataset {}.{} runs on the local warehouse, which inside the image writes to the container's disk and reaches no BigQuery; give that environment a BigQuery engine (DatasetConfig::add_configuration environments have one unless .backend(BackendKind::Local) opts out), run with another --config, or set {ALLOW_LOCAL_VAR}=1 if a local warehouse is really meant",
            settings.project_id, settings.dataset_name
        )));
    }
    Ok(())
}

impl Job for DatasetJob {
    fn id(&self) -> &str {
        &self.id
    }

    fn execute(&self, ctx: &JobContext) -> JobResult {
        // The run's environment; a workflow without a config runs in "default",
        // which means each dataset's own default environment.
        let known = self
            .datasets
            .iter()
            .all(|d| d.config.env_names().any(|e| e == ctx.env));
        let control = JobControl {
            cancel: ctx.cancel_token().clone(),
            timeout: self.execution_timeout(),
        };
        self.run_with(
            &RunContext {
                env: (known || ctx.env != "default").then(|| ctx.env.clone()),
                runtime: ctx.runtime_str.clone(),
                config: Some(ctx.config.clone()),
            },
            Some(&control),
        )
    }

    fn settings(&self) -> JobSettings {
        self.settings
    }

    fn cleanup_grace(&self) -> std::time::Duration {
        // jobs.cancel, then up to 30 s for BigQuery to confirm it.
        std::time::Duration::from_secs(45)
    }

    fn environments(&self) -> Option<Vec<JobEnvironment>> {
        // A run needs an environment every dataset of the job knows.
        let first = self.datasets.first()?;
        let envs = first
            .config
            .env_names()
            .filter(|e| {
                self.datasets
                    .iter()
                    .all(|d| d.config.env_names().any(|n| n == *e))
            })
            .map(|name| {
                let mut engines: Vec<String> =
                    self.datasets.iter().map(|d| d.engine_in(name)).collect();
                engines.dedup();
                JobEnvironment {
                    name: name.to_string(),
                    engine: engines.join(" + "),
                }
            })
            .collect();
        Some(envs)
    }
}

/// BigFlow's `@component`: a function of one or more datasets that becomes a job.
#[derive(Clone)]
pub struct Component {
    datasets: Vec<Dataset>,
    run: ComponentFn,
}

/// A component of one dataset.
pub fn component(
    dataset: &Dataset,
    f: impl Fn(&DatasetManager) -> anyhow::Result<()> + Send + Sync + 'static,
) -> Component {
    Component {
        datasets: vec![dataset.clone()],
        run: Arc::new(move |ds: &[DatasetManager]| f(&ds[0])),
    }
}

/// A component of several datasets, given to `f` in the same order.
pub fn component_of(
    datasets: &[&Dataset],
    f: impl Fn(&[DatasetManager]) -> anyhow::Result<()> + Send + Sync + 'static,
) -> Component {
    Component {
        datasets: datasets.iter().map(|d| (*d).clone()).collect(),
        run: Arc::new(f),
    }
}

impl Component {
    /// The component as a job.
    pub fn to_job(&self, id: &str) -> DatasetJob {
        DatasetJob {
            id: id.to_string(),
            settings: JobSettings::default(),
            datasets: self.datasets.clone(),
            run: self.run.clone(),
        }
    }

    /// Runs the component now for `runtime`.
    pub fn run(&self, runtime: &str) -> anyhow::Result<()> {
        self.to_job("adhoc").run_at(&RunContext::at(runtime)?)
    }
}

/// A dataset bound to an environment and a runtime; every method runs at once.
#[derive(Clone)]
pub struct DatasetManager {
    settings: DatasetSettings,
    backend: Arc<dyn Backend>,
    dt: String,
    day: NaiveDate,
    extra: Option<ResolvedConfig>,
    qctx: QueryContext,
}

impl DatasetManager {
    /// `{dt}`: the runtime as given.
    pub fn dt(&self) -> &str {
        &self.dt
    }

    /// The project id.
    pub fn project_id(&self) -> &str {
        &self.settings.project_id
    }

    /// The dataset name.
    pub fn dataset_name(&self) -> &str {
        &self.settings.dataset_name
    }

    /// The engine.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Fills in a SQL template.
    pub fn render(&self, sql: &str) -> Result<String> {
        render(
            sql,
            &self.settings,
            &TemplateVars {
                dt: Some(&self.dt),
                extra: self.extra.as_ref(),
            },
        )
    }

    /// A table of this dataset (or `dataset.table`, `project.dataset.table`; an alias of an external table).
    pub fn table_id(&self, name: &str) -> Result<TableId> {
        let name = self
            .settings
            .external_tables
            .get(name)
            .map(String::as_str)
            .unwrap_or(name);
        TableId::parse(name, &self.settings.project_id, &self.settings.dataset_name)
    }

    fn target(&self, table: &str, partitioned: bool) -> Result<(TableId, Option<NaiveDate>)> {
        let (name, explicit) = split_partition(table)?;
        let id = self.table_id(name)?;
        Ok((id, explicit.or(partitioned.then_some(self.day))))
    }

    /// Runs a `CREATE TABLE` statement.
    pub fn create_table(&self, ddl: &str) -> Result<()> {
        self.backend
            .execute(&self.render(ddl)?, &self.qctx)
            .map(|_| ())
    }

    /// Replaces the rows of `table` (its runtime partition when `partitioned`) with the query's result.
    pub fn write_truncate(&self, table: &str, sql: &str, partitioned: bool) -> Result<u64> {
        let (id, p) = self.target(table, partitioned)?;
        self.backend
            .write_query(&id, p, WriteMode::Truncate, &self.render(sql)?, &self.qctx)
    }

    /// Appends the query's result to `table` (its runtime partition when `partitioned`).
    pub fn write_append(&self, table: &str, sql: &str, partitioned: bool) -> Result<u64> {
        let (id, p) = self.target(table, partitioned)?;
        self.backend
            .write_query(&id, p, WriteMode::Append, &self.render(sql)?, &self.qctx)
    }

    /// Creates or replaces the unpartitioned `table` with the query's result.
    pub fn write_tmp(&self, table: &str, sql: &str) -> Result<u64> {
        let (id, _) = self.target(table, false)?;
        self.backend.write_query(
            &id,
            None,
            WriteMode::CreateOrReplace,
            &self.render(sql)?,
            &self.qctx,
        )
    }

    /// Runs SQL and returns the result (Arrow record batches; `.to_string()` of
    /// [`crate::format::Table`] prints it).
    pub fn collect(&self, sql: &str) -> Result<QueryResult> {
        self.backend.execute(&self.render(sql)?, &self.qctx)
    }

    /// Runs a query; rows as JSON objects (column → value).
    pub fn collect_list(&self, sql: &str) -> Result<Vec<Map<String, Value>>> {
        let r = self.collect(sql)?;
        crate::format::to_json_rows(&r.batches)
    }

    /// Runs a query; rows deserialized into `T` (a struct with the columns as fields).
    pub fn collect_list_as<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        self.collect_list(sql)?
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                serde_json::from_value(Value::Object(row)).map_err(|e| BqError::Input {
                    table: "query result".into(),
                    cause: format!(
                        "row {} does not fit {}: {e}",
                        i + 1,
                        std::any::type_name::<T>()
                    ),
                })
            })
            .collect()
    }

    /// Checks a query: "This query will process N bytes.", or the error.
    pub fn dry_run(&self, sql: &str) -> Result<String> {
        let d = self.backend.dry_run(&self.render(sql)?, &self.qctx)?;
        Ok(format!(
            "This query will process {} and return {} column(s).",
            human_bytes(d.bytes_processed),
            d.schema.fields().len()
        ))
    }

    /// Whether `table` exists.
    pub fn table_exists(&self, table: &str) -> Result<bool> {
        self.backend.table_exists(&self.target(table, false)?.0)
    }

    /// Appends JSON rows to `table` (its runtime partition when `partitioned` and the table is partitioned by ingestion time).
    pub fn insert(&self, table: &str, rows: &[Value], partitioned: bool) -> Result<u64> {
        let (id, p) = self.target(table, partitioned)?;
        let p = self.partition_if_partitioned(&id, p)?;
        self.backend.insert_rows(&id, p, rows)
    }

    fn partition_if_partitioned(
        &self,
        id: &TableId,
        p: Option<NaiveDate>,
    ) -> Result<Option<NaiveDate>> {
        // Inserts and loads default to the runtime's partition only where there is one.
        Ok(match p {
            Some(day) if self.backend.table_info(id)?.partitioning.is_some() => Some(day),
            _ => None,
        })
    }

    /// Creates a table partitioned by ingestion day from a schema.
    pub fn create_table_from_schema(&self, table: &str, schema: &[Field]) -> Result<()> {
        let (id, _) = self.target(table, false)?;
        self.backend.create_table(
            &id,
            schema,
            Some(Partitioning::Ingestion),
            &self.settings.table_labels,
            false,
        )
    }

    /// Loads a file into `table`.
    pub fn load_table(
        &self,
        table: &str,
        path: &Path,
        format: FileFormat,
        mode: WriteMode,
        partitioned: bool,
    ) -> Result<u64> {
        let (id, p) = self.target(table, partitioned)?;
        let p = if mode == WriteMode::CreateOrReplace {
            None
        } else {
            self.partition_if_partitioned(&id, p)?
        };
        self.backend.load_file(&id, p, path, format, mode)
    }

    /// Writes Arrow batches into `table`.
    pub fn write_batches(
        &self,
        table: &str,
        batches: Vec<RecordBatch>,
        mode: WriteMode,
        partitioned: bool,
    ) -> Result<u64> {
        let (id, p) = self.target(table, partitioned)?;
        self.backend.write_batches(&id, p, batches, mode)
    }

    /// Deletes the dataset and its tables.
    pub fn delete_dataset(&self) -> Result<()> {
        self.backend
            .delete_dataset(&self.settings.project_id, &self.settings.dataset_name)
    }

    /// Fails with [`BqError::NotReady`] until `table` has rows matching `where_clause`.
    pub fn sensor(&self, table: &str, where_clause: &str) -> Result<()> {
        let id = self.table_id(table)?;
        let sql = format!("SELECT COUNT(*) > 0 AS table_ready FROM `{id}` WHERE {where_clause}");
        let rows = self.collect_list(&sql)?;
        let ready = rows
            .first()
            .and_then(|r| r.get("table_ready"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if ready {
            Ok(())
        } else {
            Err(BqError::NotReady {
                table: table.to_string(),
                where_clause: where_clause.to_string(),
            })
        }
    }
}

fn human_bytes(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GB");
    }
}

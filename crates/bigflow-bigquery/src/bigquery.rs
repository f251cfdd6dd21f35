//! The BigQuery backend: the Dataset operations on BigQuery itself (or its
//! emulator), through `bigflow-gcp`'s REST client.
//!
//! Writes are query jobs with a destination (`table$YYYYMMDD` for a day
//! partition) and a write disposition, so BigQuery makes them atomic. Rows
//! come back as the REST API's JSON and are turned into Arrow batches with
//! the same schema mapping as the local warehouse ([`crate::schema`]).
//! Inserted rows and Arrow batches are loaded as load jobs (NDJSON, Parquet).

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use bigflow_gcp::bigquery::{BigQuery, BigQueryError, new_job_id};
use bigflow_gcp::{AuthMethod, TokenSource};
use chrono::NaiveDate;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::backend::{
    Backend, DryRun, FileFormat, Partitioning, QueryContext, QueryResult, TableInfo, WriteMode,
};
use crate::error::{BqError, Position, Result};
use crate::names::{TableId, partition_id};
use crate::schema::{Field, to_arrow_field};

/// BigQuery as a [`Backend`].
pub struct BigQueryBackend {
    client: BigQuery,
    runtime: tokio::runtime::Runtime,
}

fn labels_map(labels: &IndexMap<String, String>) -> Map<String, Value> {
    labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

/// `[line:column]` in a BigQuery message, as a position.
fn position_in(message: &str) -> Option<Position> {
    let start = message.find('[')?;
    let end = start + message[start..].find(']')?;
    let (line, column) = message[start + 1..end].split_once(':')?;
    Some(Position {
        line: line.trim().parse().ok()?,
        column: column.trim().parse().ok()?,
    })
}

/// The table a BigQuery message names ("Not found: Table p:d.t was not
/// found", "Already Exists: Table p:d.t"), as `p.d.t`.
fn table_in(message: &str) -> Option<String> {
    let rest = &message[message.find("Table ")? + "Table ".len()..];
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$'))
        .collect();
    let name = name.trim_end_matches('.').replacen(':', ".", 1);
    (name.matches('.').count() == 2).then_some(name)
}

/// The Dataset API's error for a REST failure.
fn error(table: Option<&TableId>, e: BigQueryError) -> BqError {
    let name = |what: String, message: &str| {
        table
            .map(ToString::to_string)
            .or_else(|| table_in(message))
            .unwrap_or(what)
    };
    match e {
        BigQueryError::NotFound { what, message } => BqError::UnknownTable {
            table: name(what, &message),
            position: position_in(&message),
            hint: format!(" ({message})"),
        },
        BigQueryError::AlreadyExists { what, message } => BqError::TableExists {
            table: name(what, &message),
        },
        BigQueryError::Failed {
            message, reason, ..
        } if reason.as_deref() == Some("notFound") => BqError::UnknownTable {
            table: name(String::new(), &message),
            position: position_in(&message),
            hint: format!(" ({message})"),
        },
        BigQueryError::Failed {
            message, reason, ..
        } if reason.as_deref() == Some("duplicate") => BqError::TableExists {
            table: name(String::new(), &message),
        },
        BigQueryError::Failed {
            message, reason, ..
        } if reason.as_deref() == Some("invalidQuery") => BqError::Sql {
            position: position_in(&message),
            message,
        },
        BigQueryError::Config(m) => BqError::Config(m),
        other => BqError::Engine(other.to_string()),
    }
}

fn table_ref(table: &TableId, partition: Option<NaiveDate>) -> Value {
    let id = match partition {
        Some(day) => format!("{}${}", table.table, partition_id(day)),
        None => table.table.clone(),
    };
    json!({ "projectId": table.project, "datasetId": table.dataset, "tableId": id })
}

fn disposition(mode: WriteMode) -> (&'static str, &'static str) {
    match mode {
        WriteMode::Truncate => ("WRITE_TRUNCATE", "CREATE_NEVER"),
        WriteMode::Append => ("WRITE_APPEND", "CREATE_NEVER"),
        WriteMode::CreateOrReplace => ("WRITE_TRUNCATE", "CREATE_IF_NEEDED"),
    }
}

/// Result columns as Arrow fields; BYTES come back base64-encoded, so as text.
fn result_schema(fields: &[Field]) -> Result<Schema> {
    Ok(Schema::new(
        fields
            .iter()
            .map(|f| {
                let arrow = to_arrow_field(f)?;
                Ok(match arrow.data_type() {
                    DataType::Binary => ArrowField::new(f.name.clone(), DataType::Utf8, true),
                    _ => arrow,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    ))
}

/// One REST cell (`{"v": …}` already unwrapped) as the JSON Arrow's reader expects.
fn cell(field: &Field, v: &Value, repeated_done: bool) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    if field.mode.eq_ignore_ascii_case("REPEATED") && !repeated_done {
        return Value::Array(
            v.as_array()
                .into_iter()
                .flatten()
                .map(|item| cell(field, &item["v"], true))
                .collect(),
        );
    }
    let text = v.as_str().unwrap_or_default();
    match field.field_type.to_ascii_uppercase().as_str() {
        "INT64" | "INTEGER" => text.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
        "FLOAT64" | "FLOAT" => text
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or(Value::Null),
        "BOOL" | "BOOLEAN" => Value::Bool(text.eq_ignore_ascii_case("true")),
        // Microseconds since the epoch (results are read with
        // `formatOptions.useInt64Timestamp`), or BigQuery's default
        // format, float seconds in text ("1.5778422E9").
        "TIMESTAMP" if text.contains(['.', 'e', 'E']) => text
            .parse::<f64>()
            .map(|s| Value::from((s * 1_000_000.0).round() as i64))
            .unwrap_or(Value::Null),
        "TIMESTAMP" => text.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
        "STRUCT" | "RECORD" => {
            let values = v["f"].as_array().cloned().unwrap_or_default();
            Value::Object(
                field
                    .fields
                    .iter()
                    .zip(values)
                    .map(|(f, x)| (f.name.clone(), cell(f, &x["v"], false)))
                    .collect(),
            )
        }
        "DATETIME" => Value::String(text.replace(' ', "T")),
        "RANGE" => field
            .range_element_type
            .as_ref()
            .and_then(|e| crate::range::Element::from_name(&e.element_type))
            .and_then(|e| range_cell(e, text))
            .unwrap_or(Value::Null),
        _ => v.clone(),
    }
}

/// A RANGE cell, `[start, end)` with `UNBOUNDED` (or NULL) for an open
/// side, as the struct of [`crate::range`] (days or µs; sentinels).
fn range_cell(element: crate::range::Element, text: &str) -> Option<Value> {
    use crate::range::{self, Element};
    let inner = text.trim().strip_prefix('[')?.strip_suffix(')')?;
    let (start, end) = inner.split_once(',')?;
    let bound = |b: &str, unbounded: i64| -> Option<i64> {
        let b = b.trim();
        if b.eq_ignore_ascii_case("UNBOUNDED") || b.eq_ignore_ascii_case("NULL") {
            return Some(unbounded);
        }
        if let Ok(v) = range::parse_bound(element, b) {
            return v;
        }
        // A TIMESTAMP as µs, or as float seconds.
        (element == Element::Timestamp).then_some(())?;
        b.parse::<i64>().ok().or_else(|| {
            b.parse::<f64>()
                .ok()
                .map(|s| (s * 1_000_000.0).round() as i64)
        })
    };
    let (lo, hi) = match element {
        Element::Date => (
            i64::from(range::UNBOUNDED_START_DAYS),
            i64::from(range::UNBOUNDED_END_DAYS),
        ),
        _ => (range::UNBOUNDED_START_MICROS, range::UNBOUNDED_END_MICROS),
    };
    let mut object = Map::new();
    object.insert(range::START.into(), Value::from(bound(start, lo)?));
    object.insert(range::END.into(), Value::from(bound(end, hi)?));
    Some(Value::Object(object))
}

/// REST rows as one Arrow batch.
fn to_batches(fields: &[Field], rows: &[Value]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(result_schema(fields)?);
    if rows.is_empty() {
        return Ok((schema, Vec::new()));
    }
    let mut ndjson = Vec::new();
    for row in rows {
        let values = row["f"].as_array().cloned().unwrap_or_default();
        let object: Map<String, Value> = fields
            .iter()
            .zip(values)
            .map(|(f, x)| (f.name.clone(), cell(f, &x["v"], false)))
            .collect();
        serde_json::to_writer(&mut ndjson, &Value::Object(object))
            .map_err(|e| BqError::Engine(e.to_string()))?;
        ndjson.push(b'\n');
    }
    let reader = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(Cursor::new(ndjson))
        .map_err(|e| BqError::Engine(format!("reading BigQuery rows: {e}")))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| BqError::Engine(format!("reading BigQuery rows: {e}")))?;
    Ok((schema, batches))
}

/// A count the REST API sends as a decimal string (`"numRows": "42"`); 0 when absent.
fn count(v: &Value) -> u64 {
    v.as_str().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn fields_of(schema: &Value) -> Vec<Field> {
    serde_json::from_value(schema["fields"].clone()).unwrap_or_default()
}

impl BigQueryBackend {
    /// A backend billing `project`, at `endpoint` (default: `BIGQUERY_EMULATOR_HOST`, else Google's).
    pub fn connect(
        project: &str,
        endpoint: Option<&str>,
        location: Option<&str>,
        auth: &AuthMethod,
    ) -> Result<BigQueryBackend> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BqError::Engine(e.to_string()))?;
        // As Google's client libraries do: an emulator named by
        // $BIGQUERY_EMULATOR_HOST takes no credentials.
        let emulator = endpoint.is_none()
            && std::env::var("BIGQUERY_EMULATOR_HOST").is_ok_and(|h| !h.is_empty());
        // Credentials are asked for on every request (refreshed during long
        // jobs); they are built on this runtime, which runs their refresh.
        let auth = if emulator {
            TokenSource::none()
        } else {
            runtime
                .block_on(TokenSource::new(auth))
                .map_err(|e| BqError::Config(e.to_string()))?
        };
        let client =
            BigQuery::new(endpoint, project, location, auth).map_err(|e| error(None, e))?;
        Ok(BigQueryBackend { client, runtime })
    }

    /// The REST client (poll interval, deadline and page size are public fields).
    pub fn client_mut(&mut self) -> &mut BigQuery {
        &mut self.client
    }

    fn query_job(
        &self,
        what: &str,
        configuration: Value,
        labels: &IndexMap<String, String>,
        table: Option<&TableId>,
    ) -> Result<Value> {
        self.runtime
            .block_on(
                self.client
                    .run_job(&new_job_id(what), configuration, &labels_map(labels)),
            )
            .map_err(|e| error(table, e))
    }
}

impl Backend for BigQueryBackend {
    fn name(&self) -> &str {
        "bigquery"
    }

    fn execute(&self, sql: &str, ctx: &QueryContext) -> Result<QueryResult> {
        let mut query = json!({ "query": sql, "useLegacySql": false });
        if !ctx.default_dataset.is_empty() {
            query["defaultDataset"] =
                json!({ "projectId": ctx.default_project, "datasetId": ctx.default_dataset });
        }
        let job = self.query_job("query", json!({ "query": query }), &ctx.job_labels, None)?;
        self.label_created_table(&job, &ctx.table_labels)?;
        let id = job["jobReference"]["jobId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let rows = self
            .runtime
            .block_on(self.client.results(&id))
            .map_err(|e| error(None, e))?;
        let fields: Vec<Field> = rows
            .fields
            .iter()
            .filter_map(|f| serde_json::from_value(f.clone()).ok())
            .collect();
        let (schema, batches) = to_batches(&fields, &rows.rows)?;
        let affected = rows.affected_rows.or_else(|| {
            job["statistics"]["query"]["numDmlAffectedRows"]
                .as_str()
                .and_then(|n| n.parse().ok())
        });
        Ok(QueryResult {
            schema,
            batches,
            affected_rows: affected,
        })
    }

    fn write_query(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        mode: WriteMode,
        sql: &str,
        ctx: &QueryContext,
    ) -> Result<u64> {
        let existing = self
            .runtime
            .block_on(
                self.client
                    .get_table(&table.project, &table.dataset, &table.table),
            )
            .map_err(|e| error(Some(table), e))?;
        if mode != WriteMode::CreateOrReplace && existing.is_none() {
            return Err(BqError::UnknownTable {
                table: table.to_string(),
                position: None,
                hint: format!(
                    "; {} needs an existing table: create it first (create_table, CREATE TABLE) or use write_tmp",
                    if mode == WriteMode::Truncate {
                        "write_truncate"
                    } else {
                        "write_append"
                    }
                ),
            });
        }
        let (write, create) = disposition(mode);
        let mut query = json!({
            "query": sql,
            "useLegacySql": false,
            "destinationTable": table_ref(table, partition),
            "writeDisposition": write,
            "createDisposition": create,
        });
        if !ctx.default_dataset.is_empty() {
            query["defaultDataset"] =
                json!({ "projectId": ctx.default_project, "datasetId": ctx.default_dataset });
        }
        let job = self.query_job(
            "write",
            json!({ "query": query }),
            &ctx.job_labels,
            Some(table),
        )?;
        // Rows written: the output stage of the query plan says it. Without
        // a plan (emulators), the size of the job's result, which for
        // WRITE_APPEND is the whole table after the write (for an appended
        // partition this counts the partition's earlier rows too).
        if let Some(n) = job["statistics"]["query"]["queryPlan"]
            .as_array()
            .and_then(|stages| stages.last())
            .and_then(|stage| stage["recordsWritten"].as_str())
            .and_then(|n| n.parse().ok())
        {
            return Ok(n);
        }
        let id = job["jobReference"]["jobId"].as_str().unwrap_or_default();
        let total = self
            .runtime
            .block_on(self.client.result_rows(id))
            .map_err(|e| error(Some(table), e))?;
        let before = match (mode, partition, &existing) {
            (WriteMode::Append, None, Some(t)) => count(&t["numRows"]),
            _ => 0,
        };
        Ok(total.saturating_sub(before))
    }

    fn dry_run(&self, sql: &str, _ctx: &QueryContext) -> Result<DryRun> {
        let plan = self
            .runtime
            .block_on(self.client.dry_run(sql))
            .map_err(|e| error(None, e))?;
        let fields = fields_of(&plan["statistics"]["query"]["schema"]);
        Ok(DryRun {
            schema: Arc::new(result_schema(&fields)?),
            bytes_processed: plan["statistics"]["query"]["totalBytesProcessed"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
    }

    fn table_exists(&self, table: &TableId) -> Result<bool> {
        Ok(self
            .runtime
            .block_on(
                self.client
                    .get_table(&table.project, &table.dataset, &table.table),
            )
            .map_err(|e| error(Some(table), e))?
            .is_some())
    }

    fn table_info(&self, table: &TableId) -> Result<TableInfo> {
        let t = self
            .runtime
            .block_on(
                self.client
                    .get_table(&table.project, &table.dataset, &table.table),
            )
            .map_err(|e| error(Some(table), e))?
            .ok_or_else(|| BqError::UnknownTable {
                table: table.to_string(),
                position: None,
                hint: String::new(),
            })?;
        let partitioning = match t["timePartitioning"]["field"].as_str() {
            _ if t["timePartitioning"].is_null() => None,
            Some(column) => Some(Partitioning::Column {
                column: column.to_string(),
            }),
            None => Some(Partitioning::Ingestion),
        };
        Ok(TableInfo {
            schema: fields_of(&t["schema"]),
            partitioning,
            labels: t["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            num_rows: count(&t["numRows"]),
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
        let mut resource = json!({
            "tableReference": table_ref(table, None),
            "schema": { "fields": schema },
            "labels": labels_map(labels),
        });
        match partitioning {
            Some(Partitioning::Ingestion) => {
                resource["timePartitioning"] = json!({ "type": "DAY" })
            }
            Some(Partitioning::Column { column }) => {
                resource["timePartitioning"] = json!({ "type": "DAY", "field": column })
            }
            None => {}
        }
        match self.runtime.block_on(self.client.insert_table(
            &table.project,
            &table.dataset,
            resource,
        )) {
            Ok(_) => Ok(()),
            Err(BigQueryError::AlreadyExists { .. }) if if_not_exists => Ok(()),
            Err(e) => Err(error(Some(table), e)),
        }
    }

    fn insert_rows(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        rows: &[Value],
    ) -> Result<u64> {
        // A load job is all or nothing (insertAll is not) and needs no streaming buffer.
        let mut ndjson = Vec::new();
        for row in rows {
            if !row.is_object() {
                return Err(BqError::Input {
                    table: table.to_string(),
                    cause: format!("a row must be a JSON object, not {row}"),
                });
            }
            serde_json::to_writer(&mut ndjson, row).map_err(|e| BqError::Engine(e.to_string()))?;
            ndjson.push(b'\n');
        }
        self.load_bytes(
            table,
            partition,
            ndjson,
            "NEWLINE_DELIMITED_JSON",
            WriteMode::Append,
        )?;
        Ok(rows.len() as u64)
    }

    fn load_file(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        path: &Path,
        format: FileFormat,
        mode: WriteMode,
    ) -> Result<u64> {
        let data = std::fs::read(path).map_err(|e| BqError::io(path, e))?;
        let source = match format {
            FileFormat::Parquet => "PARQUET",
            FileFormat::Csv => "CSV",
            FileFormat::NdJson => "NEWLINE_DELIMITED_JSON",
        };
        // A file BigQuery cannot read: say which file, for which table.
        self.load_bytes(table, partition, data, source, mode)
            .map_err(|e| e.loading(table, path))
    }

    fn write_batches(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        batches: Vec<RecordBatch>,
        mode: WriteMode,
    ) -> Result<u64> {
        let Some(first) = batches.first() else {
            return Ok(0);
        };
        let mut data = Vec::new();
        {
            let mut writer =
                datafusion::parquet::arrow::ArrowWriter::try_new(&mut data, first.schema(), None)
                    .map_err(|e| BqError::Engine(e.to_string()))?;
            for batch in &batches {
                writer
                    .write(batch)
                    .map_err(|e| BqError::Engine(e.to_string()))?;
            }
            writer.close().map_err(|e| BqError::Engine(e.to_string()))?;
        }
        self.load_bytes(table, partition, data, "PARQUET", mode)
    }

    fn delete_dataset(&self, project: &str, dataset: &str) -> Result<()> {
        self.runtime
            .block_on(self.client.delete_dataset(project, dataset))
            .map_err(|e| error(None, e))
    }

    fn ensure_dataset(
        &self,
        project: &str,
        dataset: &str,
        labels: &IndexMap<String, String>,
    ) -> Result<()> {
        self.runtime
            .block_on(
                self.client
                    .ensure_dataset(project, dataset, &labels_map(labels)),
            )
            .map_err(|e| error(None, e))
    }
}

impl BigQueryBackend {
    /// Puts the table labels on the table a `CREATE TABLE` job created
    /// (`statistics.query.ddlTargetTable`), as the local warehouse does.
    fn label_created_table(&self, job: &Value, labels: &IndexMap<String, String>) -> Result<()> {
        let stats = &job["statistics"]["query"];
        let created = matches!(
            stats["ddlOperationPerformed"].as_str(),
            Some("CREATE" | "REPLACE")
        );
        let target = &stats["ddlTargetTable"];
        let (Some(project), Some(dataset), Some(table)) = (
            target["projectId"].as_str(),
            target["datasetId"].as_str(),
            target["tableId"].as_str(),
        ) else {
            return Ok(());
        };
        if !created || labels.is_empty() {
            return Ok(());
        }
        self.runtime
            .block_on(self.client.patch_table(
                project,
                dataset,
                table,
                &json!({ "labels": labels_map(labels) }),
            ))
            .map(|_| ())
            .map_err(|e| error(None, e))
    }

    fn load_bytes(
        &self,
        table: &TableId,
        partition: Option<NaiveDate>,
        data: Vec<u8>,
        source_format: &str,
        mode: WriteMode,
    ) -> Result<u64> {
        let (write, create) = disposition(mode);
        let mut load = json!({
            "destinationTable": table_ref(table, partition),
            "sourceFormat": source_format,
            "writeDisposition": write,
            "createDisposition": create,
        });
        if source_format == "CSV" {
            load["skipLeadingRows"] = json!(1);
        }
        if mode != WriteMode::CreateOrReplace {
            load["autodetect"] = json!(false);
        }
        let job = self
            .runtime
            .block_on(
                self.client
                    .load(&new_job_id("load"), load, data, &Map::new()),
            )
            .map_err(|e| error(Some(table), e))?;
        Ok(job["statistics"]["load"]["outputRows"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_rows_become_arrow_batches() {
        let fields = vec![
            Field::new("name", "STRING"),
            Field::new("n", "INT64"),
            Field::new("x", "FLOAT64"),
            Field::new("ok", "BOOL"),
            Field::new("at", "TIMESTAMP"),
            Field::new("day", "DATE"),
            Field::new("tags", "STRING").mode("REPEATED"),
            Field::new("s", "STRUCT").fields(vec![Field::new("a", "INT64")]),
        ];
        let rows = vec![json!({"f": [
            {"v": "GDANSK"}, {"v": "3"}, {"v": "1.5"}, {"v": "true"},
            {"v": "1.5778368E9"}, {"v": "2020-01-01"},
            {"v": [{"v": "port"}, {"v": "pl"}]}, {"v": {"f": [{"v": "7"}]}}
        ]})];
        let (schema, batches) = to_batches(&fields, &rows).unwrap();
        assert_eq!(schema.fields().len(), 8);
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(
            text.contains("GDANSK") && text.contains("2020-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(
            text.contains("[port, pl]") && text.contains("{a: 7}"),
            "{text}"
        );
    }

    #[test]
    fn timestamps_come_as_int64_micros_or_float_seconds() {
        let field = Field::new("at", "TIMESTAMP");
        // 2020-01-01T01:30:00.000001Z: exact as microseconds.
        assert_eq!(
            cell(&field, &json!("1577842200000001"), false),
            json!(1_577_842_200_000_001_i64)
        );
        assert_eq!(
            cell(&field, &json!("1.5778422E9"), false),
            json!(1_577_842_200_000_000_i64)
        );
        assert_eq!(cell(&field, &json!("soon"), false), Value::Null);
    }

    #[test]
    fn ranges_come_as_text() {
        use arrow::array::{Array, AsArray};
        let field = Field::range("r", "DATE");
        let rows = vec![
            json!({"f": [{"v": "[2020-01-01, UNBOUNDED)"}]}),
            json!({"f": [{"v": null}]}),
        ];
        let (schema, batches) = to_batches(std::slice::from_ref(&field), &rows).unwrap();
        assert!(crate::range::element_of(schema.field(0).data_type()).is_some());
        let text = crate::range::to_text(batches[0].column(0));
        let text = text.as_string::<i32>();
        assert_eq!(text.value(0), "[2020-01-01, UNBOUNDED)");
        assert!(text.is_null(1));
        let ts = Field::range("r", "TIMESTAMP");
        assert_eq!(
            cell(
                &ts,
                &json!("[2020-01-01 00:00:00 UTC, 1577836801000000)"),
                false
            ),
            json!({"__bq_range_start": 1_577_836_800_000_000_i64, "__bq_range_end": 1_577_836_801_000_000_i64})
        );
        assert_eq!(cell(&ts, &json!("2020"), false), Value::Null);
    }

    #[test]
    fn tables_are_named_from_bigquery_messages() {
        assert_eq!(
            table_in("Not found: Table p-1:ds.t_2 was not found in location US").as_deref(),
            Some("p-1.ds.t_2")
        );
        assert_eq!(
            table_in("Already Exists: Table p:ds.t").as_deref(),
            Some("p.ds.t")
        );
        assert_eq!(table_in("Not found: Dataset p:ds"), None);
        let e = error(
            None,
            BigQueryError::Failed {
                context: "query".into(),
                message: "Not found: Table p:d.t was not found in location US".into(),
                reason: Some("notFound".into()),
                location: None,
            },
        );
        assert!(
            e.to_string().starts_with("table `p.d.t` does not exist"),
            "{e}"
        );
    }

    #[test]
    fn positions_come_from_bigquery_messages() {
        assert_eq!(
            position_in("Unrecognized name: nope at [1:8]"),
            Some(Position { line: 1, column: 8 })
        );
        assert_eq!(position_in("no position"), None);
    }
}

//! The conformance cases on a peer that answers BigQuery's REST API
//! (bqemulator): each statement is a query job (`jobs.insert`, `jobs.get`
//! until done, `getQueryResults`) with the file's dataset as the default
//! dataset, sent over plain HTTP on loopback (`bigflow_testkit::dataflow::http`:
//! one attempt per request, so an error of the peer comes back at once,
//! without the production client's retries). The rows come back as the
//! API's JSON and are turned into Arrow arrays of the types the local
//! warehouse gives for the same BigQuery types (INT64 → Int64, NUMERIC →
//! Decimal128(38, 9), DATETIME → Timestamp(µs), TIMESTAMP → Timestamp(µs, UTC),
//! BYTES decoded from base64, …), so both are compared by the same code
//! (`compare.rs`). The conversion is the test's own, not the crate's REST
//! backend (`BigQueryBackend`), so that a value that backend does not read
//! (NaN and infinities of FLOAT64, INTERVAL, RANGE) is not counted against the peer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bigflow_bigquery::QueryResult;
use bigflow_testkit::BigQueryEmulator;
use bigflow_testkit::dataflow::http;
use serde_json::{Value, json};

/// How long a job may take: less than the runner's deadline for a
/// statement, so a slow peer gives its own error rather than a hang.
const JOB_DEADLINE: Duration = Duration::from_secs(25);

/// A running bqemulator.
pub struct Peer {
    /// Taken (and so stopped) by [`Peer::stop`]: a statement past its
    /// deadline may still hold the `Peer` on its thread.
    emulator: Mutex<Option<BigQueryEmulator>>,
    endpoint: String,
    project: String,
    /// Numbers datasets and jobs.
    counter: AtomicUsize,
}

impl Peer {
    /// Starts bqemulator (`None` after the missing-peer rule when it is not installed).
    pub fn start() -> Option<Peer> {
        let emulator = BigQueryEmulator::start()?;
        Some(Peer {
            endpoint: emulator.endpoint.clone(),
            project: emulator.project.clone(),
            emulator: Mutex::new(Some(emulator)),
            counter: AtomicUsize::new(0),
        })
    }

    /// Stops the emulator.
    pub fn stop(&self) {
        let emulator = self
            .emulator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(emulator);
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// One REST call on `/bigquery/v2/projects/<project>/<path>`; a non-2xx
    /// answer is an `Err` with the API's message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let path = format!("/bigquery/v2/projects/{}/{path}", self.project);
        let bytes = body.map(|b| b.to_string().into_bytes());
        let answer = http(
            &self.endpoint,
            method,
            &path,
            &[("Content-Type", "application/json")],
            bytes.as_deref(),
        )?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        let message = answer.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| answer.body.to_string());
        Err(format!("HTTP {}: {message}", answer.status))
    }

    /// A new empty dataset named after `hint`.
    pub fn new_dataset(&self, hint: &str) -> Result<String, String> {
        let clean: String = hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(60)
            .collect();
        let name = format!("c{}_{clean}", self.next());
        let reference = json!({ "projectId": self.project, "datasetId": name });
        self.call(
            "POST",
            "datasets",
            Some(&json!({ "datasetReference": reference })),
        )
        .map_err(|e| format!("creating dataset {name}: {e}"))?;
        Ok(name)
    }

    /// Deletes a dataset and its tables.
    pub fn drop_dataset(&self, name: &str) {
        let _ = self.call(
            "DELETE",
            &format!("datasets/{name}?deleteContents=true"),
            None,
        );
    }

    /// Runs one statement with `dataset` as the default dataset. `Err` is
    /// the peer's error message.
    pub fn execute(&self, sql: &str, dataset: &str) -> Result<QueryResult, String> {
        let id = format!("conformance_{}", self.next());
        let project = &self.project;
        let job = json!({
            "jobReference": { "projectId": project, "jobId": id },
            "configuration": { "query": {
                "query": sql,
                "useLegacySql": false,
                "defaultDataset": { "projectId": project, "datasetId": dataset },
            }},
        });
        let mut job = self.call("POST", "jobs", Some(&job))?;
        let started = Instant::now();
        while job["status"]["state"] != "DONE" {
            if started.elapsed() > JOB_DEADLINE {
                return Err(format!("job {id} not done within {JOB_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
            job = self.call("GET", &format!("jobs/{id}"), None)?;
        }
        let error = &job["status"]["errorResult"];
        if !error.is_null() {
            return Err(error["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string()));
        }
        let mut fields: Vec<Value> = Vec::new();
        let mut rows: Vec<Value> = Vec::new();
        let mut affected = job["statistics"]["query"]["numDmlAffectedRows"]
            .as_str()
            .and_then(|n| n.parse::<u64>().ok());
        let mut token: Option<String> = None;
        loop {
            let mut path =
                format!("queries/{id}?maxResults=100000&formatOptions.useInt64Timestamp=true");
            if let Some(t) = &token {
                path.push_str(&format!("&pageToken={t}"));
            }
            let page = self.call("GET", &path, None)?;
            if page["jobComplete"] == false {
                if started.elapsed() > JOB_DEADLINE {
                    return Err(format!(
                        "results of job {id} not ready within {JOB_DEADLINE:?}"
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if fields.is_empty() {
                fields = page["schema"]["fields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            if let Some(n) = page["numDmlAffectedRows"]
                .as_str()
                .and_then(|n| n.parse().ok())
            {
                affected = Some(n);
            }
            rows.extend(page["rows"].as_array().cloned().unwrap_or_default());
            match page["pageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        let (schema, batches) = to_batches(&fields, &rows)
            .map_err(|e| format!("the peer's rows could not be read: {e}"))?;
        Ok(QueryResult {
            schema,
            batches,
            affected_rows: affected,
        })
    }
}

/// REST rows (`{"f": [{"v": …}]}`) as one Arrow batch (none when there are no rows).
fn to_batches(fields: &[Value], rows: &[Value]) -> Result<(Arc<Schema>, Vec<RecordBatch>), String> {
    let mut arrow_fields = Vec::new();
    let mut columns = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let cells: Vec<Value> = rows.iter().map(|r| r["f"][i]["v"].clone()).collect();
        let (f, a) = column(field, &cells)?;
        arrow_fields.push(f);
        columns.push(a);
    }
    let schema = Arc::new(Schema::new(arrow_fields));
    if rows.is_empty() {
        return Ok((schema, Vec::new()));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    Ok((schema, vec![batch]))
}

/// One column of REST cells.
fn column(field: &Value, cells: &[Value]) -> Result<(Field, ArrayRef), String> {
    let name = field["name"].as_str().unwrap_or_default();
    let mode = field["mode"].as_str().unwrap_or("NULLABLE");
    if mode.eq_ignore_ascii_case("REPEATED") {
        let mut offsets = vec![0i32];
        let mut items = Vec::new();
        for c in cells {
            for item in c.as_array().into_iter().flatten() {
                items.push(item["v"].clone());
            }
            offsets.push(items.len() as i32);
        }
        let mut element = field.clone();
        element["mode"] = json!("NULLABLE");
        element["name"] = json!("item");
        let (f, child) = column(&element, &items)?;
        let list = ListArray::try_new(Arc::new(f), OffsetBuffer::new(offsets.into()), child, None)
            .map_err(|e| e.to_string())?;
        return Ok((
            Field::new(name, list.data_type().clone(), true),
            Arc::new(list),
        ));
    }
    let ty = field["type"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let array: ArrayRef = if matches!(ty.as_str(), "RECORD" | "STRUCT") {
        let subs = field["fields"].as_array().cloned().unwrap_or_default();
        let nulls = NullBuffer::from(cells.iter().map(|c| !c.is_null()).collect::<Vec<bool>>());
        if subs.is_empty() {
            Arc::new(StructArray::new_empty_fields(cells.len(), Some(nulls)))
        } else {
            let mut fields = Vec::new();
            let mut arrays = Vec::new();
            for (i, sub) in subs.iter().enumerate() {
                let values: Vec<Value> = cells.iter().map(|c| c["f"][i]["v"].clone()).collect();
                let (f, a) = column(sub, &values)?;
                fields.push(f);
                arrays.push(a);
            }
            Arc::new(
                StructArray::try_new(fields.into(), arrays, Some(nulls))
                    .map_err(|e| e.to_string())?,
            )
        }
    } else {
        scalar(&ty, cells)?
    };
    Ok((Field::new(name, array.data_type().clone(), true), array))
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "infinity" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-infinity" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|e| format!("FLOAT64 {s:?}: {e}")),
    }
}

fn base64(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return Err(format!("BYTES {s:?} is not base64")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn each<T>(
    cells: &[Value],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<Option<T>>, String> {
    cells
        .iter()
        .map(|c| match c {
            Value::Null => Ok(None),
            Value::String(s) => parse(s).map(Some),
            other => parse(&other.to_string()).map(Some),
        })
        .collect()
}

/// Text cells cast by Arrow (as the local warehouse reads text of that type).
fn cast_text(cells: &[Value], to: &DataType) -> Result<ArrayRef, String> {
    let text = StringArray::from(each(cells, |s| Ok(s.to_string()))?);
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(&text, to, &options).map_err(|e| format!("{to}: {e}"))
}

fn scalar(ty: &str, cells: &[Value]) -> Result<ArrayRef, String> {
    Ok(match ty {
        "INTEGER" | "INT64" => Arc::new(Int64Array::from(each(cells, |s| {
            s.parse::<i64>().map_err(|e| format!("INT64 {s:?}: {e}"))
        })?)),
        "FLOAT" | "FLOAT64" => Arc::new(Float64Array::from(each(cells, parse_float)?)),
        "BOOLEAN" | "BOOL" => Arc::new(BooleanArray::from(each(cells, |s| {
            Ok(s.eq_ignore_ascii_case("true"))
        })?)),
        "BYTES" => {
            let bytes = each(cells, base64)?;
            Arc::new(BinaryArray::from(
                bytes.iter().map(|b| b.as_deref()).collect::<Vec<_>>(),
            ))
        }
        "DATE" => cast_text(cells, &DataType::Date32)?,
        "DATETIME" => cast_text(cells, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
        "TIME" => cast_text(cells, &DataType::Time64(TimeUnit::Microsecond))?,
        "NUMERIC" => cast_text(cells, &DataType::Decimal128(38, 9))?,
        "BIGNUMERIC" => cast_text(cells, &DataType::Decimal256(76, 38))?,
        "TIMESTAMP" => {
            // Int64 microseconds (asked for with `useInt64Timestamp`), or
            // float seconds ("1.5778422E9").
            let micros = each(cells, |s| {
                if s.contains(['.', 'e', 'E']) {
                    parse_float(s).map(|f| (f * 1e6).round() as i64)
                } else {
                    s.parse::<i64>()
                        .map_err(|e| format!("TIMESTAMP {s:?}: {e}"))
                }
            })?;
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
        }
        // STRING, JSON, GEOGRAPHY; INTERVAL and RANGE as the API's text.
        _ => Arc::new(StringArray::from(each(cells, |s| Ok(s.to_string()))?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rest_rows() {
        let fields = vec![
            json!({"name": "i", "type": "INTEGER", "mode": "NULLABLE"}),
            json!({"name": "b", "type": "BYTES"}),
            json!({"name": "a", "type": "FLOAT", "mode": "REPEATED"}),
            json!({"name": "s", "type": "RECORD", "fields": [{"name": "x", "type": "NUMERIC"}, {"name": "t", "type": "TIMESTAMP"}]}),
        ];
        let rows = vec![
            json!({"f": [{"v": "1"}, {"v": "QUI="}, {"v": [{"v": "NaN"}, {"v": "1.5"}]}, {"v": {"f": [{"v": "1.25"}, {"v": "1000000"}]}}]}),
            json!({"f": [{"v": null}, {"v": null}, {"v": []}, {"v": null}]}),
        ];
        let (schema, batches) = to_batches(&fields, &rows).unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Binary);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let shown: Vec<String> = (0..4)
            .map(|c| arrow::util::display::array_value_to_string(b.column(c), 0).unwrap())
            .collect();
        assert_eq!(
            shown,
            [
                "1",
                "4142",
                "[NaN, 1.5]",
                "{x: 1.250000000, t: 1970-01-01T00:00:01Z}"
            ]
        );
        assert!(b.column(0).is_null(1) && b.column(3).is_null(1));
    }
}

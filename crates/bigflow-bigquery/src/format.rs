//! Printing query results: a text table, JSON rows or CSV.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use serde_json::{Map, Value};

use crate::backend::QueryResult;
use crate::error::{BqError, Result};

/// An output format of `warehouse query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A boxed text table.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format '{other}' (table, json, csv)")),
        }
    }
}

/// Displays a result as a text table.
pub struct Table<'a>(pub &'a QueryResult);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RANGE values as BigQuery writes them: `[2020-01-01, UNBOUNDED)`.
        let batches: Vec<RecordBatch> = if self.0.batches.is_empty() {
            vec![RecordBatch::new_empty(Arc::new(crate::range::text_schema(
                &self.0.schema,
            )))]
        } else {
            self.0
                .batches
                .iter()
                .map(crate::range::ranges_as_text)
                .collect()
        };
        match arrow::util::pretty::pretty_format_batches(&batches) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// Rows as JSON objects (NULLs kept as `null`, column order kept; a
/// RANGE as BigQuery's REST API writes it, the text `[start, end)`).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            w.write(&crate::range::ranges_as_text(b))
                .map_err(|e| BqError::Engine(e.to_string()))?;
        }
        w.finish().map_err(|e| BqError::Engine(e.to_string()))?;
    }
    if buf.is_empty() {
        return Ok(vec![]);
    }
    serde_json::from_slice(&buf).map_err(|e| BqError::Engine(e.to_string()))
}

/// The result in `format`.
pub fn render(result: &QueryResult, format: Format) -> Result<String> {
    Ok(match format {
        Format::Table => format!("{}\n", Table(result)),
        Format::Json => {
            let rows = to_json_rows(&result.batches)?;
            let mut s =
                serde_json::to_string_pretty(&rows).map_err(|e| BqError::Engine(e.to_string()))?;
            s.push('\n');
            s
        }
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                if result.batches.is_empty() {
                    w.write(&RecordBatch::new_empty(Arc::new(
                        crate::range::text_schema(&result.schema),
                    )))
                    .map_err(|e| BqError::Engine(e.to_string()))?;
                }
                for b in &result.batches {
                    w.write(&crate::range::ranges_as_text(b))
                        .map_err(|e| BqError::Engine(e.to_string()))?;
                }
            }
            String::from_utf8_lossy(&buf).to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn result() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
            ],
        )
        .unwrap();
        QueryResult {
            schema,
            batches: vec![batch],
            affected_rows: None,
        }
    }

    #[test]
    fn three_formats() {
        let r = result();
        assert_eq!(render(&r, Format::Csv).unwrap(), "name,n\n\"a,b\",1\n,2\n");
        let json: serde_json::Value =
            serde_json::from_str(&render(&r, Format::Json).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"name": "a,b", "n": 1}, {"name": null, "n": 2}])
        );
        let table = render(&r, Format::Table).unwrap();
        assert!(
            table.contains("| name | n |") && table.contains("| a,b  | 1 |"),
            "{table}"
        );
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert!(
            "xml"
                .parse::<Format>()
                .unwrap_err()
                .contains("table, json, csv")
        );
    }

    #[test]
    fn ranges_are_written_as_bigquery_writes_them() {
        use crate::range::{Element, build};
        let ranges = build(Element::Date, &[Some((Some(18262), None)), None]);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "r",
            ranges.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![ranges]).unwrap();
        let r = QueryResult {
            schema,
            batches: vec![batch],
            affected_rows: None,
        };
        let json: serde_json::Value =
            serde_json::from_str(&render(&r, Format::Json).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"r": "[2020-01-01, UNBOUNDED)"}, {"r": null}])
        );
        assert_eq!(
            render(&r, Format::Csv).unwrap(),
            "r\n\"[2020-01-01, UNBOUNDED)\"\n\"\"\n"
        );
        assert!(
            render(&r, Format::Table)
                .unwrap()
                .contains("[2020-01-01, UNBOUNDED)")
        );
    }

    #[test]
    fn empty_results_keep_their_header() {
        let mut r = result();
        r.batches.clear();
        assert_eq!(render(&r, Format::Csv).unwrap(), "name,n\n");
        assert_eq!(render(&r, Format::Json).unwrap(), "[]\n");
    }
}

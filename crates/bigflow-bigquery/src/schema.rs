//! BigQuery table schemas and their Arrow form.
//!
//! [`Field`] has the shape of BigQuery's JSON schema (`name`, `type`, `mode`,
//! `fields`), so schema files written for `bq mk` load as they are. Each
//! BigQuery type maps to one Arrow type in the local warehouse:
//!
//! | BigQuery | Arrow |
//! |---|---|
//! | STRING, JSON | Utf8 |
//! | BYTES | Binary |
//! | INT64 (INTEGER) | Int64 |
//! | FLOAT64 (FLOAT) | Float64 |
//! | NUMERIC | Decimal128(38, 9) |
//! | BIGNUMERIC | Decimal256(76, 38) |
//! | BOOL (BOOLEAN) | Boolean |
//! | DATE | Date32 |
//! | DATETIME | Timestamp(µs) |
//! | TIME | Time64(µs) |
//! | TIMESTAMP | Timestamp(µs, UTC) |
//! | STRUCT (RECORD) | Struct |
//! | RANGE<T> (`rangeElementType`) | Struct of two T (see [`crate::range`]) |
//! | mode REPEATED / ARRAY<T> | List |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{BqError, Result};

/// A column of a BigQuery schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// BigQuery type name: STRING, INT64, … (legacy names INTEGER, FLOAT, BOOLEAN, RECORD accepted).
    #[serde(rename = "type")]
    pub field_type: String,
    /// NULLABLE (default), REQUIRED or REPEATED.
    #[serde(default = "nullable", skip_serializing_if = "is_nullable")]
    pub mode: String,
    /// Sub-fields of a STRUCT/RECORD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The element type of a RANGE column (`{"type": "DATE"}`), as
    /// BigQuery's REST schema writes it.
    #[serde(
        default,
        rename = "rangeElementType",
        skip_serializing_if = "Option::is_none"
    )]
    pub range_element_type: Option<RangeElementType>,
}

/// The element type of a RANGE column: DATE, DATETIME or TIMESTAMP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeElementType {
    /// DATE, DATETIME or TIMESTAMP.
    #[serde(rename = "type")]
    pub element_type: String,
}

fn nullable() -> String {
    "NULLABLE".into()
}

fn is_nullable(m: &String) -> bool {
    m == "NULLABLE"
}

impl Field {
    /// A NULLABLE column.
    pub fn new(name: &str, field_type: &str) -> Field {
        Field {
            name: name.to_string(),
            field_type: field_type.to_ascii_uppercase(),
            mode: nullable(),
            fields: Vec::new(),
            description: None,
            range_element_type: None,
        }
    }

    /// A `RANGE<element>` column (element: DATE, DATETIME or TIMESTAMP).
    pub fn range(name: &str, element: &str) -> Field {
        let mut f = Field::new(name, "RANGE");
        f.range_element_type = Some(RangeElementType {
            element_type: element.to_ascii_uppercase(),
        });
        f
    }

    /// The type as BigQuery's SQL writes it: `INT64`, `RANGE<DATE>`, …
    pub fn type_name(&self) -> String {
        match &self.range_element_type {
            Some(e) if self.field_type.eq_ignore_ascii_case("RANGE") => {
                format!("RANGE<{}>", e.element_type)
            }
            _ => self.field_type.clone(),
        }
    }

    /// With mode REQUIRED or REPEATED.
    pub fn mode(mut self, mode: &str) -> Field {
        self.mode = mode.to_ascii_uppercase();
        self
    }

    /// With sub-fields (for STRUCT).
    pub fn fields(mut self, fields: Vec<Field>) -> Field {
        self.fields = fields;
        self
    }
}

/// The Arrow type of a (non-repeated) BigQuery type.
fn scalar_type(field: &Field) -> Result<DataType> {
    let bad = |cause: String| BqError::Config(format!("column `{}`: {cause}", field.name));
    Ok(match field.field_type.to_ascii_uppercase().as_str() {
        "STRING" | "JSON" => DataType::Utf8,
        "BYTES" => DataType::Binary,
        "INT64" | "INTEGER" | "INT" | "SMALLINT" | "BIGINT" | "TINYINT" | "BYTEINT" => {
            DataType::Int64
        }
        "FLOAT64" | "FLOAT" => DataType::Float64,
        "NUMERIC" | "DECIMAL" => DataType::Decimal128(38, 9),
        "BIGNUMERIC" | "BIGDECIMAL" => DataType::Decimal256(76, 38),
        "BOOL" | "BOOLEAN" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "DATETIME" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIME" => DataType::Time64(TimeUnit::Microsecond),
        "TIMESTAMP" => timestamp_type(),
        "RANGE" => {
            let element = field
                .range_element_type
                .as_ref()
                .and_then(|e| crate::range::Element::from_name(&e.element_type))
                .ok_or_else(|| {
                    bad("a RANGE needs rangeElementType DATE, DATETIME or TIMESTAMP".into())
                })?;
            element.range_type()
        }
        "STRUCT" | "RECORD" => {
            if field.fields.is_empty() {
                return Err(bad("a STRUCT needs sub-fields".into()));
            }
            DataType::Struct(Fields::from(
                field
                    .fields
                    .iter()
                    .map(to_arrow_field)
                    .collect::<Result<Vec<_>>>()?,
            ))
        }
        other => {
            return Err(bad(format!(
                "unknown BigQuery type '{other}' (STRING, BYTES, INT64, FLOAT64, NUMERIC, BIGNUMERIC, BOOL, DATE, DATETIME, TIME, TIMESTAMP, STRUCT, JSON, RANGE)"
            )));
        }
    })
}

/// Arrow's form of BigQuery's TIMESTAMP.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow field of a BigQuery column.
pub fn to_arrow_field(field: &Field) -> Result<ArrowField> {
    let base = scalar_type(field)?;
    Ok(match field.mode.to_ascii_uppercase().as_str() {
        "NULLABLE" | "" => ArrowField::new(&field.name, base, true),
        "REQUIRED" => ArrowField::new(&field.name, base, false),
        "REPEATED" => ArrowField::new(
            &field.name,
            DataType::List(Arc::new(ArrowField::new("item", base, true))),
            true,
        ),
        other => {
            return Err(BqError::Config(format!(
                "column `{}`: unknown mode '{other}' (NULLABLE, REQUIRED, REPEATED)",
                field.name
            )));
        }
    })
}

/// The Arrow schema of a BigQuery schema; column names must be unique.
pub fn to_arrow_schema(fields: &[Field]) -> Result<Schema> {
    let mut seen = std::collections::HashSet::new();
    for f in fields {
        if !seen.insert(f.name.to_ascii_lowercase()) {
            return Err(BqError::Config(format!(
                "column `{}` is defined twice",
                f.name
            )));
        }
    }
    Ok(Schema::new(
        fields
            .iter()
            .map(to_arrow_field)
            .collect::<Result<Vec<_>>>()?,
    ))
}

/// The BigQuery type name of an Arrow type (for schemas made from query results).
pub fn bq_type_of(data_type: &DataType) -> Option<(&'static str, Vec<Field>, bool)> {
    // (type, sub-fields, repeated)
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("STRING", vec![], false),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ("BYTES", vec![], false),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ("INT64", vec![], false),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => ("FLOAT64", vec![], false),
        DataType::Decimal128(..) | DataType::Decimal32(..) | DataType::Decimal64(..) => {
            ("NUMERIC", vec![], false)
        }
        DataType::Decimal256(..) => ("BIGNUMERIC", vec![], false),
        DataType::Boolean => ("BOOL", vec![], false),
        DataType::Date32 | DataType::Date64 => ("DATE", vec![], false),
        DataType::Timestamp(_, None) => ("DATETIME", vec![], false),
        DataType::Timestamp(_, Some(_)) => ("TIMESTAMP", vec![], false),
        DataType::Time32(_) | DataType::Time64(_) => ("TIME", vec![], false),
        DataType::Null => ("STRING", vec![], false),
        DataType::Struct(_) if crate::range::element_of(data_type).is_some() => {
            ("RANGE", vec![], false)
        }
        DataType::Struct(fields) => {
            let sub = fields
                .iter()
                .map(|f| from_arrow_field(f))
                .collect::<Option<Vec<_>>>()?;
            ("STRUCT", sub, false)
        }
        DataType::List(inner) | DataType::LargeList(inner) | DataType::ListView(inner) => {
            let (t, sub, repeated) = bq_type_of(inner.data_type())?;
            if repeated {
                return None; // BigQuery has no arrays of arrays
            }
            (t, sub, true)
        }
        _ => return None,
    })
}

/// The BigQuery column of an Arrow field, `None` for types BigQuery lacks.
pub fn from_arrow_field(field: &ArrowField) -> Option<Field> {
    let (t, sub, repeated) = bq_type_of(field.data_type())?;
    let mode = if repeated {
        "REPEATED"
    } else if field.is_nullable() {
        "NULLABLE"
    } else {
        "REQUIRED"
    };
    let mut f = Field::new(field.name(), t).mode(mode).fields(sub);
    let mut inner = field.data_type();
    while let DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) = inner {
        inner = item.data_type();
    }
    if let Some(e) = crate::range::element_of(inner) {
        f.range_element_type = Some(RangeElementType {
            element_type: e.name().to_string(),
        });
    }
    Some(f)
}

/// The BigQuery schema of an Arrow schema (query results → `write_tmp`).
pub fn from_arrow_schema(schema: &Schema) -> Result<Vec<Field>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            from_arrow_field(f).ok_or_else(|| BqError::Unsupported {
                construct: format!(
                    "column `{}` of type {} has no BigQuery type",
                    f.name(),
                    f.data_type()
                ),
                position: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schema_round_trip() {
        let json = r#"[{"name":"id","type":"INTEGER","mode":"REQUIRED"},
            {"name":"tags","type":"STRING","mode":"REPEATED"},
            {"name":"s","type":"RECORD","fields":[{"name":"a","type":"FLOAT"}]}]"#;
        let fields: Vec<Field> = serde_json::from_str(json).unwrap();
        let schema = to_arrow_schema(&fields).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert!(!schema.field(0).is_nullable());
        assert!(matches!(schema.field(1).data_type(), DataType::List(_)));
        let back = from_arrow_schema(&schema).unwrap();
        assert_eq!(back[0].field_type, "INT64");
        assert_eq!(back[0].mode, "REQUIRED");
        assert_eq!(back[1].mode, "REPEATED");
        assert_eq!(back[2].fields[0].field_type, "FLOAT64");
    }

    #[test]
    fn range_columns_round_trip() {
        let json = r#"[{"name":"r","type":"RANGE","rangeElementType":{"type":"DATE"}},
            {"name":"rs","type":"RANGE","mode":"REPEATED","rangeElementType":{"type":"TIMESTAMP"}}]"#;
        let fields: Vec<Field> = serde_json::from_str(json).unwrap();
        assert_eq!(fields[0], Field::range("r", "DATE"));
        assert_eq!(fields[0].type_name(), "RANGE<DATE>");
        let schema = to_arrow_schema(&fields).unwrap();
        assert_eq!(
            crate::range::element_of(schema.field(0).data_type()),
            Some(crate::range::Element::Date)
        );
        let back = from_arrow_schema(&schema).unwrap();
        assert_eq!(back, fields);
        assert_eq!(
            serde_json::to_value(&back[0]).unwrap(),
            serde_json::json!({"name": "r", "type": "RANGE", "rangeElementType": {"type": "DATE"}})
        );
        let e = to_arrow_schema(&[Field::new("r", "RANGE")]).unwrap_err();
        assert!(e.to_string().contains("rangeElementType"), "{e}");
    }

    #[test]
    fn bad_schemas_are_named() {
        let e = to_arrow_schema(&[Field::new("x", "TEXT")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("column `x`: unknown BigQuery type 'TEXT'"),
            "{e}"
        );
        let e =
            to_arrow_schema(&[Field::new("x", "INT64"), Field::new("X", "STRING")]).unwrap_err();
        assert!(e.to_string().contains("defined twice"), "{e}");
        let e = to_arrow_schema(&[Field::new("s", "STRUCT")]).unwrap_err();
        assert!(e.to_string().contains("needs sub-fields"), "{e}");
    }
}

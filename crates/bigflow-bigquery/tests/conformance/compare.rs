//! Comparing a result (Arrow) with an expected value as BigQuery would:
//! types, NULLs, floating point within a tolerance, row order only where
//! the expected value says it is known.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::array_value_to_string;
use chrono::{DateTime, NaiveDateTime, NaiveTime};

use super::format::{Ty, V};

/// Whether the Arrow type is the expected GoogleSQL type; the mismatch otherwise.
pub fn type_matches(ty: &Ty, dt: &DataType) -> Result<(), String> {
    let ok = match (ty, dt) {
        (_, DataType::Null) => true,
        (Ty::Array(elem), DataType::List(f) | DataType::LargeList(f)) => match elem {
            Some(e) => return type_matches(e, f.data_type()),
            None => true,
        },
        (Ty::Struct(fields), DataType::Struct(actual)) => {
            if fields.len() != actual.len() {
                return Err(format!(
                    "expected a STRUCT of {} fields, got {} fields",
                    fields.len(),
                    actual.len()
                ));
            }
            for ((_, t), f) in fields.iter().zip(actual.iter()) {
                type_matches(t, f.data_type())?;
            }
            true
        }
        (Ty::Other(s), dt) if s.starts_with("RANGE<") => bigflow_bigquery::range::element_of(dt)
            .is_some_and(|e| *s == format!("RANGE<{}>", e.name())),
        (Ty::Scalar(s), dt) => match s.as_str() {
            "INT64" => dt == &DataType::Int64,
            "DOUBLE" | "FLOAT64" => dt == &DataType::Float64,
            "STRING" => matches!(
                dt,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            "JSON" => matches!(
                dt,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            "BYTES" => matches!(
                dt,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            ),
            "BOOL" => dt == &DataType::Boolean,
            "DATE" => dt == &DataType::Date32,
            "DATETIME" => matches!(dt, DataType::Timestamp(_, None)),
            "TIMESTAMP" => matches!(dt, DataType::Timestamp(_, Some(_))),
            "TIME" => matches!(dt, DataType::Time64(_) | DataType::Time32(_)),
            "NUMERIC" => matches!(dt, DataType::Decimal128(38, 9)),
            "BIGNUMERIC" => matches!(dt, DataType::Decimal256(..)),
            "INTERVAL" => matches!(dt, DataType::Interval(_)),
            _ => false,
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("type: expected {}, got {dt}", show_ty(ty)))
    }
}

fn show_ty(ty: &Ty) -> String {
    match ty {
        Ty::Scalar(s) | Ty::Other(s) => s.clone(),
        Ty::Array(None) => "ARRAY".into(),
        Ty::Array(Some(t)) => format!("ARRAY<{}>", show_ty(t)),
        Ty::Struct(f) => format!(
            "STRUCT<{}>",
            f.iter()
                .map(|(_, t)| show_ty(t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Compares a query's rows with the expected `ARRAY<STRUCT<…>>` value.
pub fn compare_rows(ty: &Ty, expected: &V, batches: &[RecordBatch]) -> Result<(), String> {
    let (Ty::Array(Some(row_ty)), V::Array(_, ordered, rows)) = (ty, expected) else {
        return Err(format!("unexpected expected value {expected:?}"));
    };
    let Ty::Struct(fields) = &**row_ty else {
        return Err("expected rows that are not structs".into());
    };
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None if rows.is_empty() => return Ok(()),
        None => return Err(format!("no rows, expected {}", rows.len())),
    };
    if schema.fields().len() != fields.len() {
        return Err(format!(
            "{} columns, expected {}",
            schema.fields().len(),
            fields.len()
        ));
    }
    for ((_, t), f) in fields.iter().zip(schema.fields()) {
        type_matches(t, f.data_type()).map_err(|e| format!("column {}: {e}", f.name()))?;
    }
    let actual: Vec<(&RecordBatch, usize)> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |r| (b, r)))
        .collect();
    if actual.len() != rows.len() {
        return Err(format!("{} rows, expected {}", actual.len(), rows.len()));
    }
    let row_matches = |exp: &V, (b, r): (&RecordBatch, usize)| -> Result<(), String> {
        let V::Struct(_, values) = exp else {
            return Err(format!("expected row {exp:?} is not a struct"));
        };
        for (i, ((_, t), v)) in fields.iter().zip(values).enumerate() {
            compare_value(t, v, b.column(i), r)
                .map_err(|e| format!("column {}: {e}", b.schema().field(i).name()))?;
        }
        Ok(())
    };
    if *ordered {
        for (i, (exp, act)) in rows.iter().zip(actual.iter()).enumerate() {
            row_matches(exp, *act).map_err(|e| format!("row {i}: {e}"))?;
        }
        return Ok(());
    }
    let mut used = vec![false; actual.len()];
    for (i, exp) in rows.iter().enumerate() {
        let mut first_error = None;
        let found = actual.iter().enumerate().position(|(j, act)| {
            if used[j] {
                return false;
            }
            match row_matches(exp, *act) {
                Ok(()) => true,
                Err(e) => {
                    first_error.get_or_insert(e);
                    false
                }
            }
        });
        match found {
            Some(j) => used[j] = true,
            None => {
                return Err(format!(
                    "expected row {i} {} not found (e.g. {})",
                    show_value(exp),
                    first_error.unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn show_value(v: &V) -> String {
    let s = format!("{v:?}");
    if s.len() > 200 {
        format!("{}…", &s[..s.floor_char_boundary(200)])
    } else {
        s
    }
}

fn is_null(array: &dyn Array, row: usize) -> bool {
    array.data_type() == &DataType::Null || array.is_null(row)
}

thread_local! {
    static EMPTY_ARRAY_IS_NULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// On this thread, whether an empty array counts as an expected NULL array:
/// BigQuery's REST API returns a NULL array as `[]`, so a peer reached
/// through it cannot show the difference.
pub fn set_empty_array_is_null(on: bool) {
    EMPTY_ARRAY_IS_NULL.with(|c| c.set(on));
}

fn empty_list(array: &ArrayRef, row: usize) -> bool {
    match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(row).is_empty(),
        DataType::LargeList(_) => array.as_list::<i64>().value(row).is_empty(),
        _ => false,
    }
}

/// Compares one value of `array` at `row` with the expected one.
pub fn compare_value(ty: &Ty, expected: &V, array: &ArrayRef, row: usize) -> Result<(), String> {
    let null = is_null(array.as_ref(), row);
    match (expected, null) {
        (V::Null, true) => return Ok(()),
        (V::Null, false) if EMPTY_ARRAY_IS_NULL.with(|c| c.get()) && empty_list(array, row) => {
            return Ok(());
        }
        (V::Null, false) => return Err(format!("expected NULL, got {}", shown(array, row))),
        (_, true) => return Err(format!("expected {}, got NULL", show_value(expected))),
        _ => {}
    }
    match expected {
        V::Array(given, ordered, items) => {
            let list: ArrayRef = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                DataType::LargeList(_) => array.as_list::<i64>().value(row),
                other => return Err(format!("expected an ARRAY, got {other}")),
            };
            let elem_ty = match (given, ty) {
                (Some(Ty::Array(Some(t))), _) | (_, Ty::Array(Some(t))) => (**t).clone(),
                _ => Ty::Other("?".into()),
            };
            if list.len() != items.len() {
                return Err(format!(
                    "array of {} elements, expected {}",
                    list.len(),
                    items.len()
                ));
            }
            if *ordered {
                for (i, item) in items.iter().enumerate() {
                    compare_value(&elem_ty, item, &list, i)
                        .map_err(|e| format!("element {i}: {e}"))?;
                }
            } else {
                let mut used = vec![false; list.len()];
                for item in items {
                    let j = (0..list.len())
                        .find(|&j| !used[j] && compare_value(&elem_ty, item, &list, j).is_ok())
                        .ok_or_else(|| format!("array element {} not found", show_value(item)))?;
                    used[j] = true;
                }
            }
            Ok(())
        }
        V::Struct(given, items) => {
            let DataType::Struct(_) = array.data_type() else {
                return Err(format!("expected a STRUCT, got {}", array.data_type()));
            };
            let st = array.as_struct();
            if st.num_columns() != items.len() {
                return Err(format!(
                    "STRUCT of {} fields, expected {}",
                    st.num_columns(),
                    items.len()
                ));
            }
            let fields = match (given, ty) {
                (Some(Ty::Struct(f)), _) | (_, Ty::Struct(f)) => f.clone(),
                _ => Vec::new(),
            };
            for (i, item) in items.iter().enumerate() {
                let t = fields
                    .get(i)
                    .map(|(_, t)| t.clone())
                    .unwrap_or(Ty::Other("?".into()));
                compare_value(&t, item, st.column(i), row)
                    .map_err(|e| format!("field {i}: {e}"))?;
            }
            Ok(())
        }
        V::Str(s) => match array.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let got = array_value_to_string(array, row).map_err(|e| e.to_string())?;
                if &got == s {
                    Ok(())
                } else {
                    Err(format!("expected {s:?}, got {got:?}"))
                }
            }
            other => Err(format!("expected a STRING, got {other}")),
        },
        V::Bytes(b) => {
            let got: &[u8] = match array.data_type() {
                DataType::Binary => array.as_binary::<i32>().value(row),
                DataType::LargeBinary => array.as_binary::<i64>().value(row),
                DataType::BinaryView => array.as_binary_view().value(row),
                other => return Err(format!("expected BYTES, got {other}")),
            };
            if got == b.as_slice() {
                Ok(())
            } else {
                Err(format!("expected bytes {b:?}, got {got:?}"))
            }
        }
        V::Raw(text) if matches!(ty, Ty::Other(s) if s.starts_with("RANGE<")) => {
            compare_range(text, array, row)
        }
        V::Raw(text) => compare_scalar(ty, text, array, row),
        V::Null => unreachable!("handled above"),
    }
}

/// A RANGE `[start, end)` (NULL for an unbounded side) against row `row`
/// of a RANGE array: each bound as a value of the element type.
fn compare_range(text: &str, array: &ArrayRef, row: usize) -> Result<(), String> {
    use bigflow_bigquery::range;
    let element = range::element_of(array.data_type())
        .ok_or_else(|| format!("expected a RANGE, got {}", array.data_type()))?;
    let got = range::text(element, range::bounds(array.as_struct(), row));
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("cannot read expected RANGE {text}"))?;
    let (start, end) = inner
        .split_once(',')
        .ok_or_else(|| format!("cannot read expected RANGE {text}"))?;
    let (s, e) = range::bounds(array.as_struct(), row);
    let element_ty = Ty::Scalar(element.name().to_string());
    for (want, have) in [(start.trim(), s), (end.trim(), e)] {
        let ok = match (want == "NULL", have) {
            (true, None) => true,
            (false, Some(v)) => {
                let one = range::build(element, &[Some((Some(v), None))]);
                let value = one.as_struct().column(0).clone();
                compare_scalar(&element_ty, want, &value, 0).is_ok()
            }
            _ => false,
        };
        if !ok {
            return Err(format!("expected {text}, got {got}"));
        }
    }
    Ok(())
}

fn shown(array: &ArrayRef, row: usize) -> String {
    array_value_to_string(array, row).unwrap_or_else(|e| format!("<{e}>"))
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" | "-nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

fn floats_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let scale = a.abs().max(b.abs());
    (a - b).abs() <= 1e-9 * scale.max(1e-300) || (a - b).abs() < 1e-300
}

/// `1.500` and `1.5`, `-0` and `0`, the same.
fn normalize_decimal(s: &str) -> String {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut d = digits.to_string();
    if d.contains('.') {
        while d.ends_with('0') {
            d.pop();
        }
        if d.ends_with('.') {
            d.pop();
        }
    }
    let d = d.trim_start_matches('0').to_string();
    let d = if d.is_empty() || d.starts_with('.') {
        format!("0{d}")
    } else {
        d
    };
    if neg && d != "0" { format!("-{d}") } else { d }
}

fn timestamp_micros(array: &ArrayRef, row: usize) -> Result<i64, String> {
    let one = array.slice(row, 1);
    let cast = arrow::compute::cast(&one, &DataType::Timestamp(TimeUnit::Microsecond, None))
        .map_err(|e| e.to_string())?;
    Ok(cast.as_primitive::<TimestampMicrosecondType>().value(0))
}

fn compare_scalar(ty: &Ty, text: &str, array: &ArrayRef, row: usize) -> Result<(), String> {
    let got = shown(array, row);
    let name = match ty {
        Ty::Scalar(s) => s.as_str(),
        _ => "?",
    };
    let mismatch = || Err(format!("expected {text}, got {got}"));
    match name {
        "INT64" | "INT32" | "UINT32" | "UINT64" => {
            if text.parse::<i128>().ok() == got.parse::<i128>().ok() && got.parse::<i128>().is_ok()
            {
                Ok(())
            } else {
                mismatch()
            }
        }
        "DOUBLE" | "FLOAT64" | "FLOAT" => match (parse_float(text), parse_float(&got)) {
            (Some(a), Some(b)) if floats_equal(a, b) => Ok(()),
            _ => mismatch(),
        },
        "NUMERIC" | "BIGNUMERIC" => {
            if normalize_decimal(text) == normalize_decimal(&got) {
                Ok(())
            } else {
                mismatch()
            }
        }
        "BOOL" => {
            if text.eq_ignore_ascii_case(&got) {
                Ok(())
            } else {
                mismatch()
            }
        }
        "TIMESTAMP" => {
            let want = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
                .map_err(|e| format!("cannot read expected TIMESTAMP {text}: {e}"))?;
            let micros = timestamp_micros(array, row)?;
            if want.timestamp_micros() == micros {
                Ok(())
            } else {
                mismatch()
            }
        }
        "DATETIME" => {
            let want = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|e| format!("cannot read expected DATETIME {text}: {e}"))?;
            let micros = timestamp_micros(array, row)?;
            if want.and_utc().timestamp_micros() == micros {
                Ok(())
            } else {
                mismatch()
            }
        }
        "TIME" => {
            let want = NaiveTime::parse_from_str(text, "%H:%M:%S%.f");
            let have = NaiveTime::parse_from_str(&got, "%H:%M:%S%.f");
            match (want, have) {
                (Ok(a), Ok(b)) if a == b => Ok(()),
                _ => mismatch(),
            }
        }
        "JSON" => {
            let want: Result<serde_json::Value, _> = serde_json::from_str(text);
            let have: Result<serde_json::Value, _> = serde_json::from_str(&got);
            match (want, have) {
                (Ok(a), Ok(b)) if json_equal(&a, &b) => Ok(()),
                _ => mismatch(),
            }
        }
        _ => {
            if text == got {
                Ok(())
            } else {
                mismatch()
            }
        }
    }
}

fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => floats_equal(x, y),
            _ => x == y,
        },
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_floats() {
        assert_eq!(normalize_decimal("1.500000000"), "1.5");
        assert_eq!(normalize_decimal("-0.000"), "0");
        assert_eq!(normalize_decimal("20.0"), "20");
        assert!(floats_equal(0.1 + 0.2, 0.3));
        assert!(!floats_equal(2.0, 2.5));
        assert!(floats_equal(f64::NAN, f64::NAN));
    }
}

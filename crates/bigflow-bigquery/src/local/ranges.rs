//! BigQuery's RANGE functions as UDFs (the type itself: [`crate::range`]).
//!
//! - `bq_range(start, end)`: `RANGE(start, end)`, a NULL bound unbounded;
//! - `bq_range_cast(v, typed NULL range)`: `CAST(v AS RANGE<T>)` of a STRING
//!   (`'[2020-01-01, UNBOUNDED)'`, also RANGE literals) or of a RANGE;
//!   `bq_safe_range_cast`: `SAFE_CAST`, NULL for text that is not a range;
//! - `bq_range_start(r)`, `bq_range_end(r)`: NULL for an unbounded side;
//! - `bq_range_contains(r, range or value)`, `bq_range_overlaps(a, b)`,
//!   `bq_range_intersect(a, b)`.
//!
//! Arguments are checked when the query is planned: bounds of one type
//! among DATE, DATETIME and TIMESTAMP, ranges of the same element type.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::udf::{DfResult, exec_err, plan_err};
use crate::range::{self, Bound, Element};

/// The element a bound of type `t` has (any timestamp unit), if any.
fn bound_element(t: &DataType) -> Option<Element> {
    match t {
        DataType::Date32 => Some(Element::Date),
        DataType::Timestamp(_, None) => Some(Element::DateTime),
        DataType::Timestamp(_, Some(_)) => Some(Element::Timestamp),
        _ => None,
    }
}

/// The result as a scalar when every argument is one.
fn finish(args: &[ColumnarValue], out: ArrayRef) -> DfResult<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) && out.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// Row `i` of a DATE or µs timestamp array as i64 (`None`: NULL).
fn value_at(a: &ArrayRef, i: usize) -> Option<i64> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Date32 => a.as_primitive::<Date32Type>().value(i).into(),
        _ => a.as_primitive::<TimestampMicrosecondType>().value(i),
    })
}

/// The stored start and end (sentinels for unbounded sides) of row `i` of
/// a RANGE array; `None` for a NULL range.
fn raw_at(r: &ArrayRef, i: usize) -> Option<(i64, i64)> {
    if r.is_null(i) {
        return None;
    }
    let e = range::element_of(r.data_type())?;
    let (s, t) = range::bounds(r.as_struct(), i);
    let (lo, hi) = match e {
        Element::Date => (
            range::UNBOUNDED_START_DAYS.into(),
            range::UNBOUNDED_END_DAYS.into(),
        ),
        _ => (range::UNBOUNDED_START_MICROS, range::UNBOUNDED_END_MICROS),
    };
    Some((s.unwrap_or(lo), t.unwrap_or(hi)))
}

/// Stored bounds back to [`Bound`]s.
fn bounds_of(e: Element, (s, t): (i64, i64)) -> (Bound, Bound) {
    let (lo, hi) = match e {
        Element::Date => (
            i64::from(range::UNBOUNDED_START_DAYS),
            i64::from(range::UNBOUNDED_END_DAYS),
        ),
        _ => (range::UNBOUNDED_START_MICROS, range::UNBOUNDED_END_MICROS),
    };
    ((s != lo).then_some(s), (t != hi).then_some(t))
}

// ---------------------------------------------------------------------------
// RANGE(start, end)

#[derive(Debug, PartialEq, Eq, Hash)]
struct Construct {
    signature: Signature,
}

impl ScalarUDFImpl for Construct {
    fn name(&self) -> &str {
        "bq_range"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [a, b] = arg_types else {
            return Err(plan_err("RANGE takes two arguments, (start, end)"));
        };
        let element = match (a, b) {
            (DataType::Null, DataType::Null) => {
                return Err(plan_err(
                    "RANGE(NULL, NULL) has no element type: give a DATE, DATETIME or TIMESTAMP bound",
                ));
            }
            (DataType::Null, t) | (t, DataType::Null) => bound_element(t),
            (x, y) => match (bound_element(x), bound_element(y)) {
                (Some(e), Some(f)) if e == f => Some(e),
                _ => None,
            },
        };
        match element {
            Some(e) => Ok(vec![e.data_type(), e.data_type()]),
            None if [a, b].iter().all(|t| {
                matches!(t, DataType::Null | DataType::Utf8 | DataType::Utf8View)
                    || bound_element(t).is_some()
            }) =>
            {
                Err(plan_err(
                    "unsupported: RANGE of bounds of two different types or of STRING literals",
                ))
            }
            None => Err(plan_err(format!(
                "RANGE takes two DATE, DATETIME or TIMESTAMP values of the same type, got {} and {}",
                super::typed::type_name(a),
                super::typed::type_name(b)
            ))),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        let e = arg_types
            .iter()
            .find_map(bound_element)
            .ok_or_else(|| plan_err("RANGE needs DATE, DATETIME or TIMESTAMP bounds"))?;
        Ok(e.range_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let e = bound_element(arrays[0].data_type())
            .ok_or_else(|| exec_err("RANGE needs DATE, DATETIME or TIMESTAMP bounds"))?;
        let n = arrays[0].len();
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let (s, t) = (value_at(&arrays[0], i), value_at(&arrays[1], i));
            range::check_order(e, s, t).map_err(exec_err)?;
            rows.push(Some((s, t)));
        }
        finish(&args.args, range::build(e, &rows))
    }
}

// ---------------------------------------------------------------------------
// CAST(v AS RANGE<T>)

#[derive(Debug, PartialEq, Eq, Hash)]
struct RangeCast {
    signature: Signature,
    /// SAFE_CAST: NULL for text that is not a range.
    safe: bool,
}

impl ScalarUDFImpl for RangeCast {
    fn name(&self) -> &str {
        if self.safe {
            "bq_safe_range_cast"
        } else {
            "bq_range_cast"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [v, target] = arg_types else {
            return Err(plan_err("a cast takes one value"));
        };
        if range::element_of(target).is_none() {
            return Err(plan_err("a cast to RANGE needs a RANGE type"));
        }
        match v {
            DataType::Null => Ok(vec![target.clone(), target.clone()]),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                Ok(vec![DataType::Utf8, target.clone()])
            }
            t if t == target => Ok(vec![t.clone(), target.clone()]),
            other => Err(plan_err(format!(
                "cannot cast {} to {}",
                super::typed::type_name(other),
                super::typed::type_name(target)
            ))),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let target = arrays[1].data_type().clone();
        let e = range::element_of(&target)
            .ok_or_else(|| exec_err("a cast to RANGE needs a RANGE type"))?;
        let v = &arrays[0];
        if v.data_type() == &target {
            return finish(&args.args, v.clone());
        }
        let text = cast(v, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut rows = Vec::with_capacity(text.len());
        for i in 0..text.len() {
            if text.is_null(i) {
                rows.push(None);
                continue;
            }
            match range::parse_text(e, text.value(i)) {
                Ok(bounds) => rows.push(Some(bounds)),
                Err(_) if self.safe => rows.push(None),
                Err(why) => {
                    return Err(exec_err(format!(
                        "cannot cast '{}' to RANGE<{}>: {why}",
                        text.value(i),
                        e.name()
                    )));
                }
            }
        }
        finish(&args.args, range::build(e, &rows))
    }
}

// ---------------------------------------------------------------------------
// RANGE_START, RANGE_END

#[derive(Debug, PartialEq, Eq, Hash)]
struct Side {
    signature: Signature,
    end: bool,
}

fn check_range(function: &str, t: &DataType) -> DfResult<()> {
    if range::element_of(t).is_some() {
        Ok(())
    } else {
        Err(plan_err(format!(
            "{function} takes a RANGE, got {}",
            super::typed::type_name(t)
        )))
    }
}

impl ScalarUDFImpl for Side {
    fn name(&self) -> &str {
        if self.end {
            "bq_range_end"
        } else {
            "bq_range_start"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let upper = self.name().trim_start_matches("bq_").to_uppercase();
        match arg_types {
            [t] => {
                check_range(&upper, t)?;
                Ok(vec![t.clone()])
            }
            _ => Err(plan_err(format!("{upper} takes one RANGE"))),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        range::element_of(&arg_types[0])
            .map(Element::data_type)
            .ok_or_else(|| plan_err("a RANGE function takes a RANGE"))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let r = &arrays[0];
        let e = range::element_of(r.data_type())
            .ok_or_else(|| exec_err("a RANGE function takes a RANGE"))?;
        let values: Vec<Option<i64>> = (0..r.len())
            .map(|i| {
                raw_at(r, i).and_then(|raw| {
                    let (s, t) = bounds_of(e, raw);
                    if self.end { t } else { s }
                })
            })
            .collect();
        finish(&args.args, element_array(e, values))
    }
}

/// An array of `e` from days or µs.
fn element_array(e: Element, values: Vec<Option<i64>>) -> ArrayRef {
    match e {
        Element::Date => Arc::new(Date32Array::from(
            values
                .into_iter()
                .map(|v| v.map(|d| d as i32))
                .collect::<Vec<_>>(),
        )),
        Element::DateTime => Arc::new(TimestampMicrosecondArray::from(values)),
        Element::Timestamp => {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
        }
    }
}

// ---------------------------------------------------------------------------
// RANGE_CONTAINS, RANGE_OVERLAPS, RANGE_INTERSECT

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Binary {
    Contains,
    Overlaps,
    Intersect,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Pair {
    signature: Signature,
    op: Binary,
}

impl Pair {
    fn upper(&self) -> &'static str {
        match self.op {
            Binary::Contains => "RANGE_CONTAINS",
            Binary::Overlaps => "RANGE_OVERLAPS",
            Binary::Intersect => "RANGE_INTERSECT",
        }
    }
}

impl ScalarUDFImpl for Pair {
    fn name(&self) -> &str {
        match self.op {
            Binary::Contains => "bq_range_contains",
            Binary::Overlaps => "bq_range_overlaps",
            Binary::Intersect => "bq_range_intersect",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let upper = self.upper();
        let [a, b] = arg_types else {
            return Err(plan_err(format!("{upper} takes two arguments")));
        };
        // A NULL literal stands for a NULL of the other side's type.
        let (a, b) = match (a, b) {
            (DataType::Null, b) if range::element_of(b).is_some() => (b.clone(), b.clone()),
            (a, DataType::Null) if range::element_of(a).is_some() => (a.clone(), a.clone()),
            (a, b) => (a.clone(), b.clone()),
        };
        check_range(upper, &a)?;
        let e = range::element_of(&a).unwrap_or(Element::Date);
        if b == a {
            return Ok(vec![a, b]);
        }
        if self.op == Binary::Contains && bound_element(&b) == Some(e) {
            return Ok(vec![a, e.data_type()]);
        }
        Err(plan_err(format!(
            "{upper} takes {} and a RANGE of the same type{}, got {}",
            super::typed::type_name(&a),
            if self.op == Binary::Contains {
                " or a value of its element type"
            } else {
                ""
            },
            super::typed::type_name(&b)
        )))
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.op {
            Binary::Intersect => arg_types[0].clone(),
            _ => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (&arrays[0], &arrays[1]);
        let e = range::element_of(a.data_type())
            .ok_or_else(|| exec_err(format!("{} takes a RANGE", self.upper())))?;
        let n = a.len();
        let value_side = range::element_of(b.data_type()).is_none();
        if self.op == Binary::Intersect {
            let mut rows = Vec::with_capacity(n);
            for i in 0..n {
                rows.push(match (raw_at(a, i), raw_at(b, i)) {
                    (Some((s1, e1)), Some((s2, e2))) => {
                        if !(s1 < e2 && s2 < e1) {
                            return Err(exec_err(format!(
                                "RANGE_INTERSECT: the ranges {} and {} do not overlap (check with RANGE_OVERLAPS first)",
                                range::text(e, bounds_of(e, (s1, e1))),
                                range::text(e, bounds_of(e, (s2, e2)))
                            )));
                        }
                        Some(bounds_of(e, (s1.max(s2), e1.min(e2))))
                    }
                    _ => None,
                });
            }
            return finish(&args.args, range::build(e, &rows));
        }
        let out: BooleanArray = (0..n)
            .map(|i| {
                let (s1, e1) = raw_at(a, i)?;
                if value_side {
                    let v = value_at(b, i)?;
                    return Some(s1 <= v && v < e1);
                }
                let (s2, e2) = raw_at(b, i)?;
                Some(match self.op {
                    Binary::Contains => s1 <= s2 && e2 <= e1,
                    _ => s1 < e2 && s2 < e1,
                })
            })
            .collect();
        finish(&args.args, Arc::new(out))
    }
}

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let user = || Signature::user_defined(Volatility::Immutable);
    vec![
        ScalarUDF::new_from_impl(Construct { signature: user() }),
        ScalarUDF::new_from_impl(RangeCast {
            signature: user(),
            safe: false,
        }),
        ScalarUDF::new_from_impl(RangeCast {
            signature: user(),
            safe: true,
        }),
        ScalarUDF::new_from_impl(Side {
            signature: user(),
            end: false,
        }),
        ScalarUDF::new_from_impl(Side {
            signature: user(),
            end: true,
        }),
        ScalarUDF::new_from_impl(Pair {
            signature: user(),
            op: Binary::Contains,
        }),
        ScalarUDF::new_from_impl(Pair {
            signature: user(),
            op: Binary::Overlaps,
        }),
        ScalarUDF::new_from_impl(Pair {
            signature: user(),
            op: Binary::Intersect,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::backend::Backend;
    use crate::error::BqError;
    use crate::names::TableId;

    /// The rows of `sql` as JSON, as the REST API and `collect_list` give them.
    fn rows(sql: &str) -> Vec<Value> {
        let (_dir, w, ctx) = super::super::test_warehouse();
        let r = w
            .execute(sql, &ctx)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        crate::format::to_json_rows(&r.batches)
            .unwrap()
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    fn error(sql: &str) -> BqError {
        let (_dir, w, ctx) = super::super::test_warehouse();
        match w.execute(sql, &ctx) {
            Ok(_) => panic!("{sql}: no error"),
            Err(e) => e,
        }
    }

    #[test]
    fn literals_constructors_and_bounds() {
        let got = rows(
            "SELECT RANGE<DATE> '[2020-01-01, UNBOUNDED)' AS r, \
             RANGE_START(RANGE<DATE> \"[UNBOUNDED, 2020-01-02)\") AS s, \
             RANGE_END(RANGE<DATE> '[UNBOUNDED, 2020-01-02)') AS e, \
             RANGE(DATE '2020-01-01', NULL) AS c, \
             CAST(NULL AS RANGE<DATETIME>) AS n, \
             CAST(RANGE<TIMESTAMP> '[2020-01-01 12:00:00+01, 2020-01-02 00:00:00.25 UTC)' AS STRING) AS t, \
             CAST('[2020-01-01, 2020-01-01 00:00:01)' AS RANGE<DATETIME>) AS d, \
             SAFE_CAST('[2020-01-02, 2020-01-01)' AS RANGE<DATE>) AS bad, \
             SAFE_CAST('[2020-01-01, UNBOUNDED)' AS RANGE<DATE>) AS good",
        );
        assert_eq!(
            got,
            [json!({
                "r": "[2020-01-01, UNBOUNDED)",
                "s": null,
                "e": "2020-01-02",
                "c": "[2020-01-01, UNBOUNDED)",
                "n": null,
                "t": "[2020-01-01 11:00:00+00, 2020-01-02 00:00:00.250+00)",
                "d": "[2020-01-01 00:00:00, 2020-01-01 00:00:01)",
                "bad": null,
                "good": "[2020-01-01, UNBOUNDED)",
            })]
        );
    }

    #[test]
    fn bad_ranges_are_errors() {
        for sql in [
            "SELECT RANGE<DATE> '[2020-01-02, 2020-01-01)'",
            "SELECT RANGE<DATE> '2020-01-01, 2020-01-02'",
            "SELECT RANGE<INT64> '[1, 2)'",
            "SELECT RANGE(DATE '2020-01-02', DATE '2020-01-02')",
            "SELECT RANGE(DATE '2020-01-01', 5)",
            "SELECT RANGE_START(DATE '2020-01-01')",
            "SELECT RANGE_INTERSECT(RANGE<DATE> '[2020-01-01, 2020-01-02)', RANGE<DATE> '[2020-01-02, UNBOUNDED)')",
            "SELECT RANGE_OVERLAPS(RANGE<DATE> '[2020-01-01, 2020-01-02)', RANGE<DATETIME> '[2020-01-02, UNBOUNDED)')",
            "SELECT CAST('[2020-01-01, x)' AS RANGE<DATE>)",
            // No conversions between element types, nor to other structs.
            "SELECT ARRAY<RANGE<DATE>>[RANGE<DATETIME> '[2020-01-01, UNBOUNDED)']",
            "SELECT RANGE<DATE> '[2020-01-01, UNBOUNDED)' UNION ALL SELECT RANGE<DATETIME> '[2020-01-01, UNBOUNDED)'",
            "SELECT RANGE<DATE> '[2020-01-01, UNBOUNDED)' = RANGE<DATETIME> '[2020-01-01, UNBOUNDED)'",
            "SELECT CAST(RANGE<DATE> '[2020-01-01, UNBOUNDED)' AS STRUCT<a DATE, b DATE>)",
        ] {
            let e = error(sql);
            if !sql.contains("RANGE<DATETIME>") && !sql.contains("STRUCT<a") {
                assert!(!matches!(e, BqError::Unsupported { .. }), "{sql}: {e}");
            }
        }
        // Literals are checked before the query runs, with their position.
        let e = error("SELECT\n  RANGE<DATE> '[2020-01-02, 2020-01-01)'");
        assert!(
            matches!(&e, BqError::Sql { position: Some(p), .. } if p.line == 2),
            "{e:?}"
        );
    }

    #[test]
    fn ranges_order_group_and_aggregate_as_bigquery_does() {
        let got = rows(
            "SELECT r FROM UNNEST([RANGE<DATE> '[2020-01-01, UNBOUNDED)', RANGE<DATE> '[UNBOUNDED, 2020-01-01)', \
             NULL, RANGE<DATE> '[2020-01-01, 2020-01-05)', RANGE<DATE> '[UNBOUNDED, UNBOUNDED)']) AS r ORDER BY r",
        );
        let order: Vec<&Value> = got.iter().map(|r| &r["r"]).collect();
        assert_eq!(
            order,
            [
                &Value::Null,
                &json!("[UNBOUNDED, 2020-01-01)"),
                &json!("[UNBOUNDED, UNBOUNDED)"),
                &json!("[2020-01-01, 2020-01-05)"),
                &json!("[2020-01-01, UNBOUNDED)"),
            ]
        );
        let got = rows(
            "SELECT MIN(r) AS lo, MAX(r) AS hi, COUNT(r) AS n, COUNT(DISTINCT r) AS d FROM UNNEST([\
             RANGE<DATE> '[2020-01-01, UNBOUNDED)', RANGE<DATE> '[2020-01-01, UNBOUNDED)', NULL, \
             RANGE<DATE> '[UNBOUNDED, 2020-01-05)']) AS r",
        );
        assert_eq!(
            got,
            [
                json!({"lo": "[UNBOUNDED, 2020-01-05)", "hi": "[2020-01-01, UNBOUNDED)", "n": 3, "d": 2})
            ]
        );
        let got = rows(
            "SELECT r = RANGE<DATE> '[2020-01-01, UNBOUNDED)' AS eq, r < RANGE<DATE> '[2020-01-02, 2020-01-03)' AS lt \
             FROM UNNEST([RANGE<DATE> '[2020-01-01, UNBOUNDED)']) AS r",
        );
        assert_eq!(got, [json!({"eq": true, "lt": true})]);
    }

    #[test]
    fn analytic_functions_ordered_by_ranges() {
        let got = rows(
            "SELECT n, RANK() OVER (ORDER BY r NULLS LAST) AS k, \
             LAG(n) OVER (ORDER BY r NULLS LAST, n) AS prev \
             FROM UNNEST([STRUCT(1 AS n, RANGE<DATE> '[2020-01-01, UNBOUNDED)' AS r), \
             (2, RANGE<DATE> '[UNBOUNDED, 2020-01-01)'), (3, NULL), (4, RANGE<DATE> '[2020-01-01, UNBOUNDED)')]) \
             ORDER BY n",
        );
        assert_eq!(
            got,
            [
                json!({"n": 1, "k": 2, "prev": 2}),
                json!({"n": 2, "k": 1, "prev": null}),
                json!({"n": 3, "k": 4, "prev": 4}),
                json!({"n": 4, "k": 2, "prev": 1}),
            ]
        );
        // A RANGE has no fields in BigQuery (its struct's are internal).
        let e = error(
            "SELECT r.__bq_range_start FROM UNNEST([RANGE<DATE> '[2020-01-01, UNBOUNDED)']) r",
        );
        assert!(e.to_string().contains("has no fields"), "{e}");
    }

    #[test]
    fn contains_overlaps_and_intersect() {
        let got = rows(
            "SELECT RANGE_CONTAINS(RANGE<DATE> '[2020-01-01, UNBOUNDED)', RANGE<DATE> '[2020-02-01, 2020-03-01)') AS a, \
             RANGE_CONTAINS(RANGE<DATE> '[2020-01-01, 2020-02-01)', DATE '2020-02-01') AS b, \
             RANGE_CONTAINS(RANGE<DATE> '[UNBOUNDED, 2020-02-01)', DATE '0001-01-01') AS c, \
             RANGE_OVERLAPS(RANGE<DATE> '[2020-01-01, 2020-02-01)', RANGE<DATE> '[2020-02-01, UNBOUNDED)') AS d, \
             RANGE_OVERLAPS(RANGE<DATE> '[UNBOUNDED, 2020-02-01)', RANGE<DATE> '[2020-01-31, UNBOUNDED)') AS e, \
             RANGE_INTERSECT(RANGE<DATE> '[UNBOUNDED, 2020-02-01)', RANGE<DATE> '[2020-01-31, UNBOUNDED)') AS f, \
             RANGE_CONTAINS(RANGE<DATE> '[2020-01-01, 2020-02-01)', NULL) AS g",
        );
        assert_eq!(
            got,
            [
                json!({"a": true, "b": false, "c": true, "d": false, "e": true,
                    "f": "[2020-01-31, 2020-02-01)", "g": null})
            ]
        );
    }

    #[test]
    fn range_columns_store_and_reload() {
        let (_dir, w, ctx) = super::super::test_warehouse();
        w.execute(
            "CREATE TABLE t (id INT64, r RANGE<TIMESTAMP>, rs ARRAY<RANGE<DATE>>)",
            &ctx,
        )
        .unwrap();
        w.execute(
            "INSERT INTO t VALUES (1, RANGE<TIMESTAMP> '[2020-01-01 00:00:00+00, UNBOUNDED)', \
             [RANGE<DATE> '[UNBOUNDED, 2020-01-01)']), (2, NULL, CAST([] AS ARRAY<RANGE<DATE>>))",
            &ctx,
        )
        .unwrap();
        w.execute("CREATE TABLE u AS SELECT id, r FROM t", &ctx)
            .unwrap();
        let info = w.table_info(&TableId::new("p", "d", "t").unwrap()).unwrap();
        assert_eq!(info.schema[1].type_name(), "RANGE<TIMESTAMP>");
        assert_eq!(info.schema[2].type_name(), "RANGE<DATE>");
        assert_eq!(info.schema[2].mode, "REPEATED");
        let info = w.table_info(&TableId::new("p", "d", "u").unwrap()).unwrap();
        assert_eq!(info.schema[1].type_name(), "RANGE<TIMESTAMP>");
        let r = w
            .execute("SELECT id, r, rs FROM t ORDER BY id", &ctx)
            .unwrap();
        let got: Vec<Value> = crate::format::to_json_rows(&r.batches)
            .unwrap()
            .into_iter()
            .map(Value::Object)
            .collect();
        assert_eq!(
            got,
            [
                json!({"id": 1, "r": "[2020-01-01 00:00:00+00, UNBOUNDED)", "rs": ["[UNBOUNDED, 2020-01-01)"]}),
                json!({"id": 2, "r": null, "rs": []}),
            ]
        );
        let e = w
            .execute(
                "INSERT INTO t (id, r) VALUES (3, RANGE<DATE> '[2020-01-01, UNBOUNDED)')",
                &ctx,
            )
            .unwrap_err();
        assert!(e.to_string().contains("RANGE<TIMESTAMP>"), "{e}");
        // Streaming inserts take BigQuery's text or {start, end}.
        let id = TableId::new("p", "d", "t").unwrap();
        w.insert_rows(
            &id,
            None,
            &[
                json!({"id": 4, "r": "[2020-01-01 00:00:00+00, 2020-01-02 00:00:00+00)", "rs": ["[2020-01-01, 2020-01-02)"]}),
                json!({"id": 5, "r": {"start": null, "end": "2020-01-01 00:00:00 UTC"}, "rs": []}),
            ],
        )
        .unwrap();
        let e = w
            .insert_rows(
                &id,
                None,
                &[json!({"id": 6, "r": "[2020-01-02 00:00:00+00, 2020-01-01 00:00:00+00)"})],
            )
            .unwrap_err();
        assert!(e.to_string().contains("row 1: column r"), "{e}");
        let r = w
            .execute(
                "SELECT id, CAST(r AS STRING) AS r, rs FROM t WHERE id > 3 ORDER BY id",
                &ctx,
            )
            .unwrap();
        let got: Vec<Value> = crate::format::to_json_rows(&r.batches)
            .unwrap()
            .into_iter()
            .map(Value::Object)
            .collect();
        assert_eq!(
            got,
            [
                json!({"id": 4, "r": "[2020-01-01 00:00:00+00, 2020-01-02 00:00:00+00)", "rs": ["[2020-01-01, 2020-01-02)"]}),
                json!({"id": 5, "r": "[UNBOUNDED, 2020-01-01 00:00:00+00)", "rs": []}),
            ]
        );
    }
}

//! BigQuery functions whose arguments' types decide what they do, or must
//! be checked when the query is planned: UDFs with their own coercion.
//!
//! - `bq_condition(c, 'IF')`: the condition of `IF`/`CASE WHEN`, which must
//!   be BOOL (BigQuery refuses `IF(1, 2, 3)`; DataFusion would cast 1 to true);
//! - `bq_extract('PART', v)`: `EXTRACT(PART FROM v)` as BigQuery answers it
//!   (weeks begin on Sunday, ISO weeks, sub-second parts, INT64 results);
//! - `bq_concat(a, …)`: `CONCAT`, NULL when any argument is NULL;
//! - `bq_string_to_bool(s)`/`bq_safe_string_to_bool(s)`: `CAST(s AS BOOL)`
//!   of a STRING, which accepts only `true` and `false` (any case);
//! - `bq_to_string(v)`: `CAST(v AS STRING)` of FLOAT64, DATETIME and
//!   TIMESTAMP values, written as BigQuery writes them;
//! - `bq_in_array(x, a)`: `x IN UNNEST(a)` with `IN`'s NULL rules;
//! - `bq_array_at(a, i, mode)`: `a[OFFSET(i)]` and its kin;
//! - `bq_substr`, `bq_split`: SUBSTR (negative positions from the end) and
//!   SPLIT (`''` is `['']`, an empty delimiter splits characters).

use std::sync::Arc;

use super::udf::{DfResult, exec_err, plan_err, scalar_result};
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Int64Array, StringArray, StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Weekday};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// A type's BigQuery name, for messages.
pub fn type_name(t: &DataType) -> String {
    if let Some(e) = crate::range::element_of(t) {
        return format!("RANGE<{}>", e.name());
    }
    match t {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOL".into(),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "INT64".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "FLOAT64".into(),
        DataType::Decimal128(..) | DataType::Decimal32(..) | DataType::Decimal64(..) => {
            "NUMERIC".into()
        }
        DataType::Decimal256(..) => "BIGNUMERIC".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BYTES".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "DATETIME".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Interval(_) => "INTERVAL".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", type_name(f.data_type()))
        }
        DataType::Struct(fs) => format!(
            "STRUCT<{}>",
            fs.iter()
                .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// IF / CASE WHEN conditions

/// `bq_condition(c, 'what')`: `c`, which must be BOOL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Condition {
    signature: Signature,
}

impl ScalarUDFImpl for Condition {
    fn name(&self) -> &str {
        "bq_condition"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [DataType::Boolean | DataType::Null, _] => Ok(vec![DataType::Boolean, DataType::Utf8]),
            [other, _] => Err(plan_err(format!(
                "the condition of IF or CASE WHEN must be BOOL, got {}",
                type_name(other)
            ))),
            _ => Err(plan_err("a condition takes one value")),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

// ---------------------------------------------------------------------------
// EXTRACT

/// `bq_extract('PART', value)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Extract {
    signature: Signature,
}

/// What a value to extract from is.
#[derive(Clone, Copy, PartialEq)]
enum Civil {
    Date,
    DateTime,
    Time,
}

impl Civil {
    fn name(self) -> &'static str {
        match self {
            Civil::Date => "DATE",
            Civil::DateTime => "DATETIME or TIMESTAMP",
            Civil::Time => "TIME",
        }
    }
}

pub(super) fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "SUNDAY" => Weekday::Sun,
        "MONDAY" => Weekday::Mon,
        "TUESDAY" => Weekday::Tue,
        "WEDNESDAY" => Weekday::Wed,
        "THURSDAY" => Weekday::Thu,
        "FRIDAY" => Weekday::Fri,
        "SATURDAY" => Weekday::Sat,
        _ => return None,
    })
}

/// The week of the year of `d` when weeks begin on `start`: the days
/// before the year's first `start` are in week 0.
pub fn week_of_year(d: NaiveDate, start: Weekday) -> i64 {
    let into_week = (d.weekday().num_days_from_sunday() + 7 - start.num_days_from_sunday()) % 7;
    (i64::from(d.ordinal0()) + 7 - i64::from(into_week)) / 7
}

/// One part of a date and/or time.
fn part_of(part: &str, kind: Civil, date: NaiveDate, time: NaiveTime) -> DfResult<i64> {
    let dated = kind != Civil::Time;
    let timed = kind != Civil::Date;
    let wrong = || {
        exec_err(format!(
            "EXTRACT: {part} is not a part of a {} value",
            kind.name()
        ))
    };
    let sub = i64::from(time.nanosecond() % 1_000_000_000);
    Ok(match part {
        "YEAR" if dated => i64::from(date.year()),
        "ISOYEAR" if dated => i64::from(date.iso_week().year()),
        "QUARTER" if dated => i64::from(date.month0() / 3 + 1),
        "MONTH" if dated => i64::from(date.month()),
        "WEEK" if dated => week_of_year(date, Weekday::Sun),
        "ISOWEEK" if dated => i64::from(date.iso_week().week()),
        "DAY" if dated => i64::from(date.day()),
        "DAYOFYEAR" if dated => i64::from(date.ordinal()),
        "DAYOFWEEK" if dated => i64::from(date.weekday().number_from_sunday()),
        "HOUR" if timed => i64::from(time.hour()),
        "MINUTE" if timed => i64::from(time.minute()),
        "SECOND" if timed => i64::from(time.second()),
        "MILLISECOND" if timed => sub / 1_000_000,
        "MICROSECOND" if timed => sub / 1_000,
        "NANOSECOND" if timed => sub,
        p if dated && p.starts_with("WEEK(") && p.ends_with(')') => {
            let day = weekday(&p[5..p.len() - 1]).ok_or_else(|| {
                exec_err(format!(
                    "EXTRACT: unknown part {p} (WEEK(SUNDAY) … WEEK(SATURDAY))"
                ))
            })?;
            week_of_year(date, day)
        }
        "YEAR" | "ISOYEAR" | "QUARTER" | "MONTH" | "WEEK" | "ISOWEEK" | "DAY" | "DAYOFYEAR"
        | "DAYOFWEEK" | "HOUR" | "MINUTE" | "SECOND" | "MILLISECOND" | "MICROSECOND"
        | "NANOSECOND" => return Err(wrong()),
        p if p.starts_with("WEEK(") => return Err(wrong()),
        other => {
            return Err(exec_err(format!(
                "EXTRACT: unknown part {other} (YEAR, ISOYEAR, QUARTER, MONTH, WEEK, WEEK(<weekday>), ISOWEEK, DAY, DAYOFYEAR, DAYOFWEEK, HOUR, MINUTE, SECOND, MILLISECOND, MICROSECOND, NANOSECOND, DATE, DATETIME, TIME)"
            )));
        }
    })
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        "bq_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [_, value] = arg_types else {
            return Err(plan_err("EXTRACT takes one value"));
        };
        let value = match value {
            DataType::Date32 | DataType::Date64 => DataType::Date32,
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
            DataType::Null => DataType::Date32,
            other => {
                return Err(plan_err(format!(
                    "EXTRACT takes a DATE, DATETIME, TIMESTAMP or TIME, got {}",
                    type_name(other)
                )));
            }
        };
        Ok(vec![DataType::Utf8, value])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let parts = arrays[0].as_string::<i32>();
        let values = &arrays[1];
        let epoch = NaiveDate::default();
        let mut out = Int64Array::builder(values.len());
        for i in 0..values.len() {
            if parts.is_null(i) || values.is_null(i) {
                out.append_null();
                continue;
            }
            let part = parts.value(i);
            let (kind, date, time) = match values.data_type() {
                DataType::Date32 => {
                    let days = values.as_primitive::<Date32Type>().value(i);
                    let d = epoch
                        .checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
                        .ok_or_else(|| exec_err(format!("EXTRACT: DATE {days} out of range")))?;
                    (Civil::Date, d, NaiveTime::MIN)
                }
                DataType::Timestamp(_, _) => {
                    let micros = values.as_primitive::<TimestampMicrosecondType>().value(i);
                    let t = DateTime::from_timestamp_micros(micros)
                        .ok_or_else(|| {
                            exec_err(format!("EXTRACT: timestamp {micros} out of range"))
                        })?
                        .naive_utc();
                    (Civil::DateTime, t.date(), t.time())
                }
                DataType::Time64(_) => {
                    let micros = values.as_primitive::<Time64MicrosecondType>().value(i);
                    let t = NaiveTime::from_num_seconds_from_midnight_opt(
                        u32::try_from(micros.div_euclid(1_000_000)).unwrap_or(0),
                        u32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
                    )
                    .ok_or_else(|| exec_err(format!("EXTRACT: TIME {micros} out of range")))?;
                    (Civil::Time, epoch, t)
                }
                other => {
                    return Err(exec_err(format!(
                        "EXTRACT: unexpected {}",
                        type_name(other)
                    )));
                }
            };
            out.append_value(part_of(part, kind, date, time)?);
        }
        scalar_result(&args.args, Arc::new(out.finish()))
    }
}

// ---------------------------------------------------------------------------
// CONCAT

/// `bq_concat(a, …)`: STRINGs (other values cast to STRING) or BYTES.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Concat {
    signature: Signature,
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

impl ScalarUDFImpl for Concat {
    fn name(&self) -> &str {
        "bq_concat"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let bytes = arg_types.iter().any(is_binary);
        if bytes {
            if let Some(t) = arg_types
                .iter()
                .find(|t| !is_binary(t) && **t != DataType::Null)
            {
                return Err(plan_err(format!(
                    "CONCAT takes all BYTES or all STRING values, got BYTES and {}",
                    type_name(t)
                )));
            }
            return Ok(vec![DataType::Binary; arg_types.len()]);
        }
        if let Some(t) = arg_types.iter().find(|t| {
            matches!(
                t,
                DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_)
            )
        }) {
            return Err(plan_err(format!(
                "CONCAT cannot take a value of type {}",
                type_name(t)
            )));
        }
        // Other values are written as CAST(… AS STRING) writes them.
        Ok(arg_types
            .iter()
            .map(|t| match t {
                DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => DataType::Utf8,
                other => other.clone(),
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if arg_types.iter().any(is_binary) {
            DataType::Binary
        } else {
            DataType::Utf8
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let row = |a: &ArrayRef, i: usize| if a.len() == 1 { 0 } else { i };
        let out: ArrayRef = if arrays.iter().any(|a| is_binary(a.data_type())) {
            let arrays: Vec<ArrayRef> = arrays
                .iter()
                .map(|a| cast(a, &DataType::Binary))
                .collect::<Result<_, _>>()?;
            let mut b = BinaryBuilder::new();
            for i in 0..rows {
                if arrays.iter().any(|a| a.is_null(row(a, i))) {
                    b.append_null();
                } else {
                    let mut v = Vec::new();
                    for a in &arrays {
                        v.extend_from_slice(a.as_binary::<i32>().value(row(a, i)));
                    }
                    b.append_value(v);
                }
            }
            Arc::new(b.finish())
        } else {
            let arrays: Vec<ArrayRef> = arrays.iter().map(to_bq_string).collect::<DfResult<_>>()?;
            let mut b = StringBuilder::new();
            for i in 0..rows {
                if arrays.iter().any(|a| a.is_null(row(a, i))) {
                    b.append_null();
                } else {
                    let mut v = String::new();
                    for a in &arrays {
                        v.push_str(a.as_string::<i32>().value(row(a, i)));
                    }
                    b.append_value(v);
                }
            }
            Arc::new(b.finish())
        };
        scalar_result(&args.args, out)
    }
}

// ---------------------------------------------------------------------------
// CAST(… AS STRING)

/// A FLOAT64 as BigQuery writes it: the shortest of 15 or 17 significant
/// digits that reads back the same, `%g`-style (`1`, `0.1`, `1e+55`,
/// `1.5e-07`, `inf`, `nan`).
pub fn float_to_string(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let g = |precision: usize| {
        let sci = format!("{:.*e}", precision - 1, v);
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let trim = |s: &str| {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s.to_string()
            }
        };
        if exp < -4 || exp >= precision as i32 {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
        } else {
            let decimals = (precision as i32 - 1 - exp).max(0) as usize;
            trim(&format!("{v:.decimals$}"))
        }
    };
    let short = g(15);
    if short.parse::<f64>().ok() == Some(v) {
        short
    } else {
        g(17)
    }
}

/// Values as BigQuery's `CAST(… AS STRING)` writes them, where Arrow's
/// cast writes them otherwise: FLOAT64 (`1`, not `1.0`), DATETIME
/// (`2006-01-02 03:04:05.123`, not `…T…`) and TIMESTAMP
/// (`2006-01-02 03:04:05+00`); anything else by Arrow's cast.
pub fn to_bq_string(a: &ArrayRef) -> DfResult<ArrayRef> {
    match a.data_type() {
        // `[2020-01-01, UNBOUNDED)`.
        t if crate::range::element_of(t).is_some() => Ok(crate::range::to_text(a)),
        DataType::Float64 | DataType::Float32 => {
            let f = cast(a, &DataType::Float64)?;
            let out: StringArray = f
                .as_primitive::<arrow::datatypes::Float64Type>()
                .iter()
                .map(|v| v.map(float_to_string))
                .collect();
            Ok(Arc::new(out))
        }
        DataType::Timestamp(_, tz) => {
            let micros = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            let mut out = StringBuilder::new();
            for v in micros.iter() {
                match v.and_then(DateTime::from_timestamp_micros) {
                    None => out.append_null(),
                    Some(t) => {
                        let text = t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string();
                        if tz.is_some() {
                            out.append_value(format!("{text}+00"));
                        } else {
                            out.append_value(text);
                        }
                    }
                }
            }
            Ok(Arc::new(out.finish()))
        }
        // `1.5` and `0`, not `1.500000000` and `0.000000000`.
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let text = cast(a, &DataType::Utf8)?;
            let out: StringArray = text
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(decimal_to_string))
                .collect();
            Ok(Arc::new(out))
        }
        _ => Ok(cast(a, &DataType::Utf8)?),
    }
}

/// A NUMERIC/BIGNUMERIC's text (Arrow's, with all the digits of the scale)
/// as BigQuery writes it: no trailing fractional zeros, no `-0`.
pub fn decimal_to_string(text: &str) -> String {
    let t = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    };
    if t == "-0" { "0".into() } else { t.into() }
}

/// `bq_to_string(v)`: [`to_bq_string`] as a function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BqToString {
    signature: Signature,
}

impl ScalarUDFImpl for BqToString {
    fn name(&self) -> &str {
        "bq_to_string"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        scalar_result(&args.args, to_bq_string(&arrays[0])?)
    }
}

/// `bq_to_string`, for the analyzer rule that replaces casts with it.
pub fn to_string_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(BqToString {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

// ---------------------------------------------------------------------------
// arr[OFFSET(i)], arr[ORDINAL(i)], arr[SAFE_OFFSET(i)], arr[SAFE_ORDINAL(i)]

/// `bq_array_at(arr, i, 'OFFSET' | 'ORDINAL' | 'SAFE_OFFSET' | 'SAFE_ORDINAL')`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayAt {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayAt {
    fn name(&self) -> &str {
        "bq_array_at"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [array, index, _] = arg_types else {
            return Err(plan_err("an array subscript takes one index"));
        };
        let array = match array {
            DataType::List(_) | DataType::Null => array.clone(),
            DataType::LargeList(f) | DataType::FixedSizeList(f, _) => DataType::List(f.clone()),
            // A JSON value (stored as STRING): `json[0]`, `json['a']`.
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                let key = match index {
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                    DataType::Null => DataType::Int64,
                    i if i.is_integer() => DataType::Int64,
                    other => {
                        return Err(plan_err(format!(
                            "a JSON subscript must be INT64 or STRING, got {}",
                            type_name(other)
                        )));
                    }
                };
                return Ok(vec![DataType::Utf8, key, DataType::Utf8]);
            }
            other => {
                return Err(plan_err(format!(
                    "an array subscript [OFFSET(…)] needs an ARRAY, got {}",
                    type_name(other)
                )));
            }
        };
        if !(index.is_integer() || *index == DataType::Null) {
            return Err(plan_err(format!(
                "an array index must be INT64, got {}",
                type_name(index)
            )));
        }
        Ok(vec![array, DataType::Int64, DataType::Utf8])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match arg_types.first() {
            Some(DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)) => {
                f.data_type().clone()
            }
            Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => DataType::Utf8,
            _ => DataType::Null,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if arrays[0].data_type() == &DataType::Null {
            return scalar_result(&args.args, arrays[0].clone());
        }
        if arrays[0].data_type() == &DataType::Utf8 {
            return json_subscript(&args.args, &arrays);
        }
        let list = arrays[0].as_list::<i32>();
        let index = arrays[1].as_primitive::<arrow::datatypes::Int64Type>();
        let mode = arrays[2].as_string::<i32>();
        let mut take = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            if list.is_null(i) || index.is_null(i) || mode.is_null(i) {
                take.push(None);
                continue;
            }
            let mode = mode.value(i);
            let (safe, ordinal) = (mode.starts_with("SAFE_"), mode.ends_with("ORDINAL"));
            let given = index.value(i);
            let at = if ordinal {
                given.checked_sub(1)
            } else {
                Some(given)
            };
            let offsets = list.value_offsets();
            let (start, end) = (offsets[i] as i64, offsets[i + 1] as i64);
            match at.filter(|a| *a >= 0 && *a < end - start) {
                Some(a) => take.push(Some((start + a) as u64)),
                None if safe => take.push(None),
                None => {
                    return Err(exec_err(format!(
                        "array index {given} is out of bounds in [{mode}({given})] (the array has {} elements; SAFE_{mode} gives NULL instead)",
                        end - start
                    )));
                }
            }
        }
        let out = arrow::compute::take(
            list.values().as_ref(),
            &arrow::array::UInt64Array::from(take),
            None,
        )?;
        scalar_result(&args.args, out)
    }
}

/// `json[i]`, `json['key']`, `json.key` of JSON values (stored as STRING).
fn json_subscript(args: &[ColumnarValue], arrays: &[ArrayRef]) -> DfResult<ColumnarValue> {
    let json = arrays[0].as_string::<i32>();
    let mode = arrays[2].as_string::<i32>();
    let mut out = StringBuilder::new();
    for i in 0..json.len() {
        if !mode.is_null(i) && mode.value(i) != "OFFSET" {
            return Err(exec_err(format!(
                "[{}(…)] is for arrays; a JSON value takes [index] or ['key']",
                mode.value(i)
            )));
        }
        if json.is_null(i) || arrays[1].is_null(i) {
            out.append_null();
            continue;
        }
        let key = match arrays[1].data_type() {
            DataType::Utf8 => Err(arrays[1].as_string::<i32>().value(i)),
            _ => Ok(arrays[1]
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(i)),
        };
        out.append_option(super::json::subscript(json.value(i), key)?);
    }
    scalar_result(args, Arc::new(out.finish()))
}

/// `bq_array_at`, for JSON field access planned by [`JsonFieldPlanner`].
pub fn array_at_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(ArrayAt {
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

/// Plans `json.a`, `json['a']` and `(expr).a` of a JSON value (a STRING
/// here) as `bq_array_at(json, 'a', 'OFFSET')`: DataFusion's field access
/// is for STRUCTs only. Ahead of DataFusion's own planners; anything that
/// is not a STRING goes on to them.
#[derive(Debug)]
pub struct JsonFieldPlanner {
    at: Arc<ScalarUDF>,
}

impl Default for JsonFieldPlanner {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonFieldPlanner {
    pub fn new() -> JsonFieldPlanner {
        JsonFieldPlanner { at: array_at_udf() }
    }

    fn at(
        &self,
        expr: datafusion::logical_expr::Expr,
        key: ScalarValue,
    ) -> datafusion::logical_expr::Expr {
        use datafusion::logical_expr::{Expr, expr::ScalarFunction, lit};
        Expr::ScalarFunction(ScalarFunction::new_udf(
            self.at.clone(),
            vec![expr, lit(key), lit("OFFSET")],
        ))
    }
}

fn is_string_type(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

impl datafusion::logical_expr::planner::ExprPlanner for JsonFieldPlanner {
    fn plan_field_access(
        &self,
        expr: datafusion::logical_expr::planner::RawFieldAccessExpr,
        schema: &datafusion::common::DFSchema,
    ) -> DfResult<
        datafusion::logical_expr::planner::PlannerResult<
            datafusion::logical_expr::planner::RawFieldAccessExpr,
        >,
    > {
        use datafusion::logical_expr::ExprSchemable;
        use datafusion::logical_expr::GetFieldAccess;
        use datafusion::logical_expr::planner::PlannerResult;
        if let GetFieldAccess::NamedStructField { name } = &expr.field_access
            && is_string_type(&expr.expr.get_type(schema)?)
        {
            return Ok(PlannerResult::Planned(self.at(expr.expr, name.clone())));
        }
        Ok(PlannerResult::Original(expr))
    }

    fn plan_compound_identifier(
        &self,
        field: &arrow::datatypes::Field,
        qualifier: Option<&datafusion::common::TableReference>,
        nested_names: &[String],
    ) -> DfResult<
        datafusion::logical_expr::planner::PlannerResult<Vec<datafusion::logical_expr::Expr>>,
    > {
        use datafusion::logical_expr::Expr;
        use datafusion::logical_expr::planner::PlannerResult;
        if !is_string_type(field.data_type()) {
            return Ok(PlannerResult::Original(vec![]));
        }
        let mut expr = Expr::Column(datafusion::common::Column::from((qualifier, field)));
        for name in nested_names {
            expr = self.at(expr, ScalarValue::from(name.as_str()));
        }
        Ok(PlannerResult::Planned(expr))
    }
}

// ---------------------------------------------------------------------------
// SPLIT_SUBSTR(value, delimiter, start_split[, count])

/// `bq_split_substr(value, delimiter, start[, count])`: the parts of
/// `value` split on `delimiter` (left to right, without overlaps) from part
/// `start` (1-based; 0 is 1; negative counts from the end, before the first
/// is the first), `count` of them (all by default), joined by `delimiter`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SplitSubstr {
    signature: Signature,
}

/// SPLIT_SUBSTR of one row.
fn split_substr(value: &str, delimiter: &str, start: i64, count: Option<i64>) -> DfResult<String> {
    if delimiter.is_empty() {
        return Err(DataFusionError::NotImplemented(
            "SPLIT_SUBSTR with an empty delimiter".into(),
        ));
    }
    if count.is_some_and(|c| c < 0) {
        return Err(exec_err(
            "SPLIT_SUBSTR: the count of splits must not be negative",
        ));
    }
    let parts: Vec<&str> = value.split(delimiter).collect();
    let n = parts.len() as i64;
    let first = if start > 0 {
        start - 1
    } else if start == 0 {
        0
    } else {
        (n + start).max(0)
    };
    if first >= n {
        return Ok(String::new());
    }
    let last = match count {
        Some(c) => first.saturating_add(c).min(n),
        None => n,
    };
    Ok(parts[first as usize..last as usize].join(delimiter))
}

impl ScalarUDFImpl for SplitSubstr {
    fn name(&self) -> &str {
        "bq_split_substr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if !matches!(arg_types.len(), 3 | 4) {
            return Err(plan_err(
                "SPLIT_SUBSTR takes (value, delimiter, start_split[, count])",
            ));
        }
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            )
        };
        if !text(&arg_types[0]) || !text(&arg_types[1]) {
            return Err(plan_err(format!(
                "unsupported: SPLIT_SUBSTR of {} (STRING only)",
                type_name(&arg_types[0])
            )));
        }
        let mut out = vec![DataType::Utf8, DataType::Utf8];
        for t in &arg_types[2..] {
            if !(t.is_integer() || *t == DataType::Null) {
                return Err(plan_err(format!(
                    "SPLIT_SUBSTR takes INT64 positions, not {}",
                    type_name(t)
                )));
            }
            out.push(DataType::Int64);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let value = arrays[0].as_string::<i32>();
        let delimiter = arrays[1].as_string::<i32>();
        let start = arrays[2].as_primitive::<arrow::datatypes::Int64Type>();
        let count = arrays
            .get(3)
            .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>());
        let mut out = StringBuilder::new();
        for i in 0..value.len() {
            if value.is_null(i)
                || delimiter.is_null(i)
                || start.is_null(i)
                || count.is_some_and(|c| c.is_null(i))
            {
                out.append_null();
                continue;
            }
            out.append_value(split_substr(
                value.value(i),
                delimiter.value(i),
                start.value(i),
                count.map(|c| c.value(i)),
            )?);
        }
        scalar_result(&args.args, Arc::new(out.finish()))
    }
}

// ---------------------------------------------------------------------------
// ARRAY_CONCAT_AGG's argument

/// `bq_flat_array(a)`: `a`, which must be an ARRAY of anything but arrays
/// (BigQuery has no arrays of arrays; ARRAY_CONCAT_AGG would flatten one).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FlatArray {
    signature: Signature,
}

impl ScalarUDFImpl for FlatArray {
    fn name(&self) -> &str {
        "bq_flat_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)]
                if matches!(
                    f.data_type(),
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
                ) =>
            {
                Err(plan_err(format!(
                    "Cannot construct array with element type {} because nested arrays are not supported",
                    type_name(f.data_type())
                )))
            }
            [t @ (DataType::List(_) | DataType::Null)] => Ok(vec![t.clone()]),
            [DataType::LargeList(f) | DataType::FixedSizeList(f, _)] => {
                Ok(vec![DataType::List(f.clone())])
            }
            [other] => Err(plan_err(format!(
                "ARRAY_CONCAT_AGG needs an ARRAY, got {}",
                type_name(other)
            ))),
            _ => Err(plan_err("ARRAY_CONCAT_AGG takes one array")),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

// ---------------------------------------------------------------------------
// ARRAY_IS_DISTINCT(array)

/// `bq_array_is_distinct(array)`: whether no two elements are equal
/// (NULLs equal each other, as in GROUP BY; so do 0 and -0, and NaNs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayIsDistinct {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayIsDistinct {
    fn name(&self) -> &str {
        "bq_array_is_distinct"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [DataType::Null] => Ok(vec![DataType::Null]),
            [DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)] => {
                if f.data_type().is_nested() {
                    return Err(plan_err(format!(
                        "unsupported: ARRAY_IS_DISTINCT of an {}",
                        type_name(&arg_types[0])
                    )));
                }
                Ok(vec![DataType::List(f.clone())])
            }
            [other] => Err(plan_err(format!(
                "ARRAY_IS_DISTINCT needs an ARRAY, got {}",
                type_name(other)
            ))),
            _ => Err(plan_err("ARRAY_IS_DISTINCT takes one array")),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        if arrays[0].data_type() == &DataType::Null {
            return scalar_result(&args.args, Arc::new(BooleanArray::new_null(n)));
        }
        let list = arrays[0].as_list::<i32>();
        // 0 and -0 are one value, as are NaNs.
        let values = match list.values().data_type() {
            DataType::Float64 | DataType::Float32 | DataType::Float16 => {
                let f = cast(list.values(), &DataType::Float64)?;
                let f: arrow::array::Float64Array = f
                    .as_primitive::<arrow::datatypes::Float64Type>()
                    .unary(|v| {
                        if v == 0.0 {
                            0.0
                        } else if v.is_nan() {
                            f64::NAN
                        } else {
                            v
                        }
                    });
                Arc::new(f) as ArrayRef
            }
            _ => list.values().clone(),
        };
        let converter = arrow::row::RowConverter::new(vec![arrow::row::SortField::new(
            values.data_type().clone(),
        )])?;
        let rows = converter.convert_columns(&[values])?;
        let offsets = list.value_offsets();
        let mut out = arrow::array::BooleanBuilder::with_capacity(n);
        for i in 0..list.len() {
            if list.is_null(i) {
                out.append_null();
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            let distinct = (offsets[i] as usize..offsets[i + 1] as usize)
                .all(|j| seen.insert(rows.row(j).as_ref().to_vec()));
            out.append_value(distinct);
        }
        scalar_result(&args.args, Arc::new(out.finish()))
    }
}

// ---------------------------------------------------------------------------
// x IN UNNEST(array)

/// `bq_in_array(x, array)`: `x IN UNNEST(array)` as SQL's `IN`: FALSE for
/// an empty or NULL array, NULL for a NULL `x` or when `x` is not found
/// but the array holds a NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct InArray {
    signature: Signature,
}

impl ScalarUDFImpl for InArray {
    fn name(&self) -> &str {
        "bq_in_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [value, array] = arg_types else {
            return Err(plan_err("IN UNNEST takes a value and an array"));
        };
        let elem = match array {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                f.data_type().clone()
            }
            DataType::Null => value.clone(),
            other => {
                return Err(plan_err(format!(
                    "IN UNNEST needs an ARRAY, got {}",
                    type_name(other)
                )));
            }
        };
        // RANGEs compare as values (see `crate::range`).
        let range = crate::range::element_of(value).or(crate::range::element_of(&elem));
        if let Some(e) = range
            && [value, &elem]
                .iter()
                .all(|t| **t == DataType::Null || crate::range::element_of(t) == Some(e))
        {
            let t = e.range_type();
            return Ok(vec![t.clone(), DataType::new_list(t, true)]);
        }
        if matches!(value, DataType::Struct(_) | DataType::List(_))
            || matches!(elem, DataType::Struct(_) | DataType::List(_))
        {
            return Err(plan_err("unsupported: IN UNNEST of STRUCT or ARRAY values"));
        }
        let common = if *value == elem || *value == DataType::Null {
            elem.clone()
        } else if elem == DataType::Null {
            value.clone()
        } else if (value.is_integer() || value.is_floating())
            && (elem.is_integer() || elem.is_floating())
        {
            if value.is_integer() && elem.is_integer() {
                DataType::Int64
            } else {
                DataType::Float64
            }
        } else if matches!(
            value,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) && matches!(
            elem,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            DataType::Utf8
        } else {
            return Err(plan_err(format!(
                "IN UNNEST cannot look for a {} in an ARRAY<{}>",
                type_name(value),
                type_name(&elem)
            )));
        };
        let common = if common == DataType::Null {
            DataType::Int64
        } else {
            common
        };
        Ok(vec![common.clone(), DataType::new_list(common, true)])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use arrow::array::Scalar;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (value, list) = (&arrays[0], arrays[1].as_list::<i32>());
        let mut out = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            if list.is_null(i) || list.value_length(i) == 0 {
                out.push(Some(false));
                continue;
            }
            if value.is_null(i) {
                out.push(None);
                continue;
            }
            let items = list.value(i);
            let found = if crate::range::element_of(value.data_type()).is_some() {
                let one = value.slice(i, 1);
                let cmp = arrow::array::make_comparator(&items, &one, Default::default())?;
                (0..items.len())
                    .map(|j| Some(items.is_valid(j) && cmp(j, 0).is_eq()))
                    .collect::<BooleanArray>()
            } else {
                arrow::compute::kernels::cmp::eq(&items, &Scalar::new(value.slice(i, 1)))?
            };
            out.push(if found.true_count() > 0 {
                Some(true)
            } else if items.null_count() > 0 {
                None
            } else {
                Some(false)
            });
        }
        scalar_result(&args.args, Arc::new(BooleanArray::from(out)))
    }
}

// ---------------------------------------------------------------------------
// LENGTH

/// `bq_length(v)`: characters of a STRING, bytes of BYTES, as INT64.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Length {
    signature: Signature,
}

impl ScalarUDFImpl for Length {
    fn name(&self) -> &str {
        "bq_length"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] if is_binary(t) => Ok(vec![DataType::Binary]),
            [DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null] => {
                Ok(vec![DataType::Utf8])
            }
            [t] => Err(plan_err(format!(
                "LENGTH takes a STRING or BYTES, got {}",
                type_name(t)
            ))),
            _ => Err(plan_err("LENGTH takes one value")),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = &arrays[0];
        let out: Int64Array = if is_binary(a.data_type()) {
            a.as_binary::<i32>()
                .iter()
                .map(|v| v.map(|b| b.len() as i64))
                .collect()
        } else {
            a.as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| s.chars().count() as i64))
                .collect()
        };
        scalar_result(&args.args, Arc::new(out))
    }
}

// ---------------------------------------------------------------------------
// SUBSTR

/// `bq_substr(value, position[, length])`: BigQuery's SUBSTR of a STRING
/// (characters) or BYTES (bytes): a negative position counts from the end,
/// 0 is 1, a negative length is an error.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Substr {
    signature: Signature,
}

/// The range `[start, end)` SUBSTR takes of a value of `len` units.
fn substr_range(len: i64, position: i64, length: Option<i64>) -> DfResult<(usize, usize)> {
    if let Some(l) = length
        && l < 0
    {
        return Err(exec_err(format!(
            "SUBSTR: the length cannot be negative, got {l}"
        )));
    }
    let start = if position > 0 {
        position - 1
    } else if position == 0 {
        0
    } else {
        (len + position).max(0)
    };
    let start = start.min(len);
    let end = match length {
        Some(l) => start.saturating_add(l).min(len),
        None => len,
    };
    Ok((start as usize, end as usize))
}

impl ScalarUDFImpl for Substr {
    fn name(&self) -> &str {
        "bq_substr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let Some((value, rest)) = arg_types.split_first() else {
            return Err(plan_err("SUBSTR takes (value, position[, length])"));
        };
        if rest.is_empty() || rest.len() > 2 {
            return Err(plan_err("SUBSTR takes (value, position[, length])"));
        }
        let value = if is_binary(value) {
            DataType::Binary
        } else if matches!(
            value,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
        ) {
            DataType::Utf8
        } else {
            return Err(plan_err(format!(
                "SUBSTR takes a STRING or BYTES, got {}",
                type_name(value)
            )));
        };
        if let Some(t) = rest
            .iter()
            .find(|t| !(t.is_integer() || **t == DataType::Null))
        {
            return Err(plan_err(format!(
                "SUBSTR's position and length must be INT64, got {}",
                type_name(t)
            )));
        }
        let mut out = vec![value];
        out.extend(rest.iter().map(|_| DataType::Int64));
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if arg_types.first().is_some_and(is_binary) {
            DataType::Binary
        } else {
            DataType::Utf8
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let position = arrays[1].as_primitive::<arrow::datatypes::Int64Type>();
        let length = arrays
            .get(2)
            .map(|a| a.as_primitive::<arrow::datatypes::Int64Type>());
        let n = position.len();
        let length_at = |i: usize| -> Option<Option<i64>> {
            match length {
                None => Some(None),
                Some(l) if l.is_null(i) => None,
                Some(l) => Some(Some(l.value(i))),
            }
        };
        let out: ArrayRef = if is_binary(arrays[0].data_type()) {
            let v = arrays[0].as_binary::<i32>();
            let mut b = BinaryBuilder::new();
            for i in 0..n {
                match (v.is_null(i) || position.is_null(i), length_at(i)) {
                    (false, Some(l)) => {
                        let value = v.value(i);
                        let (start, end) = substr_range(value.len() as i64, position.value(i), l)?;
                        b.append_value(&value[start..end]);
                    }
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        } else {
            let v = arrays[0].as_string::<i32>();
            let mut b = StringBuilder::new();
            for i in 0..n {
                match (v.is_null(i) || position.is_null(i), length_at(i)) {
                    (false, Some(l)) => {
                        let value = v.value(i);
                        let chars = value.chars().count() as i64;
                        let (start, end) = substr_range(chars, position.value(i), l)?;
                        let text: String = value.chars().skip(start).take(end - start).collect();
                        b.append_value(text);
                    }
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        };
        scalar_result(&args.args, out)
    }
}

// ---------------------------------------------------------------------------
// SPLIT

/// `bq_split(value, delimiter)`: BigQuery's SPLIT. An empty value is `[""]`,
/// an empty delimiter splits into characters (bytes for BYTES).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Split {
    signature: Signature,
}

impl ScalarUDFImpl for Split {
    fn name(&self) -> &str {
        "bq_split"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            )
        };
        let bytes = |t: &DataType| is_binary(t) || *t == DataType::Null;
        match arg_types {
            [a, b] if text(a) && text(b) => Ok(vec![DataType::Utf8, DataType::Utf8]),
            [a, b] if bytes(a) && bytes(b) => Ok(vec![DataType::Binary, DataType::Binary]),
            [a, b] => Err(plan_err(format!(
                "SPLIT takes (STRING, STRING) or (BYTES, BYTES), got ({}, {})",
                type_name(a),
                type_name(b)
            ))),
            _ => Err(plan_err("SPLIT takes a value and a delimiter")),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        let item = if arg_types.first().is_some_and(is_binary) {
            DataType::Binary
        } else {
            DataType::Utf8
        };
        Ok(DataType::new_list(item, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use arrow::array::{GenericListBuilder, ListBuilder};
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let row = |a: &ArrayRef, i: usize| if a.len() == 1 { 0 } else { i };
        let out: ArrayRef = if is_binary(arrays[0].data_type()) {
            let (v, d) = (arrays[0].as_binary::<i32>(), arrays[1].as_binary::<i32>());
            let mut b: GenericListBuilder<i32, BinaryBuilder> =
                ListBuilder::new(BinaryBuilder::new());
            for i in 0..rows {
                let (vi, di) = (row(&arrays[0], i), row(&arrays[1], i));
                if v.is_null(vi) || d.is_null(di) {
                    b.append(false);
                    continue;
                }
                let (value, delim) = (v.value(vi), d.value(di));
                if delim.is_empty() {
                    if value.is_empty() {
                        b.values().append_value(b"");
                    }
                    for byte in value {
                        b.values().append_value([*byte]);
                    }
                } else {
                    let mut rest = value;
                    loop {
                        match rest.windows(delim.len()).position(|w| w == delim) {
                            Some(at) => {
                                b.values().append_value(&rest[..at]);
                                rest = &rest[at + delim.len()..];
                            }
                            None => {
                                b.values().append_value(rest);
                                break;
                            }
                        }
                    }
                }
                b.append(true);
            }
            Arc::new(b.finish())
        } else {
            let (v, d) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
            let mut b = ListBuilder::new(StringBuilder::new());
            for i in 0..rows {
                let (vi, di) = (row(&arrays[0], i), row(&arrays[1], i));
                if v.is_null(vi) || d.is_null(di) {
                    b.append(false);
                    continue;
                }
                let (value, delim) = (v.value(vi), d.value(di));
                if delim.is_empty() {
                    if value.is_empty() {
                        b.values().append_value("");
                    }
                    let mut buf = [0u8; 4];
                    for c in value.chars() {
                        b.values().append_value(c.encode_utf8(&mut buf));
                    }
                } else {
                    for part in value.split(delim) {
                        b.values().append_value(part);
                    }
                }
                b.append(true);
            }
            Arc::new(b.finish())
        };
        scalar_result(&args.args, out)
    }
}

// ---------------------------------------------------------------------------
// CAST(string AS BOOL)

/// `bq_string_to_bool(s)` (`safe`: `bq_safe_string_to_bool`, NULL for a bad value).
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringToBool {
    signature: Signature,
    safe: bool,
}

impl ScalarUDFImpl for StringToBool {
    fn name(&self) -> &str {
        if self.safe {
            "bq_safe_string_to_bool"
        } else {
            "bq_string_to_bool"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let s = cast(&arrays[0], &DataType::Utf8)?;
        let s: &StringArray = s.as_string::<i32>();
        let mut out = Vec::with_capacity(s.len());
        for v in s.iter() {
            out.push(match v {
                None => None,
                Some(t) if t.eq_ignore_ascii_case("true") => Some(true),
                Some(t) if t.eq_ignore_ascii_case("false") => Some(false),
                Some(_) if self.safe => None,
                Some(t) => {
                    return Err(exec_err(format!(
                        "bad BOOL value: '{t}' (CAST of a STRING to BOOL takes 'true' or 'false')"
                    )));
                }
            });
        }
        scalar_result(&args.args, Arc::new(BooleanArray::from(out)))
    }
}

/// `bq_string_to_bool`, or with `safe` `bq_safe_string_to_bool` (SAFE_CAST).
pub fn string_to_bool(safe: bool) -> ScalarUDF {
    ScalarUDF::new_from_impl(StringToBool {
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        safe,
    })
}

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let user = || Signature::user_defined(Volatility::Immutable);
    vec![
        ScalarUDF::new_from_impl(Condition { signature: user() }),
        ScalarUDF::new_from_impl(Extract { signature: user() }),
        ScalarUDF::new_from_impl(Concat { signature: user() }),
        ScalarUDF::new_from_impl(Split { signature: user() }),
        to_string_udf(),
        ScalarUDF::new_from_impl(ArrayAt { signature: user() }),
        ScalarUDF::new_from_impl(ArrayIsDistinct { signature: user() }),
        ScalarUDF::new_from_impl(FlatArray { signature: user() }),
        ScalarUDF::new_from_impl(SplitSubstr { signature: user() }),
        ScalarUDF::new_from_impl(Substr { signature: user() }),
        ScalarUDF::new_from_impl(Length { signature: user() }),
        ScalarUDF::new_from_impl(InArray { signature: user() }),
        string_to_bool(false),
        string_to_bool(true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn split_substr_picks_parts() {
        let s = |v, d, start, count| split_substr(v, d, start, count).unwrap();
        assert_eq!(s("www.abc.com", ".", 2, Some(2)), "abc.com");
        assert_eq!(s("www.abc.com", ".", 0, Some(1)), "www");
        assert_eq!(s("www.abc.com", ".", 4, Some(1)), "");
        assert_eq!(s("www.abc.com", ".", -5, Some(1)), "www");
        assert_eq!(s("www.abc.com", ".", -1, None), "com");
        assert_eq!(s("###tagA###tagB###tagC###", "##", -2, Some(3)), "#tagC###");
        assert_eq!(s("tagA##tagB##", "##", -1, Some(1)), "");
        assert!(split_substr("a", "", 1, None).is_err());
        assert!(split_substr("a", ".", 1, Some(-1)).is_err());
    }

    #[test]
    fn substr_counts_from_either_end() {
        assert_eq!(substr_range(8, 3, None).unwrap(), (2, 8));
        assert_eq!(substr_range(8, -3, None).unwrap(), (5, 8));
        assert_eq!(substr_range(8, -30, Some(2)).unwrap(), (0, 2));
        assert_eq!(substr_range(8, 0, Some(2)).unwrap(), (0, 2));
        assert_eq!(substr_range(8, 9, Some(2)).unwrap(), (8, 8));
        assert_eq!(substr_range(8, 2, Some(i64::MAX)).unwrap(), (1, 8));
        assert!(substr_range(8, 1, Some(-1)).is_err());
    }

    #[test]
    fn floats_are_written_as_bigquery_writes_them() {
        for (v, text) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-8765432.1, "-8765432.1"),
            (1.23456789, "1.23456789"),
            (1e55, "1e+55"),
            (1.5e-7, "1.5e-07"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_to_string(v), text, "{v}");
        }
    }

    #[test]
    fn decimals_are_written_without_trailing_zeros() {
        for (arrow, bq) in [
            ("0.000000000", "0"),
            ("-0.000000000", "0"),
            ("1.500000000", "1.5"),
            ("-12.000", "-12"),
            ("100", "100"),
            ("-0", "0"),
        ] {
            assert_eq!(decimal_to_string(arrow), bq, "{arrow}");
        }
    }

    #[test]
    fn weeks_begin_on_sunday_or_the_given_day() {
        // 2017-01-01 is a Sunday: week 1 from its first day.
        assert_eq!(week_of_year(day(2017, 1, 1), Weekday::Sun), 1);
        // 2015-01-01 is a Thursday: week 0 until Sunday the 4th.
        assert_eq!(week_of_year(day(2015, 1, 3), Weekday::Sun), 0);
        assert_eq!(week_of_year(day(2015, 1, 4), Weekday::Sun), 1);
        assert_eq!(week_of_year(day(2015, 1, 4), Weekday::Mon), 0);
        assert_eq!(week_of_year(day(2015, 1, 5), Weekday::Mon), 1);
        assert_eq!(week_of_year(day(2015, 12, 31), Weekday::Sun), 52);
    }

    #[test]
    fn parts_of_dates_and_times() {
        let t = NaiveTime::from_hms_micro_opt(1, 2, 7, 250_000).unwrap();
        let d = day(2015, 1, 1);
        assert_eq!(part_of("MILLISECOND", Civil::DateTime, d, t).unwrap(), 250);
        assert_eq!(
            part_of("MICROSECOND", Civil::DateTime, d, t).unwrap(),
            250_000
        );
        assert_eq!(part_of("SECOND", Civil::Time, d, t).unwrap(), 7);
        // 2015-01-01 is in ISO week 1 of 2015; 2016-01-01 in week 53 of 2015.
        assert_eq!(part_of("ISOWEEK", Civil::Date, d, t).unwrap(), 1);
        assert_eq!(
            part_of("ISOYEAR", Civil::Date, day(2016, 1, 1), t).unwrap(),
            2015
        );
        assert_eq!(
            part_of("ISOWEEK", Civil::Date, day(2016, 1, 1), t).unwrap(),
            53
        );
        assert_eq!(part_of("DAYOFWEEK", Civil::Date, d, t).unwrap(), 5);
        assert_eq!(part_of("WEEK(THURSDAY)", Civil::Date, d, t).unwrap(), 1);
        assert!(
            part_of("HOUR", Civil::Date, d, t)
                .unwrap_err()
                .to_string()
                .contains("HOUR is not a part of a DATE")
        );
        assert!(part_of("YEAR", Civil::Time, d, t).is_err());
    }
}

//! BigQuery's casts where Arrow's answer differently: UDFs the analyzer rule
//! ([`super::overflow::CheckedInt64`]) puts in place of the casts it sees.
//!
//! - `bq_string_to_date|time|datetime(s)` (and `bq_safe_…` for SAFE_CAST):
//!   BigQuery's civil time literals, `[Y]YYY-[M]M-[D]D`, `[H]H:[M]M:[S]S[.F]`
//!   with up to 6 fractional digits, a DATETIME's parts joined by a space or
//!   `T`; a leap second (`:60`) is the next minute's start; a time zone,
//!   hour 24 or a seventh fractional digit are errors;
//! - `bq_string_to_int64(s)`: decimal or hexadecimal (`-0x100`) text, with
//!   surrounding whitespace;
//! - `bq_decimal_text(s)`: NUMERIC/BIGNUMERIC text in exponent notation
//!   (`1e2`) written out for Arrow's cast, which takes no exponent;
//! - `bq_float_decimal_text(x, scale)`: the exact value of a FLOAT64 as
//!   text for a cast to NUMERIC/BIGNUMERIC (Arrow's cast multiplies in
//!   floating point and loses digits);
//! - `bq_date_arg(x)`: the argument of `DATE(x)`, a STRING read as a
//!   TIMESTAMP;
//! - `bq_nullable(x)`: `x`, possibly NULL (a scalar subquery);
//! - `bq_max_length(v, n)` (and `bq_safe_max_length`): the limit of
//!   `STRING(n)` and `BYTES(n)`.

use std::sync::Arc;

use super::udf::{DfResult, exec_err, scalar_result};
use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, StringArray, Time64NanosecondArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The first argument as a STRING array.
fn strings(args: &ScalarFunctionArgs) -> DfResult<(Vec<ArrayRef>, ArrayRef)> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let s = cast(&arrays[0], &DataType::Utf8)?;
    Ok((arrays, s))
}

// ---------------------------------------------------------------------------
// STRING → DATE, TIME, DATETIME

/// The civil time types a STRING casts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Civil {
    Date,
    Time,
    DateTime,
}

impl Civil {
    fn lower(self) -> &'static str {
        match self {
            Civil::Date => "date",
            Civil::Time => "time",
            Civil::DateTime => "datetime",
        }
    }

    /// The Arrow type of the values the cast makes.
    pub fn data_type(self) -> DataType {
        match self {
            Civil::Date => DataType::Date32,
            Civil::Time => DataType::Time64(TimeUnit::Nanosecond),
            Civil::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    /// The kind a cast to `t` makes, if it is one of these.
    pub fn of(t: &DataType) -> Option<Civil> {
        match t {
            DataType::Date32 => Some(Civil::Date),
            DataType::Time64(_) => Some(Civil::Time),
            DataType::Timestamp(_, None) => Some(Civil::DateTime),
            _ => None,
        }
    }
}

/// `n` decimal digits (`min..=max` of them) at the start of `s`: their
/// value and the rest.
fn number(s: &[u8], min: usize, max: usize) -> Option<(u32, &[u8])> {
    let n = s
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if n < min {
        return None;
    }
    let v = s[..n]
        .iter()
        .fold(0u32, |v, b| v * 10 + u32::from(b - b'0'));
    Some((v, &s[n..]))
}

fn date_part(s: &[u8]) -> Option<(NaiveDate, &[u8])> {
    let (y, s) = number(s, 4, 4)?;
    let s = s.strip_prefix(b"-")?;
    let (m, s) = number(s, 1, 2)?;
    let s = s.strip_prefix(b"-")?;
    let (d, s) = number(s, 1, 2)?;
    if y == 0 {
        return None;
    }
    Some((NaiveDate::from_ymd_opt(y as i32, m, d)?, s))
}

/// `[H]H:[M]M:[S]S[.F]`: the time and whether its second was a leap second
/// (60, then the time is that minute's 59th second with no fraction).
fn time_part(s: &[u8]) -> Option<((NaiveTime, bool), &[u8])> {
    let (h, s) = number(s, 1, 2)?;
    let s = s.strip_prefix(b":")?;
    let (m, s) = number(s, 1, 2)?;
    let s = s.strip_prefix(b":")?;
    let (sec, mut s) = number(s, 1, 2)?;
    let mut micros = 0;
    if let Some(rest) = s.strip_prefix(b".") {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        let (f, rest) = number(rest, n, n)?;
        micros = f * 10u32.pow(6 - n as u32);
        s = rest;
    }
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    if sec == 60 {
        return Some(((NaiveTime::from_hms_opt(h, m, 59)?, true), s));
    }
    Some((
        (NaiveTime::from_hms_micro_opt(h, m, sec, micros)?, false),
        s,
    ))
}

/// A DATE of BigQuery's text.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    match date_part(s.as_bytes())? {
        (d, []) => Some(d),
        _ => None,
    }
}

/// A TIME of BigQuery's text (`23:59:60` is `00:00:00`).
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    match time_part(s.as_bytes())? {
        ((t, leap), []) => Some(if leap {
            t.overflowing_add_signed(chrono::TimeDelta::seconds(1)).0
        } else {
            t
        }),
        _ => None,
    }
}

/// A DATETIME of BigQuery's text: a date, then a time after a space or `T`.
pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let (d, rest) = date_part(s.as_bytes())?;
    let (t, leap) = match rest {
        [] => (NaiveTime::MIN, false),
        [b' ' | b'T' | b't', time @ ..] => match time_part(time)? {
            (t, []) => t,
            _ => return None,
        },
        _ => return None,
    };
    let dt = NaiveDateTime::new(d, t);
    let dt = if leap {
        dt.checked_add_signed(chrono::TimeDelta::seconds(1))?
    } else {
        dt
    };
    (dt.year() <= 9999).then_some(dt)
}

/// `bq_string_to_date|time|datetime(s)`, `bq_safe_…` with `safe`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringToCivil {
    signature: Signature,
    kind: Civil,
    safe: bool,
    name: String,
}

impl ScalarUDFImpl for StringToCivil {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.kind.data_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (_, s) = strings(&args)?;
        let s = s.as_string::<i32>();
        let bad = |t: &str| -> DfResult<()> {
            if self.safe {
                Ok(())
            } else {
                Err(exec_err(format!(
                    "Invalid {} string \"{}\"",
                    self.kind.lower(),
                    t.escape_default()
                )))
            }
        };
        let out: ArrayRef = match self.kind {
            Civil::Date => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                let mut out = Vec::with_capacity(s.len());
                for v in s.iter() {
                    let d = v.and_then(parse_date);
                    if let (Some(t), None) = (v, d) {
                        bad(t)?;
                    }
                    out.push(d.map(|d| (d - epoch).num_days() as i32));
                }
                Arc::new(Date32Array::from(out))
            }
            Civil::Time => {
                let mut out = Vec::with_capacity(s.len());
                for v in s.iter() {
                    let t = v.and_then(parse_time);
                    if let (Some(text), None) = (v, t) {
                        bad(text)?;
                    }
                    out.push(t.map(|t| (t - NaiveTime::MIN).num_nanoseconds().unwrap_or_default()));
                }
                Arc::new(Time64NanosecondArray::from(out))
            }
            Civil::DateTime => {
                let mut out = Vec::with_capacity(s.len());
                for v in s.iter() {
                    let t = v.and_then(parse_datetime);
                    if let (Some(text), None) = (v, t) {
                        bad(text)?;
                    }
                    out.push(t.map(|t| t.and_utc().timestamp_micros()));
                }
                Arc::new(TimestampMicrosecondArray::from(out))
            }
        };
        scalar_result(&args.args, out)
    }
}

/// The cast of a STRING to `kind` (`safe`: NULL for a bad value).
pub fn string_to_civil(kind: Civil, safe: bool) -> ScalarUDF {
    let name = format!(
        "bq_{}string_to_{}",
        if safe { "safe_" } else { "" },
        kind.lower()
    );
    ScalarUDF::new_from_impl(StringToCivil {
        signature: Signature::any(1, Volatility::Immutable),
        kind,
        safe,
        name,
    })
}

// ---------------------------------------------------------------------------
// STRING → INT64

/// An INT64 of BigQuery's text: decimal or `0x` hexadecimal digits after an
/// optional sign, with whitespace around.
pub fn parse_int64(s: &str) -> Option<i64> {
    let t = s.trim_ascii();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = match t.get(..2) {
        Some("0x" | "0X") => (16, &t[2..]),
        _ => (10, t),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `bq_string_to_int64(s)` (`bq_safe_string_to_int64`: NULL for a bad value).
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringToInt64 {
    signature: Signature,
    safe: bool,
}

impl ScalarUDFImpl for StringToInt64 {
    fn name(&self) -> &str {
        if self.safe {
            "bq_safe_string_to_int64"
        } else {
            "bq_string_to_int64"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (_, s) = strings(&args)?;
        let mut out = Vec::with_capacity(s.len());
        for v in s.as_string::<i32>().iter() {
            let n = v.and_then(parse_int64);
            if let (Some(t), None, false) = (v, n, self.safe) {
                return Err(exec_err(format!("Bad int64 value: {}", t.escape_default())));
            }
            out.push(n);
        }
        scalar_result(&args.args, Arc::new(Int64Array::from(out)))
    }
}

/// `bq_string_to_int64`, or with `safe` `bq_safe_string_to_int64`.
pub fn string_to_int64(safe: bool) -> ScalarUDF {
    ScalarUDF::new_from_impl(StringToInt64 {
        signature: Signature::any(1, Volatility::Immutable),
        safe,
    })
}

// ---------------------------------------------------------------------------
// Text of NUMERIC and BIGNUMERIC values

/// How far from the decimal point a digit of a NUMERIC/BIGNUMERIC text may
/// be (both types hold less than 10^39, no digit below 10^-38 counts).
const DECIMAL_REACH: i64 = 100;

/// `s` with its exponent (`1.5e-3`) applied (`0.0015`), for Arrow's cast,
/// which takes no exponent; text without one as it is. `None` for a
/// number too large for any NUMERIC/BIGNUMERIC.
pub fn decimal_text(s: &str) -> Option<String> {
    let t = s.trim_ascii();
    let Some(e) = t.find(['e', 'E']) else {
        return Some(s.to_string());
    };
    let (mantissa, exponent) = (&t[..e], &t[e + 1..]);
    let (sign, mantissa) = match mantissa.as_bytes().first() {
        Some(b'-') => ("-", &mantissa[1..]),
        Some(b'+') => ("", &mantissa[1..]),
        _ => ("", mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exp_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0
        || !all_digits(int)
        || !all_digits(frac)
        || exp_digits.is_empty()
        || !all_digits(exp_digits)
    {
        // Not a number: Arrow's cast says so.
        return Some(s.to_string());
    }
    // The exponent, saturated far beyond the reach of any digit.
    let magnitude = exp_digits
        .bytes()
        .fold(0i64, |v, b| (v * 10 + i64::from(b - b'0')).min(1 << 40));
    let exp = if exponent.starts_with('-') {
        -magnitude
    } else {
        magnitude
    };
    let all: String = int.chars().chain(frac.chars()).collect();
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".into());
    }
    // The position of the decimal point after the first significant digit.
    let leading_zeros = (int.len() + frac.len()) as i64 - digits.len() as i64;
    // Trailing zeros say nothing (and would make the text long).
    let digits = digits.trim_end_matches('0');
    let point = int.len() as i64 - leading_zeros + exp;
    if point > DECIMAL_REACH {
        return None;
    }
    if point < -DECIMAL_REACH {
        return Some("0".into());
    }
    let len = digits.len() as i64;
    Some(if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point >= len {
        format!("{sign}{digits}{}", "0".repeat((point - len) as usize))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{sign}{a}.{b}")
    })
}

/// The exact value of `v` as text with `scale` fractional digits and one
/// more (a `5`) when the next digit calls for rounding away from zero, as
/// BigQuery rounds (Arrow's text cast then rounds it so). `None` for NaN
/// and infinities.
pub fn float_decimal_text(v: f64, scale: usize) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    // Every finite FLOAT64 has at most 1074 fractional digits.
    let exact = format!("{v:.1074}");
    let (int, frac) = exact.split_once('.').unwrap_or((&exact, ""));
    let kept = &frac[..scale.min(frac.len())];
    let up = frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5');
    let mut text = String::with_capacity(int.len() + scale + 2);
    text.push_str(int);
    if !kept.is_empty() || up {
        text.push('.');
        text.push_str(kept);
        if up {
            text.push('5');
        }
    }
    Some(text)
}

/// `bq_decimal_text(s)`: [`decimal_text`] as a function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DecimalText {
    signature: Signature,
}

impl ScalarUDFImpl for DecimalText {
    fn name(&self) -> &str {
        "bq_decimal_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (_, s) = strings(&args)?;
        let mut out = Vec::with_capacity(s.len());
        for v in s.as_string::<i32>().iter() {
            // Too large: as written, which the cast refuses.
            out.push(v.map(|t| decimal_text(t).unwrap_or_else(|| t.to_string())));
        }
        scalar_result(&args.args, Arc::new(StringArray::from(out)))
    }
}

/// `bq_float_decimal_text(x, scale)`: [`float_decimal_text`] as a
/// function, an error for NaN and infinities (`bq_safe_float_decimal_text`:
/// NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatDecimalText {
    signature: Signature,
    safe: bool,
}

impl ScalarUDFImpl for FloatDecimalText {
    fn name(&self) -> &str {
        if self.safe {
            "bq_safe_float_decimal_text"
        } else {
            "bq_float_decimal_text"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let scale = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(s)))) if (0..=76).contains(s) => {
                *s as usize
            }
            _ => return Err(exec_err("bq_float_decimal_text: bad scale")),
        };
        let f = cast(&arrays[0], &DataType::Float64)?;
        let mut out = Vec::with_capacity(f.len());
        for v in f.as_primitive::<arrow::datatypes::Float64Type>().iter() {
            out.push(match v.map(|x| (x, float_decimal_text(x, scale))) {
                None => None,
                Some((_, Some(text))) => Some(text),
                Some((_, None)) if self.safe => None,
                Some((x, None)) => {
                    return Err(exec_err(format!(
                        "Illegal conversion of non-finite floating point number to numeric: {}",
                        super::typed::float_to_string(x)
                    )));
                }
            });
        }
        scalar_result(&args.args, Arc::new(StringArray::from(out)))
    }
}

// ---------------------------------------------------------------------------
// DATE(x)

/// `bq_date_arg(x)`: the argument of `DATE(x)`, a STRING read as a
/// TIMESTAMP (BigQuery's DATE('2020-09-01 12:34:56-08') is the date of that
/// instant in UTC), anything else as it is; the cast to DATE follows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateArg {
    signature: Signature,
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

impl ScalarUDFImpl for DateArg {
    fn name(&self) -> &str {
        "bq_date_arg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        Ok(arg_types
            .iter()
            .map(|t| {
                if is_text(t) {
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                } else {
                    t.clone()
                }
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| exec_err("DATE needs an argument"))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        args.args
            .into_iter()
            .next()
            .ok_or_else(|| exec_err("DATE needs an argument"))
    }
}

// ---------------------------------------------------------------------------
// Scalar subqueries

/// `bq_nullable(x)`: `x`, typed as possibly NULL. A scalar subquery is NULL
/// when it has no row, but DataFusion types it as its column, which may be
/// NOT NULL (`(SELECT 1 … WHERE FALSE) IS NULL` became `false`); the
/// analyzer rule wraps scalar subqueries in this.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nullable {
    signature: Signature,
}

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        "bq_nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| exec_err("bq_nullable takes one argument"))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        args.args
            .into_iter()
            .next()
            .ok_or_else(|| exec_err("bq_nullable takes one argument"))
    }
}

// ---------------------------------------------------------------------------
// STRING(n), BYTES(n)

/// `bq_max_length(v, n)`: `v`, a STRING of at most `n` characters or BYTES
/// of at most `n` bytes (`bq_safe_max_length`: else NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
struct MaxLength {
    signature: Signature,
    safe: bool,
}

impl ScalarUDFImpl for MaxLength {
    fn name(&self) -> &str {
        if self.safe {
            "bq_safe_max_length"
        } else {
            "bq_max_length"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let max = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))) => *n,
            _ => return Err(exec_err(format!("{}: bad length", self.name()))),
        };
        let values = &arrays[0];
        let (type_name, lengths): (&str, Vec<Option<usize>>) = match values.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let s = cast(values, &DataType::Utf8)?;
                let lengths = s
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|t| t.chars().count()))
                    .collect();
                ("STRING", lengths)
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                let b = cast(values, &DataType::Binary)?;
                let lengths = b
                    .as_binary::<i32>()
                    .iter()
                    .map(|v| v.map(<[u8]>::len))
                    .collect();
                ("BYTES", lengths)
            }
            other => {
                return Err(exec_err(format!(
                    "{}: not a STRING or BYTES: {other}",
                    self.name()
                )));
            }
        };
        let mut keep = Vec::with_capacity(lengths.len());
        for len in lengths {
            match len {
                Some(n) if n as i64 > max => {
                    if !self.safe {
                        return Err(exec_err(format!(
                            "{type_name}({max}) has maximum length {max} but got a value with length {n}"
                        )));
                    }
                    keep.push(false);
                }
                _ => keep.push(true),
            }
        }
        let out = if keep.iter().all(|k| *k) {
            values.clone()
        } else {
            arrow::compute::nullif(
                values,
                &arrow::array::BooleanArray::from(keep.iter().map(|k| !k).collect::<Vec<_>>()),
            )?
        };
        scalar_result(&args.args, out)
    }
}

/// `bq_nullable`.
pub fn nullable_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Nullable {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// `bq_decimal_text`.
pub fn decimal_text_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(DecimalText {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// `bq_float_decimal_text`, or with `safe` `bq_safe_float_decimal_text`.
pub fn float_decimal_text_udf(safe: bool) -> ScalarUDF {
    ScalarUDF::new_from_impl(FloatDecimalText {
        signature: Signature::any(2, Volatility::Immutable),
        safe,
    })
}

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let mut all = vec![
        nullable_udf(),
        ScalarUDF::new_from_impl(DateArg {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        string_to_int64(false),
        string_to_int64(true),
        decimal_text_udf(),
        float_decimal_text_udf(false),
        float_decimal_text_udf(true),
        ScalarUDF::new_from_impl(MaxLength {
            signature: Signature::any(2, Volatility::Immutable),
            safe: false,
        }),
        ScalarUDF::new_from_impl(MaxLength {
            signature: Signature::any(2, Volatility::Immutable),
            safe: true,
        }),
    ];
    for kind in [Civil::Date, Civil::Time, Civil::DateTime] {
        all.push(string_to_civil(kind, false));
        all.push(string_to_civil(kind, true));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_text_as_bigquery_reads_it() {
        let t = |s| parse_time(s).map(|t| t.format("%H:%M:%S%.f").to_string());
        assert_eq!(t("01:02:3").as_deref(), Some("01:02:03"));
        assert_eq!(t("1:2:03.12345").as_deref(), Some("01:02:03.123450"));
        assert_eq!(t("12:59:60.123456").as_deref(), Some("13:00:00"));
        assert_eq!(t("23:59:60").as_deref(), Some("00:00:00"));
        for bad in [
            "24:00:00",
            "abc",
            "01:02",
            "01:02:03.",
            "01:02:03.1234567",
            "01:60:00",
            "001:02:03",
            " 01:02:03",
            "01:02:03 ",
            "",
            "٣:02:03",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        let dt = |s| parse_datetime(s).map(|t| t.format("%Y-%m-%d %H:%M:%S%.f").to_string());
        assert_eq!(
            dt("2006-1-2 1:02:3").as_deref(),
            Some("2006-01-02 01:02:03")
        );
        assert_eq!(dt("2006-01-02").as_deref(), Some("2006-01-02 00:00:00"));
        assert_eq!(
            dt("2015-11-06T23:59:60.5").as_deref(),
            Some("2015-11-07 00:00:00")
        );
        for bad in [
            "2006-01-02 01:02:03.123456 UTC",
            "2015-13-05 01:02:03",
            "9999-12-31 23:59:60",
            "0000-01-01",
            "2006-01-02 ",
            "2006-01-02  01:02:03",
            "20060-01-02",
            "2006-02-30",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2006-1-2"), NaiveDate::from_ymd_opt(2006, 1, 2));
        assert_eq!(parse_date("2006-01-02 00:00:00"), None);
    }

    #[test]
    fn int64_text_may_be_hexadecimal() {
        assert_eq!(parse_int64("-0x100"), Some(-256));
        assert_eq!(parse_int64("  +0X121abc "), Some(0x121abc));
        assert_eq!(parse_int64("-0x8000000000000000"), Some(i64::MIN));
        assert_eq!(parse_int64("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int64("-0"), Some(0));
        for bad in [
            "0xFFFFFFFFFFFFFFFF",
            "0x8000000000000000",
            "- 0x121",
            "0x",
            "abc",
            "1e3",
            "",
            "+",
            "0x-1",
            "9223372036854775808",
            "１",
        ] {
            assert_eq!(parse_int64(bad), None, "{bad}");
        }
    }

    #[test]
    fn decimal_exponents_are_written_out() {
        let d = |s| decimal_text(s);
        assert_eq!(d("1e2").as_deref(), Some("100"));
        assert_eq!(d("1e38").as_deref(), Some(&*format!("1{}", "0".repeat(38))));
        assert_eq!(d("-1.25E-3").as_deref(), Some("-0.00125"));
        assert_eq!(d("12.5e1").as_deref(), Some("125"));
        assert_eq!(d("0.0125e+2").as_deref(), Some("1.25"));
        assert_eq!(d("00e5").as_deref(), Some("0"));
        assert_eq!(d("1e-99999999999999999999").as_deref(), Some("0"));
        assert_eq!(d("1e99999999999999999999"), None);
        assert_eq!(d("1.5").as_deref(), Some("1.5"));
        assert_eq!(d("1.2500e1").as_deref(), Some("12.5"));
        assert_eq!(d("100e-2").as_deref(), Some("1"));
        assert_eq!(d("-0.0e7").as_deref(), Some("0"));
        let long = format!("1{}e-100000", "0".repeat(100_000));
        assert_eq!(d(&long).as_deref(), Some("1"));
        let long = format!("{}1e-5", "0".repeat(100_000));
        assert_eq!(d(&long).as_deref(), Some("0.00001"));
        // Not numbers: left for the cast to refuse.
        for s in ["e5", "1e", "1e+-2", "1.2.3e4", "xe1", "1e2x"] {
            assert_eq!(d(s).as_deref(), Some(s), "{s}");
        }
    }

    #[test]
    fn floats_become_decimals_exactly() {
        assert_eq!(
            float_decimal_text(99999999999999999999999999.999999999, 9).as_deref(),
            Some("100000000000000004764729344.000000000")
        );
        // 1/1024 = 0.0009765625: the tie rounds away from zero.
        assert_eq!(
            float_decimal_text(-1.0 / 1024.0, 9).as_deref(),
            Some("-0.0009765625")
        );
        assert_eq!(float_decimal_text(0.1, 2).as_deref(), Some("0.10"));
        assert_eq!(float_decimal_text(2.5, 0).as_deref(), Some("2.5"));
        assert_eq!(float_decimal_text(f64::NAN, 9), None);
        assert!(float_decimal_text(f64::MAX, 38).is_some());
        assert!(float_decimal_text(f64::MIN_POSITIVE / 3.0, 38).is_some());
    }
}

//! BigQuery functions DataFusion lacks, as scalar UDFs named `bq_*`.
//!
//! The SQL rewriter ([`super::dialect`]) turns BigQuery's spelling into calls
//! of these: `TIMESTAMP_DIFF(a, b, MINUTE)` → `bq_timestamp_diff(a, b, 'MINUTE')`,
//! `DATE_SUB(d, INTERVAL 3 DAY)` → `bq_date_add(d, -(3), 'DAY')`, and so on.
//! Arguments are coerced by DataFusion to the declared types, so a DATETIME
//! or a nanosecond timestamp arrives here as TIMESTAMP (µs, UTC).

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use chrono::format::{Item, StrftimeItems};
use chrono::{
    DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeZone as _, Utc,
};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;

use super::udf::{DfResult, exec_err};
use crate::schema::timestamp_type;

const EPOCH_DAYS_CE: i32 = 719_163; // NaiveDate::from_ymd(1970,1,1).num_days_from_ce()

/// BigQuery's first DATE, 0001-01-01, in days from 1970-01-01.
pub const MIN_DATE_DAYS: i32 = -719_162;
/// BigQuery's last DATE, 9999-12-31, in days from 1970-01-01.
pub const MAX_DATE_DAYS: i32 = 2_932_896;
/// BigQuery's first TIMESTAMP/DATETIME, 0001-01-01 00:00:00, in µs from the epoch.
pub const MIN_TIMESTAMP_MICROS: i64 = -62_135_596_800_000_000;
/// BigQuery's last TIMESTAMP/DATETIME, 9999-12-31 23:59:59.999999, in µs from the epoch.
pub const MAX_TIMESTAMP_MICROS: i64 = 253_402_300_799_999_999;

/// The error for a DATE/DATETIME/TIMESTAMP outside 0001-01-01 .. 9999-12-31.
fn out_of_range(function: &str, what: &str) -> DataFusionError {
    exec_err(format!(
        "{function}: {what} is out of range (BigQuery dates and timestamps go from 0001-01-01 to 9999-12-31)"
    ))
}

/// A DATE (days from 1970-01-01) in BigQuery's range.
fn date_of(days: i32) -> DfResult<NaiveDate> {
    (MIN_DATE_DAYS..=MAX_DATE_DAYS)
        .contains(&days)
        .then(|| NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_CE))
        .flatten()
        .ok_or_else(|| out_of_range("DATE", &format!("a date {days} days from 1970-01-01")))
}

/// A TIMESTAMP/DATETIME (µs from the epoch) in BigQuery's range.
fn timestamp_of(function: &str, micros: i64) -> DfResult<DateTime<Utc>> {
    (MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS)
        .contains(&micros)
        .then(|| DateTime::<Utc>::from_timestamp_micros(micros))
        .flatten()
        .ok_or_else(|| {
            out_of_range(
                function,
                &format!("a timestamp {micros} µs from 1970-01-01"),
            )
        })
}

/// A result DATE in BigQuery's range.
fn checked_date(function: &str, d: NaiveDate) -> DfResult<NaiveDate> {
    let days = d.num_days_from_ce() - EPOCH_DAYS_CE;
    if (MIN_DATE_DAYS..=MAX_DATE_DAYS).contains(&days) {
        Ok(d)
    } else {
        Err(out_of_range(function, &format!("the result {d}")))
    }
}

/// A result TIMESTAMP/DATETIME in BigQuery's range.
fn checked_micros(function: &str, micros: Option<i64>) -> DfResult<i64> {
    match micros {
        Some(m) if (MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS).contains(&m) => Ok(m),
        _ => Err(out_of_range(function, "the result")),
    }
}

fn days_of(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - EPOCH_DAYS_CE
}

fn micros_unit(function: &str, unit: &str) -> DfResult<i64> {
    Ok(match unit.to_ascii_uppercase().as_str() {
        "MICROSECOND" => 1,
        "MILLISECOND" => 1_000,
        "SECOND" => 1_000_000,
        "MINUTE" => 60_000_000,
        "HOUR" => 3_600_000_000,
        "DAY" => 86_400_000_000,
        other => {
            return Err(exec_err(format!(
                "{function}: unsupported date part {other} (MICROSECOND, MILLISECOND, SECOND, MINUTE, HOUR, DAY)"
            )));
        }
    })
}

/// `d` plus `n` times `unit` (DAY, WEEK, MONTH, QUARTER, YEAR): an error,
/// never a panic or a wrapped value, when the result is outside BigQuery's
/// range, however large `n`.
fn add_to_date(function: &str, d: NaiveDate, n: i64, unit: &str) -> DfResult<NaiveDate> {
    let out = || out_of_range(function, &format!("{d} + {n} {unit}"));
    let days = |k: Option<i64>| {
        k.and_then(chrono::TimeDelta::try_days)
            .and_then(|k| d.checked_add_signed(k))
            .ok_or_else(out)
    };
    let months = |k: Option<i64>| {
        let k = k.ok_or_else(out)?;
        let m = Months::new(u32::try_from(k.unsigned_abs()).map_err(|_| out())?);
        if k >= 0 {
            d.checked_add_months(m)
        } else {
            d.checked_sub_months(m)
        }
        .ok_or_else(out)
    };
    let r = match unit.to_ascii_uppercase().as_str() {
        "DAY" => days(Some(n)),
        "WEEK" => days(n.checked_mul(7)),
        "MONTH" => months(Some(n)),
        "QUARTER" => months(n.checked_mul(3)),
        "YEAR" => months(n.checked_mul(12)),
        other => Err(exec_err(format!(
            "{function}: unsupported date part {other} (DAY, WEEK, MONTH, QUARTER, YEAR)"
        ))),
    }?;
    checked_date(function, r)
}

fn arrays(args: &[ColumnarValue]) -> DfResult<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(args)
}

fn downcast<'a, T: 'static>(a: &'a ArrayRef, function: &str) -> DfResult<&'a T> {
    a.as_any().downcast_ref::<T>().ok_or_else(|| {
        exec_err(format!(
            "{function}: unexpected argument type {}",
            a.data_type()
        ))
    })
}

fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// Wraps an array result back into a scalar when every input was a scalar.
fn finish(args: &[ColumnarValue], out: ArrayRef) -> DfResult<ColumnarValue> {
    if all_scalar(args) && out.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

fn timestamp_diff(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let x = downcast::<TimestampMicrosecondArray>(&a[0], "TIMESTAMP_DIFF")?;
    let y = downcast::<TimestampMicrosecondArray>(&a[1], "TIMESTAMP_DIFF")?;
    let unit = downcast::<StringArray>(&a[2], "TIMESTAMP_DIFF")?;
    let mut out = Int64Array::builder(x.len());
    for i in 0..x.len() {
        if x.is_null(i) || y.is_null(i) || unit.is_null(i) {
            out.append_null();
        } else {
            let u = micros_unit("TIMESTAMP_DIFF", unit.value(i))?;
            let (a, b) = (
                timestamp_of("TIMESTAMP_DIFF", x.value(i))?,
                timestamp_of("TIMESTAMP_DIFF", y.value(i))?,
            );
            // In range, the difference fits an i64 of microseconds.
            out.append_value((a.timestamp_micros() - b.timestamp_micros()) / u);
        }
    }
    finish(args, Arc::new(out.finish()))
}

/// `TIMESTAMP_ADD`, or with `datetime` `DATETIME_ADD` (a DATETIME result).
fn timestamp_add(args: &[ColumnarValue], datetime: bool) -> DfResult<ColumnarValue> {
    let function = if datetime {
        "DATETIME_ADD"
    } else {
        "TIMESTAMP_ADD"
    };
    let a = arrays(args)?;
    let ts = downcast::<TimestampMicrosecondArray>(&a[0], function)?;
    let n = downcast::<Int64Array>(&a[1], function)?;
    let unit = downcast::<StringArray>(&a[2], function)?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if ts.is_null(i) || n.is_null(i) || unit.is_null(i) {
            out.push(None);
            continue;
        }
        let u = unit.value(i).to_ascii_uppercase();
        let dt = timestamp_of(function, ts.value(i))?.naive_utc();
        // TIMESTAMP_ADD takes no calendar parts in BigQuery; DATETIME_ADD does.
        let v = if matches!(u.as_str(), "WEEK" | "MONTH" | "QUARTER" | "YEAR") {
            let d = add_to_date(function, dt.date(), n.value(i), &u)?;
            Some(
                NaiveDateTime::new(d, dt.time())
                    .and_utc()
                    .timestamp_micros(),
            )
        } else {
            let m = micros_unit(function, &u)?;
            n.value(i)
                .checked_mul(m)
                .and_then(|d| ts.value(i).checked_add(d))
        };
        out.push(Some(checked_micros(function, v)?));
    }
    let arr = TimestampMicrosecondArray::from(out);
    let arr = if datetime {
        arr
    } else {
        arr.with_timezone("UTC")
    };
    finish(args, Arc::new(arr))
}

fn date_add(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let d = downcast::<Date32Array>(&a[0], "DATE_ADD")?;
    let n = downcast::<Int64Array>(&a[1], "DATE_ADD")?;
    let unit = downcast::<StringArray>(&a[2], "DATE_ADD")?;
    let mut out = Vec::with_capacity(d.len());
    for i in 0..d.len() {
        if d.is_null(i) || n.is_null(i) || unit.is_null(i) {
            out.push(None);
        } else {
            let r = add_to_date("DATE_ADD", date_of(d.value(i))?, n.value(i), unit.value(i))?;
            out.push(Some(days_of(r)));
        }
    }
    finish(args, Arc::new(Date32Array::from(out)))
}

fn date_diff(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let x = downcast::<Date32Array>(&a[0], "DATE_DIFF")?;
    let y = downcast::<Date32Array>(&a[1], "DATE_DIFF")?;
    let unit = downcast::<StringArray>(&a[2], "DATE_DIFF")?;
    let mut out = Int64Array::builder(x.len());
    for i in 0..x.len() {
        if x.is_null(i) || y.is_null(i) || unit.is_null(i) {
            out.append_null();
            continue;
        }
        let (dx, dy) = (date_of(x.value(i))?, date_of(y.value(i))?);
        let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
        let v = match unit.value(i).to_ascii_uppercase().as_str() {
            "DAY" => i64::from(x.value(i)) - i64::from(y.value(i)),
            // Weeks start on Sunday: count the Sundays crossed.
            "WEEK" => {
                let week = |days: i32| (i64::from(days) + 4).div_euclid(7);
                week(x.value(i)) - week(y.value(i))
            }
            "MONTH" => months(dx) - months(dy),
            "QUARTER" => months(dx).div_euclid(3) - months(dy).div_euclid(3),
            "YEAR" => i64::from(dx.year() - dy.year()),
            other => {
                return Err(exec_err(format!(
                    "DATE_DIFF: unsupported date part {other} (DAY, WEEK, MONTH, QUARTER, YEAR)"
                )));
            }
        };
        out.append_value(v);
    }
    finish(args, Arc::new(out.finish()))
}

/// Formats `t` with a BigQuery format string: chrono's strftime elements,
/// plus BigQuery's `%Q` (quarter), `%E4Y` (four-digit year), `%E<n>S`
/// (seconds with n fractional digits), `%E*S` (seconds with their
/// fraction) and `%Ez` (`+HH:MM`). An element `t` cannot show (a zone for
/// a DATETIME) or an unknown one is an error naming it, never a panic or
/// an empty string.
fn bq_format<T>(function: &str, fmt: &str, t: &T) -> DfResult<String>
where
    T: Datelike + chrono::Timelike + Formattable,
{
    let bad = |spec: &str| {
        exec_err(format!(
            "{function}: invalid format element '{spec}' in '{fmt}'"
        ))
    };
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at..];
        // The element: `%` + optional flag + `E`/`O` forms + one character.
        let mut end = None;
        let mut e_form = false;
        for (i, c) in spec.char_indices().skip(1) {
            if c == 'E' || c == 'O' {
                e_form = true;
                continue;
            }
            if e_form && (c.is_ascii_digit() || c == '*' || c == '#') {
                continue;
            }
            if !e_form && matches!(c, '-' | '_' | '0' | '.' | ':' | '3' | '6' | '9') {
                continue;
            }
            end = Some(i + c.len_utf8());
            break;
        }
        let Some(end) = end else {
            return Err(bad(spec));
        };
        let element = &spec[..end];
        let micros = t.nanosecond() % 1_000_000_000 / 1_000;
        let seconds = |digits: usize| {
            let mut s = format!("{:02}", t.second());
            if digits > 0 {
                let frac = format!("{:09}", u64::from(micros) * 1_000);
                s.push('.');
                s.push_str(&frac[..digits.min(9)]);
                s.push_str(&"0".repeat(digits.saturating_sub(9)));
            }
            s
        };
        match element {
            "%Q" => out.push_str(&(t.month0() / 3 + 1).to_string()),
            "%E4Y" => out.push_str(&format!("{:04}", t.year())),
            "%E*S" | "%E#S" => {
                let mut s = format!("{:02}", t.second());
                if micros > 0 {
                    let frac = format!("{micros:06}");
                    s.push('.');
                    s.push_str(frac.trim_end_matches('0'));
                }
                out.push_str(&s);
            }
            "%Ez" => out.push_str(&t.chrono(function, "%:z").map_err(|_| bad(element))?),
            e if e.starts_with("%E") && e.ends_with('S') => {
                let digits: usize = e[2..e.len() - 1].parse().map_err(|_| bad(e))?;
                if digits > 12 {
                    return Err(bad(e));
                }
                out.push_str(&seconds(digits));
            }
            e if e.starts_with("%E") || e.starts_with("%O") => {
                // %Ec, %EC, %Ex, %EX, %Ey, %EY, %Od, … are the plain elements.
                let plain = format!("%{}", &e[e.len() - 1..]);
                out.push_str(&t.chrono(function, &plain).map_err(|_| bad(e))?);
            }
            e => out.push_str(&t.chrono(function, e).map_err(|_| bad(e))?),
        }
        rest = &spec[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value chrono formats one strftime element of.
trait Formattable {
    /// The element formatted; `Err` if invalid or not applicable.
    fn chrono(&self, function: &str, element: &str) -> Result<String, ()>;
}

fn chrono_format(
    element: &str,
    f: impl FnOnce(StrftimeItems<'_>, &mut String) -> std::fmt::Result,
) -> Result<String, ()> {
    let items = StrftimeItems::new(element);
    if items.clone().any(|i| matches!(i, Item::Error)) {
        return Err(());
    }
    let mut s = String::new();
    f(items, &mut s).map_err(|_| ())?;
    Ok(s)
}

impl Formattable for NaiveDateTime {
    fn chrono(&self, _function: &str, element: &str) -> Result<String, ()> {
        chrono_format(element, |items, s| {
            write!(s, "{}", self.format_with_items(items))
        })
    }
}

impl<Z: chrono::TimeZone> Formattable for DateTime<Z>
where
    Z::Offset: std::fmt::Display,
{
    fn chrono(&self, _function: &str, element: &str) -> Result<String, ()> {
        chrono_format(element, |items, s| {
            write!(s, "{}", self.format_with_items(items))
        })
    }
}

fn format_date(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let fmt = downcast::<StringArray>(&a[0], "FORMAT_DATE")?;
    let d = downcast::<Date32Array>(&a[1], "FORMAT_DATE")?;
    let mut out = Vec::with_capacity(d.len());
    for i in 0..d.len() {
        if fmt.is_null(i) || d.is_null(i) {
            out.push(None);
        } else {
            // A DATE formats as its midnight: `%H:%M` is `00:00`, `%c` shows 00:00:00.
            let date = date_of(d.value(i))?.and_time(chrono::NaiveTime::MIN);
            out.push(Some(bq_format("FORMAT_DATE", fmt.value(i), &date)?));
        }
    }
    finish(args, Arc::new(StringArray::from(out)))
}

fn format_timestamp(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let fmt = downcast::<StringArray>(&a[0], "FORMAT_TIMESTAMP")?;
    let ts = downcast::<TimestampMicrosecondArray>(&a[1], "FORMAT_TIMESTAMP")?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if fmt.is_null(i) || ts.is_null(i) {
            out.push(None);
        } else {
            let t = timestamp_of("FORMAT_TIMESTAMP", ts.value(i))?;
            out.push(Some(bq_format("FORMAT_TIMESTAMP", fmt.value(i), &t)?));
        }
    }
    finish(args, Arc::new(StringArray::from(out)))
}

/// `FORMAT_DATETIME(format, datetime)`: no time zone to show.
fn format_datetime(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let fmt = downcast::<StringArray>(&a[0], "FORMAT_DATETIME")?;
    let ts = downcast::<TimestampMicrosecondArray>(&a[1], "FORMAT_DATETIME")?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if fmt.is_null(i) || ts.is_null(i) {
            out.push(None);
        } else {
            let t = timestamp_of("FORMAT_DATETIME", ts.value(i))?.naive_utc();
            out.push(Some(bq_format("FORMAT_DATETIME", fmt.value(i), &t)?));
        }
    }
    finish(args, Arc::new(StringArray::from(out)))
}

/// A BigQuery time zone: an IANA name (`Europe/Warsaw`, `UTC`) or an offset (`+02:00`).
#[derive(Clone, Copy)]
pub(super) enum Zone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl Zone {
    pub(super) fn parse(name: &str, function: &str) -> DfResult<Zone> {
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return Ok(Zone::Named(tz));
        }
        let offset = name.strip_prefix("UTC").unwrap_or(name);
        // Any first character, ASCII or not, is split off whole (never a
        // byte slice inside a character).
        let mut chars = offset.chars();
        let sign = match chars.next() {
            Some('+') => 1,
            Some('-') => -1,
            _ => 0,
        };
        let rest = chars.as_str();
        // `+HH:MM`, `+HH`, or `+HHMM` (`UTC+1234`).
        let (h, m) = match rest.split_once(':') {
            Some(hm) => hm,
            None if rest.len() == 4 && rest.is_char_boundary(2) => rest.split_at(2),
            None => (rest, "0"),
        };
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
        let hours_minutes = (digits(h) && digits(m))
            .then(|| h.parse::<i32>().ok().zip(m.parse::<i32>().ok()))
            .flatten();
        match (sign, hours_minutes) {
            (1 | -1, Some((h, m))) if h <= 14 && m < 60 => {
                FixedOffset::east_opt(sign * (h * 3600 + m * 60))
                    .map(Zone::Fixed)
                    .ok_or_else(|| exec_err(format!("{function}: invalid time zone '{name}'")))
            }
            _ => Err(exec_err(format!(
                "{function}: unknown time zone '{name}' (use an IANA name such as 'Europe/Warsaw', or an offset such as '+02:00')"
            ))),
        }
    }

    /// The instant `utc` as a date-time with this zone's offset at that instant.
    pub(super) fn at(self, utc: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            Zone::Named(tz) => utc.with_timezone(&tz).fixed_offset(),
            Zone::Fixed(off) => utc.with_timezone(&off),
        }
    }

    /// The instant a wall-clock time in this zone names (the earlier one when
    /// clocks go back; `None` in the hour skipped when they go forward).
    pub(super) fn instant(self, local: &NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            Zone::Named(tz) => tz.from_local_datetime(local).earliest().map(|t| t.to_utc()),
            Zone::Fixed(off) => off.from_local_datetime(local).single().map(|t| t.to_utc()),
        }
    }
}

/// `FORMAT_TIMESTAMP(format, ts, zone)`.
fn format_timestamp_tz(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let fmt = downcast::<StringArray>(&a[0], "FORMAT_TIMESTAMP")?;
    let ts = downcast::<TimestampMicrosecondArray>(&a[1], "FORMAT_TIMESTAMP")?;
    let tz = downcast::<StringArray>(&a[2], "FORMAT_TIMESTAMP")?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if fmt.is_null(i) || ts.is_null(i) || tz.is_null(i) {
            out.push(None);
            continue;
        }
        let zone = Zone::parse(tz.value(i), "FORMAT_TIMESTAMP")?;
        let t = timestamp_of("FORMAT_TIMESTAMP", ts.value(i))?;
        let local = zone.at(t);
        out.push(Some(bq_format("FORMAT_TIMESTAMP", fmt.value(i), &local)?));
    }
    finish(args, Arc::new(StringArray::from(out)))
}

/// `DATETIME(ts, zone)`: the wall-clock time of an instant in a zone
/// (also `DATE(ts, zone)`, cast to DATE).
fn to_zone(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let ts = downcast::<TimestampMicrosecondArray>(&a[0], "DATETIME")?;
    let tz = downcast::<StringArray>(&a[1], "DATETIME")?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if ts.is_null(i) || tz.is_null(i) {
            out.push(None);
            continue;
        }
        let zone = Zone::parse(tz.value(i), "DATE/DATETIME")?;
        let t = timestamp_of("DATE/DATETIME", ts.value(i))?;
        let local = zone.at(t).naive_local().and_utc().timestamp_micros();
        out.push(Some(checked_micros("DATE/DATETIME", Some(local))?));
    }
    finish(args, Arc::new(TimestampMicrosecondArray::from(out)))
}

/// `TIMESTAMP(datetime, zone)`: the instant a wall-clock time in a zone names.
fn from_zone(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let dt = downcast::<TimestampMicrosecondArray>(&a[0], "TIMESTAMP")?;
    let tz = downcast::<StringArray>(&a[1], "TIMESTAMP")?;
    let mut out = Vec::with_capacity(dt.len());
    for i in 0..dt.len() {
        if dt.is_null(i) || tz.is_null(i) {
            out.push(None);
            continue;
        }
        let zone = Zone::parse(tz.value(i), "TIMESTAMP")?;
        let local = timestamp_of("TIMESTAMP", dt.value(i))?.naive_utc();
        let t = zone.instant(&local).ok_or_else(|| {
            exec_err(format!(
                "TIMESTAMP: {local} does not exist in {} (clocks go forward)",
                tz.value(i)
            ))
        })?;
        out.push(Some(checked_micros(
            "TIMESTAMP",
            Some(t.timestamp_micros()),
        )?));
    }
    finish(
        args,
        Arc::new(TimestampMicrosecondArray::from(out).with_timezone("UTC")),
    )
}

/// The fields of `s` read with the format `fmt` as BigQuery's PARSE_*
/// functions read them: whitespace around the text is allowed, but not
/// before a number (`%Y%j` does not read `2020 50`; `%e` may have a
/// space); fields the format lacks come from 1970-01-01 00:00:00 (a week
/// number without a weekday means the week's first day); `%y` alone is
/// 1969–2068 as in POSIX.
fn bq_strptime(s: &str, fmt: &str) -> Result<chrono::format::Parsed, String> {
    use chrono::format::{Pad, Parsed};
    let mut parsed = Parsed::new();
    let mut rest = s.trim_ascii_start();
    for item in StrftimeItems::new(fmt) {
        if let Item::Numeric(_, pad) = &item
            && *pad != Pad::Space
            && rest.starts_with(|c: char| c.is_whitespace())
        {
            return Err(format!("a space where the format has a number: '{rest}'"));
        }
        rest = chrono::format::parse_and_remainder(&mut parsed, rest, std::iter::once(item))
            .map_err(|e| e.to_string())?;
    }
    if !rest.trim_ascii().is_empty() {
        return Err(format!("trailing text '{rest}'"));
    }
    let fill = |r: chrono::format::ParseResult<()>| r.map_err(|e| e.to_string());
    let has_year = parsed.year().is_some()
        || parsed.year_div_100().is_some()
        || parsed.year_mod_100().is_some()
        || parsed.isoyear().is_some()
        || parsed.isoyear_mod_100().is_some()
        || parsed.timestamp().is_some();
    if parsed.timestamp().is_none() {
        if !has_year {
            fill(parsed.set_year(1970))?;
        } else if parsed.year().is_none()
            && parsed.year_div_100().is_none()
            && let Some(y) = parsed.year_mod_100()
        {
            fill(parsed.set_year_div_100(if y < 69 { 20 } else { 19 }))?;
        }
        let has_week = parsed.week_from_mon().is_some()
            || parsed.week_from_sun().is_some()
            || parsed.isoweek().is_some();
        if parsed.weekday().is_none() {
            if parsed.week_from_mon().is_some() || parsed.isoweek().is_some() {
                fill(parsed.set_weekday(chrono::Weekday::Mon))?;
            } else if parsed.week_from_sun().is_some() {
                fill(parsed.set_weekday(chrono::Weekday::Sun))?;
            }
        }
        if !has_week && parsed.ordinal().is_none() {
            if parsed.month().is_none() {
                fill(parsed.set_month(1))?;
            }
            if parsed.day().is_none() {
                fill(parsed.set_day(1))?;
            }
        }
        if parsed.hour_mod_12().is_none() {
            fill(parsed.set_hour(0))?;
        } else if parsed.hour_div_12().is_none() {
            fill(parsed.set_ampm(false))?;
        }
        if parsed.minute().is_none() {
            fill(parsed.set_minute(0))?;
        }
    }
    Ok(parsed)
}

/// `PARSE_DATE`; `safe` (`SAFE.PARSE_DATE`): NULL instead of an error.
fn parse_date(args: &[ColumnarValue], safe: bool) -> DfResult<ColumnarValue> {
    let a = arrays(args)?;
    let fmt = downcast::<StringArray>(&a[0], "PARSE_DATE")?;
    let s = downcast::<StringArray>(&a[1], "PARSE_DATE")?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        if fmt.is_null(i) || s.is_null(i) {
            out.push(None);
        } else {
            let parsed = bq_strptime(s.value(i), fmt.value(i))
                .and_then(|p| p.to_naive_date().map_err(|e| e.to_string()))
                .and_then(|d| {
                    checked_date("PARSE_DATE", d).map_err(|_| format!("{d} is out of range"))
                });
            match parsed {
                Ok(d) => out.push(Some(days_of(d))),
                Err(_) if safe => out.push(None),
                Err(e) => {
                    return Err(exec_err(format!(
                        "PARSE_DATE: cannot parse '{}' with format '{}': {e}",
                        s.value(i),
                        fmt.value(i)
                    )));
                }
            }
        }
    }
    finish(args, Arc::new(Date32Array::from(out)))
}

/// `PARSE_TIMESTAMP(format, text[, zone])`, the text read as wall-clock
/// time in `zone` (default UTC); `safe` (`SAFE.PARSE_TIMESTAMP`): NULL
/// instead of an error.
fn parse_timestamp(args: &[ColumnarValue], safe: bool) -> DfResult<ColumnarValue> {
    parse_micros(args, safe, false)
}

/// `PARSE_DATETIME(format, text)`: a DATETIME.
fn parse_datetime(args: &[ColumnarValue], safe: bool) -> DfResult<ColumnarValue> {
    parse_micros(args, safe, true)
}

fn parse_micros(args: &[ColumnarValue], safe: bool, datetime: bool) -> DfResult<ColumnarValue> {
    let function = if datetime {
        "PARSE_DATETIME"
    } else {
        "PARSE_TIMESTAMP"
    };
    let a = arrays(args)?;
    let fmt = downcast::<StringArray>(&a[0], function)?;
    let s = downcast::<StringArray>(&a[1], function)?;
    let tz = match a.get(2) {
        Some(z) => Some(downcast::<StringArray>(z, function)?),
        None => None,
    };
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let zone = match tz {
            Some(z) if z.is_null(i) => {
                out.push(None);
                continue;
            }
            Some(z) => Some(Zone::parse(z.value(i), "PARSE_TIMESTAMP")?),
            None => None,
        };
        if fmt.is_null(i) || s.is_null(i) {
            out.push(None);
        } else {
            let parsed = bq_strptime(s.value(i), fmt.value(i)).and_then(|p| {
                let t = p
                    .to_naive_datetime_with_offset(0)
                    .map_err(|e| e.to_string())?;
                // A zone in the text (`%z`) names the instant.
                match p.offset() {
                    Some(off) if !datetime => Ok((t, Some(off))),
                    _ => Ok((t, None)),
                }
            });
            let parsed = parsed.and_then(|(t, offset)| match offset {
                Some(off) => t
                    .checked_sub_signed(chrono::TimeDelta::seconds(i64::from(off)))
                    .map(|t| t.and_utc())
                    .ok_or_else(|| format!("{t} is out of range")),
                None => match zone {
                    None => Ok(t.and_utc()),
                    // A time skipped by a clock change is as unparsable as a bad one.
                    Some(z) => z
                        .instant(&t)
                        .ok_or_else(|| "that time does not exist in the time zone".to_string()),
                },
            });
            let parsed = parsed.and_then(|t| {
                checked_micros(function, Some(t.timestamp_micros()))
                    .map_err(|_| format!("{t} is out of range"))
            });
            match parsed {
                Ok(t) => out.push(Some(t)),
                Err(_) if safe => out.push(None),
                Err(e) => {
                    return Err(exec_err(format!(
                        "{function}: cannot parse '{}' with format '{}': {e}",
                        s.value(i),
                        fmt.value(i)
                    )));
                }
            }
        }
    }
    let arr = TimestampMicrosecondArray::from(out);
    let arr = if datetime {
        arr
    } else {
        arr.with_timezone("UTC")
    };
    finish(args, Arc::new(arr))
}

/// `SAFE_DIVIDE(x, y)`: NULL instead of an error (by zero, on overflow).
/// Its type is the arguments' supertype, FLOAT64 for two INT64s: NUMERIC
/// when one is NUMERIC and the other NUMERIC or INT64, FLOAT64 when one is
/// FLOAT64.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SafeDivide {
    signature: datafusion::logical_expr::Signature,
}

const NUMERIC: DataType = DataType::Decimal128(38, 9);

impl datafusion::logical_expr::ScalarUDFImpl for SafeDivide {
    fn name(&self) -> &str {
        "bq_safe_divide"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [x, y] = arg_types else {
            return Err(DataFusionError::Plan("SAFE_DIVIDE takes (x, y)".into()));
        };
        let numeric = |t: &DataType| {
            t.is_integer()
                || t.is_floating()
                || t.is_null()
                || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
        };
        for t in [x, y] {
            if !numeric(t) {
                return Err(DataFusionError::Plan(format!(
                    "SAFE_DIVIDE takes numbers, got {}",
                    super::typed::type_name(t)
                )));
            }
        }
        if [x, y].iter().any(|t| t.is_floating()) {
            return Ok(vec![DataType::Float64; 2]);
        }
        if [x, y].iter().any(|t| matches!(t, DataType::Decimal256(..))) {
            return Err(DataFusionError::Plan(
                "unsupported: SAFE_DIVIDE of BIGNUMERIC values".into(),
            ));
        }
        if [x, y].iter().any(|t| matches!(t, DataType::Decimal128(..))) {
            return Ok(vec![NUMERIC; 2]);
        }
        Ok(vec![DataType::Float64; 2])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> DfResult<ColumnarValue> {
        let args = &args.args;
        let a = arrays(args)?;
        let n = a[0].len().max(a[1].len());
        let at = |k: usize, i: usize| if a[k].len() == 1 { 0 } else { i };
        if *a[0].data_type() == DataType::Float64 {
            let x = downcast::<Float64Array>(&a[0], "SAFE_DIVIDE")?;
            let y = downcast::<Float64Array>(&a[1], "SAFE_DIVIDE")?;
            let out: Float64Array = (0..n)
                .map(|i| {
                    let (xi, yi) = (at(0, i), at(1, i));
                    if x.is_null(xi) || y.is_null(yi) || y.value(yi) == 0.0 {
                        None
                    } else {
                        // NULL where `/` fails: by zero (above) or overflowing FLOAT64.
                        let (a, b) = (x.value(xi), y.value(yi));
                        let q = a / b;
                        (!(q.is_infinite() && a.is_finite() && b.is_finite())).then_some(q)
                    }
                })
                .collect();
            return finish(args, Arc::new(out));
        }
        let x = downcast::<arrow::array::Decimal128Array>(&a[0], "SAFE_DIVIDE")?;
        let y = downcast::<arrow::array::Decimal128Array>(&a[1], "SAFE_DIVIDE")?;
        let out: arrow::array::Decimal128Array = (0..n)
            .map(|i| {
                let (xi, yi) = (at(0, i), at(1, i));
                if x.is_null(xi) || y.is_null(yi) {
                    None
                } else {
                    numeric_divide(x.value(xi), y.value(yi))
                }
            })
            .collect();
        finish(args, Arc::new(out.with_precision_and_scale(38, 9)?))
    }
}

/// `DIV(x, y)`: INT64 division of INT64s, NUMERIC of NUMERIC and NUMERIC or
/// INT64 (the integer part of the quotient, rounding toward zero); by zero
/// and past the type's range an error.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Div {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for Div {
    fn name(&self) -> &str {
        "bq_div"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [x, y] = arg_types else {
            return Err(DataFusionError::Plan("DIV takes (x, y)".into()));
        };
        let int = |t: &DataType| t.is_integer() || t.is_null();
        if int(x) && int(y) {
            return Ok(vec![DataType::Int64; 2]);
        }
        let numeric = |t: &DataType| int(t) || matches!(t, DataType::Decimal128(..));
        if numeric(x) && numeric(y) {
            return Ok(vec![NUMERIC; 2]);
        }
        if [x, y].iter().any(|t| matches!(t, DataType::Decimal256(..))) {
            return Err(DataFusionError::Plan(
                "unsupported: DIV of BIGNUMERIC values".into(),
            ));
        }
        Err(DataFusionError::Plan(format!(
            "DIV takes INT64 or NUMERIC values, got {} and {}",
            super::typed::type_name(x),
            super::typed::type_name(y)
        )))
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> DfResult<ColumnarValue> {
        let args = &args.args;
        let a = arrays(args)?;
        let n = a[0].len().max(a[1].len());
        let at = |k: usize, i: usize| if a[k].len() == 1 { 0 } else { i };
        if *a[0].data_type() == DataType::Int64 {
            let x = downcast::<Int64Array>(&a[0], "DIV")?;
            let y = downcast::<Int64Array>(&a[1], "DIV")?;
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let (xi, yi) = (at(0, i), at(1, i));
                if x.is_null(xi) || y.is_null(yi) {
                    out.push(None);
                    continue;
                }
                let (p, q) = (x.value(xi), y.value(yi));
                if q == 0 {
                    return Err(exec_err(format!("division by zero: DIV({p}, 0)")));
                }
                out.push(Some(p.checked_div(q).ok_or_else(|| {
                    exec_err(format!("int64 overflow: DIV({p}, {q})"))
                })?));
            }
            return finish(args, Arc::new(Int64Array::from(out)));
        }
        let x = downcast::<arrow::array::Decimal128Array>(&a[0], "DIV")?;
        let y = downcast::<arrow::array::Decimal128Array>(&a[1], "DIV")?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (xi, yi) = (at(0, i), at(1, i));
            if x.is_null(xi) || y.is_null(yi) {
                out.push(None);
                continue;
            }
            let (p, q) = (x.value(xi), y.value(yi));
            out.push(Some(numeric_div(p, q)?));
        }
        let out = arrow::array::Decimal128Array::from(out).with_precision_and_scale(38, 9)?;
        finish(args, Arc::new(out))
    }
}

/// NUMERIC `DIV(x, y)` (both scaled by 10^9): the integer part of x / y.
fn numeric_div(x: i128, y: i128) -> DfResult<i128> {
    let text = |v: i128| {
        let s = format!("{:010}", v.unsigned_abs());
        let (int, frac) = s.split_at(s.len() - 9);
        let frac = frac.trim_end_matches('0');
        let sign = if v < 0 { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    };
    if y == 0 {
        return Err(exec_err(format!("division by zero: DIV({}, 0)", text(x))));
    }
    // Scaled alike, the quotient of the raw values is x / y's integer part.
    x.checked_div(y)
        .and_then(|q| q.checked_mul(1_000_000_000))
        .filter(|q| q.unsigned_abs() < 10u128.pow(38))
        .ok_or_else(|| exec_err(format!("numeric overflow: DIV({}, {})", text(x), text(y))))
}

/// NUMERIC `x / y` (both scaled by 10^9), rounded half away from zero to 9
/// decimal places; `None` by zero or outside NUMERIC's range.
fn numeric_divide(x: i128, y: i128) -> Option<i128> {
    use arrow::datatypes::i256;
    if y == 0 {
        return None;
    }
    let scale = i256::from_i128(1_000_000_000);
    let num = i256::from_i128(x).checked_mul(scale)?;
    let den = i256::from_i128(y);
    let q = num.checked_div(den)?;
    let r = num.checked_rem(den)?;
    // |2r| >= |den|: away from zero.
    let twice = r.checked_mul(i256::from_i128(2))?.checked_abs()?;
    let q = if twice >= den.checked_abs()? {
        if (x < 0) != (y < 0) {
            q.checked_sub(i256::ONE)?
        } else {
            q.checked_add(i256::ONE)?
        }
    } else {
        q
    };
    let q = q.to_i128()?;
    // NUMERIC holds 29 digits before the point and 9 after.
    (q.unsigned_abs() < 10u128.pow(38)).then_some(q)
}

/// The UDFs, for registration in a session.
pub fn udfs() -> Vec<ScalarUDF> {
    let ts = timestamp_type;
    let datetime = || DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None);
    vec![
        create_udf(
            "bq_timestamp_diff",
            vec![ts(), ts(), DataType::Utf8],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(timestamp_diff),
        ),
        create_udf(
            "bq_timestamp_add",
            vec![ts(), DataType::Int64, DataType::Utf8],
            ts(),
            Volatility::Immutable,
            Arc::new(|a| timestamp_add(a, false)),
        ),
        create_udf(
            "bq_datetime_add",
            vec![datetime(), DataType::Int64, DataType::Utf8],
            datetime(),
            Volatility::Immutable,
            Arc::new(|a| timestamp_add(a, true)),
        ),
        create_udf(
            "bq_format_datetime",
            vec![DataType::Utf8, datetime()],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(format_datetime),
        ),
        create_udf(
            "bq_parse_datetime",
            vec![DataType::Utf8, DataType::Utf8],
            datetime(),
            Volatility::Immutable,
            Arc::new(|a| parse_datetime(a, false)),
        ),
        create_udf(
            "bq_safe_parse_datetime",
            vec![DataType::Utf8, DataType::Utf8],
            datetime(),
            Volatility::Immutable,
            Arc::new(|a| parse_datetime(a, true)),
        ),
        create_udf(
            "bq_date_add",
            vec![DataType::Date32, DataType::Int64, DataType::Utf8],
            DataType::Date32,
            Volatility::Immutable,
            Arc::new(date_add),
        ),
        create_udf(
            "bq_date_diff",
            vec![DataType::Date32, DataType::Date32, DataType::Utf8],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(date_diff),
        ),
        create_udf(
            "bq_format_date",
            vec![DataType::Utf8, DataType::Date32],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(format_date),
        ),
        create_udf(
            "bq_format_timestamp",
            vec![DataType::Utf8, ts()],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(format_timestamp),
        ),
        create_udf(
            "bq_parse_date",
            vec![DataType::Utf8, DataType::Utf8],
            DataType::Date32,
            Volatility::Immutable,
            Arc::new(|a| parse_date(a, false)),
        ),
        create_udf(
            "bq_safe_parse_date",
            vec![DataType::Utf8, DataType::Utf8],
            DataType::Date32,
            Volatility::Immutable,
            Arc::new(|a| parse_date(a, true)),
        ),
        create_udf(
            "bq_parse_timestamp",
            vec![DataType::Utf8, DataType::Utf8],
            ts(),
            Volatility::Immutable,
            Arc::new(|a| parse_timestamp(a, false)),
        ),
        create_udf(
            "bq_safe_parse_timestamp",
            vec![DataType::Utf8, DataType::Utf8],
            ts(),
            Volatility::Immutable,
            Arc::new(|a| parse_timestamp(a, true)),
        ),
        create_udf(
            "bq_parse_timestamp_tz",
            vec![DataType::Utf8, DataType::Utf8, DataType::Utf8],
            ts(),
            Volatility::Immutable,
            Arc::new(|a| parse_timestamp(a, false)),
        ),
        create_udf(
            "bq_safe_parse_timestamp_tz",
            vec![DataType::Utf8, DataType::Utf8, DataType::Utf8],
            ts(),
            Volatility::Immutable,
            Arc::new(|a| parse_timestamp(a, true)),
        ),
        create_udf(
            "bq_format_timestamp_tz",
            vec![DataType::Utf8, ts(), DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(format_timestamp_tz),
        ),
        create_udf(
            "bq_to_zone",
            vec![ts(), DataType::Utf8],
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            Volatility::Immutable,
            Arc::new(to_zone),
        ),
        create_udf(
            "bq_from_zone",
            vec![
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                DataType::Utf8,
            ],
            ts(),
            Volatility::Immutable,
            Arc::new(from_zone),
        ),
        ScalarUDF::new_from_impl(Div {
            signature: datafusion::logical_expr::Signature::user_defined(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(SafeDivide {
            signature: datafusion::logical_expr::Signature::user_defined(Volatility::Immutable),
        }),
    ]
}

/// Registers every UDF in `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in udfs() {
        ctx.register_udf(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_fills_what_the_format_lacks_as_bigquery_does() {
        let date = |fmt: &str, s: &str| {
            bq_strptime(s, fmt)
                .and_then(|p| p.to_naive_date().map_err(|e| e.to_string()))
                .map(|d| d.to_string())
        };
        assert_eq!(date("%W%y", "092").as_deref(), Ok("2002-03-04"));
        assert_eq!(date("%W%y", "0902").as_deref(), Ok("2002-03-04"));
        assert_eq!(date("%U%Y", "012020").as_deref(), Ok("2020-01-05"));
        assert_eq!(date("%y", "0").as_deref(), Ok("2000-01-01"));
        assert_eq!(date("%y", "69").as_deref(), Ok("1969-01-01"));
        assert_eq!(date("%m", "3").as_deref(), Ok("1970-03-01"));
        assert_eq!(date("%Y-%m-%d", " 2020-1-5 ").as_deref(), Ok("2020-01-05"));
        assert_eq!(date("%Y%j", "2020050").as_deref(), Ok("2020-02-19"));
        assert_eq!(date("%e/%m/%Y", " 5/01/2020").as_deref(), Ok("2020-01-05"));
        for (fmt, s) in [
            ("%Y%j", "2020 50"),
            ("%W%y", "92"),
            ("%W%y", "902"),
            ("%U%C", "99"),
            ("%Y", "2020x"),
            ("%Y", ""),
            ("%Y", "\u{0}\u{ffff}"),
            ("%", "1"),
            ("%Y-%m-%d", "2020-02-30"),
        ] {
            assert!(date(fmt, s).is_err(), "{fmt} {s}: {:?}", date(fmt, s));
        }
        let micros = |fmt: &str, s: &str| {
            bq_strptime(s, fmt)
                .and_then(|p| {
                    p.to_naive_datetime_with_offset(0)
                        .map_err(|e| e.to_string())
                })
                .map(|t| t.to_string())
        };
        assert_eq!(micros("%y", "0").as_deref(), Ok("2000-01-01 00:00:00"));
        assert_eq!(micros("%I", "3").as_deref(), Ok("1970-01-01 03:00:00"));
        assert_eq!(
            micros("%Y-%m-%d %H", "2020-01-05 13").as_deref(),
            Ok("2020-01-05 13:00:00")
        );
    }

    #[test]
    fn numeric_div_keeps_the_integer_part() {
        let n = |v: i128| v * 1_000_000_000;
        assert_eq!(numeric_div(n(7) + 500_000_000, n(2)).unwrap(), n(3));
        assert_eq!(numeric_div(-n(7), n(2)).unwrap(), n(-3));
        assert_eq!(numeric_div(n(1), 1).unwrap(), n(1_000_000_000));
        let e = numeric_div(n(1), 0).unwrap_err().to_string();
        assert!(e.contains("division by zero: DIV(1, 0)"), "{e}");
        let e = numeric_div(10i128.pow(38) - 1, 1).unwrap_err().to_string();
        assert!(e.contains("numeric overflow"), "{e}");
    }

    #[test]
    fn numeric_division_rounds_half_away_from_zero() {
        let n = |s: &str| {
            let (i, f) = s.split_once('.').unwrap_or((s, ""));
            let neg = i.starts_with('-');
            let v = i.trim_start_matches('-').parse::<i128>().unwrap() * 1_000_000_000
                + format!("{f:0<9}").parse::<i128>().unwrap();
            if neg { -v } else { v }
        };
        assert_eq!(numeric_divide(n("350.5"), n("3")), Some(n("116.833333333")));
        assert_eq!(numeric_divide(n("2"), n("3")), Some(n("0.666666667")));
        assert_eq!(numeric_divide(n("-2"), n("3")), Some(n("-0.666666667")));
        assert_eq!(numeric_divide(n("1"), n("-8")), Some(n("-0.125")));
        assert_eq!(
            numeric_divide(n("0.000000001"), n("2")),
            Some(n("0.000000001"))
        );
        assert_eq!(
            numeric_divide(n("-0.000000001"), n("2")),
            Some(n("-0.000000001"))
        );
        assert_eq!(numeric_divide(n("1"), 0), None);
        let max = 10i128.pow(38) - 1;
        assert_eq!(numeric_divide(max, n("0.1")), None);
        assert_eq!(numeric_divide(max, n("1")), Some(max));
    }

    #[test]
    fn date_arithmetic_follows_bigquery() {
        let d = NaiveDate::from_ymd_opt(2020, 1, 31).unwrap();
        assert_eq!(
            add_to_date("f", d, 1, "MONTH").unwrap(),
            NaiveDate::from_ymd_opt(2020, 2, 29).unwrap()
        );
        assert_eq!(
            add_to_date("f", d, -1, "year").unwrap(),
            NaiveDate::from_ymd_opt(2019, 1, 31).unwrap()
        );
        assert_eq!(
            add_to_date("f", d, 2, "WEEK").unwrap(),
            NaiveDate::from_ymd_opt(2020, 2, 14).unwrap()
        );
        assert!(
            add_to_date("f", d, 1, "HOUR")
                .unwrap_err()
                .to_string()
                .contains("unsupported date part HOUR")
        );
        assert_eq!(days_of(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
        assert_eq!(
            date_of(0).unwrap(),
            NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
        );
    }

    #[test]
    fn bad_format_is_an_error_not_a_panic() {
        let t = NaiveDate::from_ymd_opt(2008, 12, 25)
            .unwrap()
            .and_hms_micro_opt(7, 30, 5, 120_000)
            .unwrap();
        let e = bq_format("FORMAT_DATE", "%Q%", &t).unwrap_err();
        assert!(e.to_string().contains("invalid format element '%'"), "{e}");
        // A DATETIME has no zone to show.
        assert!(bq_format("FORMAT_DATETIME", "%Z", &t).is_err());
    }

    #[test]
    fn bigquery_format_elements() {
        let t = NaiveDate::from_ymd_opt(2008, 12, 25)
            .unwrap()
            .and_hms_micro_opt(7, 30, 5, 120_000)
            .unwrap();
        let f = |fmt: &str| bq_format("F", fmt, &t).unwrap();
        assert_eq!(f("%c"), "Thu Dec 25 07:30:05 2008");
        assert_eq!(f("%Q/%E4Y"), "4/2008");
        assert_eq!(f("%E*S|%E3S|%E0S|%E2S"), "05.12|05.120|05|05.12");
        assert_eq!(f("%Y-%m-%d %H:%M %%"), "2008-12-25 07:30 %");
        let midnight = t.date().and_time(chrono::NaiveTime::MIN);
        assert_eq!(
            bq_format("FORMAT_DATE", "%c %H:%M", &midnight).unwrap(),
            "Thu Dec 25 00:00:00 2008 00:00"
        );
        let utc = t.and_utc();
        assert_eq!(bq_format("F", "%Ez %Z", &utc).unwrap(), "+00:00 UTC");
    }

    #[test]
    fn zones_are_names_or_offsets() {
        let t = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        let local = |z: &str| Zone::parse(z, "T").unwrap().at(t).to_rfc3339();
        assert_eq!(local("+05:30"), "1970-01-01T05:30:00+05:30");
        assert_eq!(local("UTC-02"), "1969-12-31T22:00:00-02:00");
        assert_eq!(local("UTC+1234"), "1970-01-01T12:34:00+12:34");
        assert_eq!(local("Europe/Warsaw"), "1970-01-01T01:00:00+01:00");
        let e = Zone::parse("Mars/Olympus", "FORMAT_TIMESTAMP")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown time zone 'Mars/Olympus'"), "{e}");
        // 02:30 on the night clocks go forward does not exist in Warsaw.
        let skipped = NaiveDate::from_ymd_opt(2020, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert!(
            Zone::parse("Europe/Warsaw", "T")
                .unwrap()
                .instant(&skipped)
                .is_none()
        );
    }
}

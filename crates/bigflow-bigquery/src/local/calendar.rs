//! Calendar functions whose parts DataFusion's `date_trunc` lacks.
//!
//! - `bq_trunc(v, 'PART' [, zone])`: `DATE_TRUNC`/`DATETIME_TRUNC`/
//!   `TIMESTAMP_TRUNC` for `WEEK(<weekday>)`, `ISOWEEK`, `ISOYEAR` and any
//!   part of a TIMESTAMP in a time zone (`TIMESTAMP_TRUNC(ts, DAY,
//!   'Europe/Warsaw')`: the instant the local day begins, DST-correct);
//! - `bq_last_day(v, 'PART')`: `LAST_DAY` of a DATE or DATETIME (a DATE);
//! - `bq_unix(ts, 'UNIT')`: `UNIX_SECONDS`/`UNIX_MILLIS`/`UNIX_MICROS`
//!   (rounded down, as BigQuery does).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use chrono::{
    DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc,
    Weekday,
};

use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::functions::{MAX_TIMESTAMP_MICROS, MIN_TIMESTAMP_MICROS, Zone};
use super::typed::{type_name, weekday};
use super::udf::{DfResult, exec_err, plan_err, scalar_result};

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn date_of_days(function: &str, days: i32) -> DfResult<NaiveDate> {
    epoch()
        .checked_add_signed(Duration::days(i64::from(days)))
        .ok_or_else(|| exec_err(format!("{function}: DATE {days} is out of range")))
}

fn days_of(function: &str, d: NaiveDate) -> DfResult<i32> {
    let days = (d - epoch()).num_days();
    let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default();
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or_default();
    if d < first || d > last {
        return Err(exec_err(format!(
            "{function}: the result {d} is out of range (BigQuery dates go from 0001-01-01 to 9999-12-31)"
        )));
    }
    i32::try_from(days).map_err(|_| exec_err(format!("{function}: {d} is out of range")))
}

fn naive_of_micros(function: &str, micros: i64) -> DfResult<NaiveDateTime> {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.naive_utc())
        .ok_or_else(|| exec_err(format!("{function}: timestamp {micros} is out of range")))
}

fn checked_micros(function: &str, t: NaiveDateTime) -> DfResult<i64> {
    let m = t.and_utc().timestamp_micros();
    if (MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS).contains(&m) {
        Ok(m)
    } else {
        Err(exec_err(format!(
            "{function}: the result {t} is out of range (BigQuery timestamps go from 0001-01-01 to 9999-12-31)"
        )))
    }
}

/// A date part of `DATE_TRUNC`/`LAST_DAY`: `WEEK` is `WEEK(SUNDAY)`,
/// `ISOWEEK` `WEEK(MONDAY)`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DatePart {
    Day,
    Week(Weekday),
    Month,
    Quarter,
    Year,
    IsoYear,
}

/// A part of a truncation: a date part, or a time part (µs in one unit).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    Date(DatePart),
    Time(i64),
}

fn parse_part(function: &str, part: &str) -> DfResult<Part> {
    let p = part.trim().to_ascii_uppercase();
    Ok(match p.as_str() {
        "MICROSECOND" => Part::Time(1),
        "MILLISECOND" => Part::Time(1_000),
        "SECOND" => Part::Time(1_000_000),
        "MINUTE" => Part::Time(60_000_000),
        "HOUR" => Part::Time(3_600_000_000),
        "DAY" => Part::Date(DatePart::Day),
        "WEEK" => Part::Date(DatePart::Week(Weekday::Sun)),
        "ISOWEEK" => Part::Date(DatePart::Week(Weekday::Mon)),
        "MONTH" => Part::Date(DatePart::Month),
        "QUARTER" => Part::Date(DatePart::Quarter),
        "YEAR" => Part::Date(DatePart::Year),
        "ISOYEAR" => Part::Date(DatePart::IsoYear),
        w if w.starts_with("WEEK(") && w.ends_with(')') => {
            match weekday(w[5..w.len() - 1].trim()) {
                Some(day) => Part::Date(DatePart::Week(day)),
                None => {
                    return Err(exec_err(format!(
                        "{function}: unknown date part {part} (WEEK(SUNDAY) … WEEK(SATURDAY))"
                    )));
                }
            }
        }
        _ => {
            return Err(exec_err(format!("{function}: unknown date part {part}")));
        }
    })
}

/// The first day of `d`'s period.
fn trunc_date(function: &str, d: NaiveDate, part: DatePart) -> DfResult<NaiveDate> {
    let out = || exec_err(format!("{function}: the result for {d} is out of range"));
    Ok(match part {
        DatePart::Day => d,
        DatePart::Week(start) => {
            let back = (7 + d.weekday().num_days_from_sunday() - start.num_days_from_sunday()) % 7;
            d.checked_sub_signed(Duration::days(i64::from(back)))
                .ok_or_else(out)?
        }
        DatePart::Month => d.with_day(1).ok_or_else(out)?,
        DatePart::Quarter => {
            NaiveDate::from_ymd_opt(d.year(), d.month0() / 3 * 3 + 1, 1).ok_or_else(out)?
        }
        DatePart::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).ok_or_else(out)?,
        DatePart::IsoYear => {
            NaiveDate::from_isoywd_opt(d.iso_week().year(), 1, Weekday::Mon).ok_or_else(out)?
        }
    })
}

/// The last day of `d`'s period (`LAST_DAY`).
fn last_day(d: NaiveDate, part: DatePart) -> DfResult<NaiveDate> {
    let out = || exec_err(format!("LAST_DAY: the result for {d} is out of range"));
    let next = match part {
        DatePart::Day => {
            return Err(exec_err(
                "LAST_DAY: unsupported date part DAY (YEAR, QUARTER, MONTH, WEEK, WEEK(<weekday>), ISOWEEK, ISOYEAR)",
            ));
        }
        DatePart::Week(_) => trunc_date("LAST_DAY", d, part)? + Duration::days(7),
        DatePart::Month => trunc_date("LAST_DAY", d, part)?
            .checked_add_months(Months::new(1))
            .ok_or_else(out)?,
        DatePart::Quarter => trunc_date("LAST_DAY", d, part)?
            .checked_add_months(Months::new(3))
            .ok_or_else(out)?,
        DatePart::Year => NaiveDate::from_ymd_opt(d.year() + 1, 1, 1).ok_or_else(out)?,
        DatePart::IsoYear => {
            NaiveDate::from_isoywd_opt(d.iso_week().year() + 1, 1, Weekday::Mon).ok_or_else(out)?
        }
    };
    next.pred_opt().ok_or_else(out)
}

/// A civil date-time truncated to `part`.
fn trunc_naive(function: &str, t: NaiveDateTime, part: Part) -> DfResult<NaiveDateTime> {
    match part {
        Part::Time(unit) => {
            let micros = i64::from(t.time().num_seconds_from_midnight()) * 1_000_000
                + i64::from(t.time().nanosecond() / 1_000);
            let kept = micros - micros.rem_euclid(unit);
            let time = NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(kept / 1_000_000).unwrap_or(0),
                u32::try_from(kept % 1_000_000 * 1_000).unwrap_or(0),
            )
            .unwrap_or(NaiveTime::MIN);
            Ok(t.date().and_time(time))
        }
        Part::Date(p) => Ok(trunc_date(function, t.date(), p)?.and_time(NaiveTime::MIN)),
    }
}

/// `TIMESTAMP_TRUNC(ts, part, zone)`: µs from the epoch.
fn trunc_in_zone(micros: i64, part: Part, zone: Zone) -> DfResult<i64> {
    const F: &str = "TIMESTAMP_TRUNC";
    // Seconds and their fractions do not depend on the zone (as ZetaSQL,
    // also for the odd historical offsets with seconds).
    if let Part::Time(unit) = part
        && unit <= 1_000_000
    {
        return Ok(micros - micros.rem_euclid(unit));
    }
    let utc = DateTime::<Utc>::from_timestamp_micros(micros)
        .ok_or_else(|| exec_err(format!("{F}: timestamp {micros} is out of range")))?;
    let local = zone.at(utc);
    let naive = local.naive_local();
    let truncated = trunc_naive(F, naive, part)?;
    match part {
        // HOUR and MINUTE: the same offset as the value (the right one of
        // the two when clocks go back), as ZetaSQL does.
        Part::Time(_) => {
            let offset = i64::from(local.offset().local_minus_utc()) * 1_000_000;
            Ok(checked_micros(F, truncated)? - offset)
        }
        // The instant the local period begins; when that local time was
        // skipped (clocks went forward at midnight), the first one after.
        Part::Date(_) => {
            let mut t = truncated;
            for _ in 0..=24 {
                if let Some(i) = zone.instant(&t) {
                    let m = i.timestamp_micros();
                    if (MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS).contains(&m) {
                        return Ok(m);
                    }
                    break;
                }
                t += Duration::minutes(15);
            }
            Err(exec_err(format!(
                "{F}: the result for {naive} is out of range"
            )))
        }
    }
}

fn row(a: &ArrayRef, i: usize) -> usize {
    if a.len() == 1 { 0 } else { i }
}

/// `bq_trunc(v, 'PART' [, zone])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Trunc {
    signature: Signature,
}

impl ScalarUDFImpl for Trunc {
    fn name(&self) -> &str {
        "bq_trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let value = match arg_types.first() {
            Some(DataType::Date32 | DataType::Date64) => DataType::Date32,
            Some(DataType::Timestamp(_, None)) => DataType::Timestamp(TimeUnit::Microsecond, None),
            Some(DataType::Timestamp(_, Some(_)) | DataType::Null) => {
                crate::schema::timestamp_type()
            }
            Some(other) => {
                return Err(plan_err(format!(
                    "a truncation takes a DATE, DATETIME or TIMESTAMP, got {}",
                    type_name(other)
                )));
            }
            None => return Err(plan_err("a truncation takes a value")),
        };
        match arg_types.len() {
            2 => Ok(vec![value, DataType::Utf8]),
            3 if matches!(value, DataType::Timestamp(_, Some(_))) => {
                Ok(vec![value, DataType::Utf8, DataType::Utf8])
            }
            3 => Err(plan_err(
                "only TIMESTAMP_TRUNC of a TIMESTAMP takes a time zone",
            )),
            _ => Err(plan_err("a truncation takes (value, part [, zone])")),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        let parts = arrays[1].as_string::<i32>();
        let zones = arrays.get(2).map(|z| z.as_string::<i32>());
        let out: ArrayRef = match arrays[0].data_type() {
            DataType::Date32 => {
                const F: &str = "DATE_TRUNC";
                let v = arrays[0].as_primitive::<Date32Type>();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let (vi, pi) = (row(&arrays[0], i), row(&arrays[1], i));
                    if v.is_null(vi) || parts.is_null(pi) {
                        out.push(None);
                        continue;
                    }
                    let d = date_of_days(F, v.value(vi))?;
                    let r = match parse_part(F, parts.value(pi))? {
                        Part::Date(p) => trunc_date(F, d, p)?,
                        Part::Time(_) => {
                            return Err(exec_err(format!(
                                "{F}: {} is not a part of a DATE",
                                parts.value(pi)
                            )));
                        }
                    };
                    out.push(Some(days_of(F, r)?));
                }
                Arc::new(Date32Array::from(out))
            }
            DataType::Timestamp(_, tz) => {
                let f = if tz.is_some() {
                    "TIMESTAMP_TRUNC"
                } else {
                    "DATETIME_TRUNC"
                };
                let v = arrays[0].as_primitive::<TimestampMicrosecondType>();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let (vi, pi) = (row(&arrays[0], i), row(&arrays[1], i));
                    let zone = match (&zones, arrays.get(2)) {
                        (Some(z), Some(a)) => {
                            let zi = row(a, i);
                            if z.is_null(zi) {
                                out.push(None);
                                continue;
                            }
                            Some(Zone::parse(z.value(zi), f)?)
                        }
                        _ => None,
                    };
                    if v.is_null(vi) || parts.is_null(pi) {
                        out.push(None);
                        continue;
                    }
                    let part = parse_part(f, parts.value(pi))?;
                    let micros = v.value(vi);
                    out.push(Some(match zone {
                        Some(zone) => trunc_in_zone(micros, part, zone)?,
                        None => {
                            checked_micros(f, trunc_naive(f, naive_of_micros(f, micros)?, part)?)?
                        }
                    }));
                }
                let a = TimestampMicrosecondArray::from(out);
                Arc::new(match tz {
                    Some(tz) => a.with_timezone(tz.clone()),
                    None => a,
                })
            }
            other => {
                return Err(exec_err(format!(
                    "a truncation of {} is not supported",
                    type_name(other)
                )));
            }
        };
        scalar_result(&args.args, out)
    }
}

/// `bq_last_day(v, 'PART')`: a DATE.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LastDay {
    signature: Signature,
}

impl ScalarUDFImpl for LastDay {
    fn name(&self) -> &str {
        "bq_last_day"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let value = match arg_types.first() {
            Some(DataType::Date32 | DataType::Date64 | DataType::Null | DataType::Utf8) => {
                DataType::Date32
            }
            Some(DataType::Timestamp(_, None)) => DataType::Timestamp(TimeUnit::Microsecond, None),
            Some(other) => {
                return Err(plan_err(format!(
                    "LAST_DAY takes a DATE or a DATETIME, got {}",
                    type_name(other)
                )));
            }
            None => return Err(plan_err("LAST_DAY takes a value")),
        };
        if arg_types.len() != 2 {
            return Err(plan_err("LAST_DAY takes (value [, date part])"));
        }
        Ok(vec![value, DataType::Utf8])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        const F: &str = "LAST_DAY";
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        let parts = arrays[1].as_string::<i32>();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (vi, pi) = (row(&arrays[0], i), row(&arrays[1], i));
            if arrays[0].is_null(vi) || parts.is_null(pi) {
                out.push(None);
                continue;
            }
            let d = match arrays[0].data_type() {
                DataType::Date32 => {
                    date_of_days(F, arrays[0].as_primitive::<Date32Type>().value(vi))?
                }
                _ => naive_of_micros(
                    F,
                    arrays[0]
                        .as_primitive::<TimestampMicrosecondType>()
                        .value(vi),
                )?
                .date(),
            };
            let part = match parse_part(F, parts.value(pi))? {
                Part::Date(p) => p,
                Part::Time(_) => {
                    return Err(exec_err(format!(
                        "{F}: unsupported date part {} (YEAR, QUARTER, MONTH, WEEK, WEEK(<weekday>), ISOWEEK, ISOYEAR)",
                        parts.value(pi)
                    )));
                }
            };
            out.push(Some(days_of(F, last_day(d, part)?)?));
        }
        scalar_result(&args.args, Arc::new(Date32Array::from(out)))
    }
}

/// `bq_unix(ts, 'SECOND' | 'MILLISECOND' | 'MICROSECOND')`: whole units
/// since 1970-01-01 00:00:00 UTC, rounded down.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Unix {
    signature: Signature,
}

impl ScalarUDFImpl for Unix {
    fn name(&self) -> &str {
        "bq_unix"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [
                DataType::Timestamp(_, Some(_)) | DataType::Null | DataType::Utf8,
                _,
            ] => Ok(vec![crate::schema::timestamp_type(), DataType::Utf8]),
            [other, _] => Err(plan_err(format!(
                "UNIX_SECONDS/UNIX_MILLIS/UNIX_MICROS take a TIMESTAMP, got {}",
                type_name(other)
            ))),
            _ => Err(plan_err(
                "UNIX_SECONDS/UNIX_MILLIS/UNIX_MICROS take one TIMESTAMP",
            )),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        let v = arrays[0].as_primitive::<TimestampMicrosecondType>();
        let units = arrays[1].as_string::<i32>();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (vi, ui) = (row(&arrays[0], i), row(&arrays[1], i));
            if v.is_null(vi) || units.is_null(ui) {
                out.push(None);
                continue;
            }
            let unit = match units.value(ui) {
                "SECOND" => 1_000_000,
                "MILLISECOND" => 1_000,
                _ => 1,
            };
            out.push(Some(v.value(vi).div_euclid(unit)));
        }
        scalar_result(&args.args, Arc::new(Int64Array::from(out)))
    }
}

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let user = || Signature::user_defined(Volatility::Immutable);
    vec![
        ScalarUDF::new_from_impl(Trunc { signature: user() }),
        ScalarUDF::new_from_impl(LastDay { signature: user() }),
        ScalarUDF::new_from_impl(Unix { signature: user() }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn date_part(p: &str) -> DatePart {
        match parse_part("T", p).unwrap() {
            Part::Date(p) => p,
            Part::Time(_) => panic!("{p} is a time part"),
        }
    }

    #[test]
    fn weeks_begin_on_the_day_asked() {
        // 2024-03-14 is a Thursday.
        let d = day(2024, 3, 14);
        let t = |p: &str| trunc_date("T", d, date_part(p)).unwrap();
        assert_eq!(t("WEEK"), day(2024, 3, 10));
        assert_eq!(t("WEEK(SUNDAY)"), day(2024, 3, 10));
        assert_eq!(t("week(monday)"), day(2024, 3, 11));
        assert_eq!(t("ISOWEEK"), day(2024, 3, 11));
        assert_eq!(t("WEEK(THURSDAY)"), day(2024, 3, 14));
        assert_eq!(t("WEEK(FRIDAY)"), day(2024, 3, 8));
        assert_eq!(t("WEEK(SATURDAY)"), day(2024, 3, 9));
        assert_eq!(t("QUARTER"), day(2024, 1, 1));
        // ISO year 2025 begins on Monday 2024-12-30.
        assert_eq!(
            trunc_date("T", day(2025, 1, 2), DatePart::IsoYear).unwrap(),
            day(2024, 12, 30)
        );
        assert_eq!(
            trunc_date("T", day(2024, 12, 31), DatePart::IsoYear).unwrap(),
            day(2024, 12, 30)
        );
        assert!(parse_part("T", "WEEK(FUNDAY)").is_err());
        assert!(parse_part("T", "FORTNIGHT").is_err());
    }

    #[test]
    fn last_days_of_periods() {
        let l = |d: NaiveDate, p: &str| last_day(d, date_part(p)).unwrap();
        assert_eq!(l(day(2024, 2, 10), "MONTH"), day(2024, 2, 29));
        assert_eq!(l(day(2023, 2, 10), "MONTH"), day(2023, 2, 28));
        assert_eq!(l(day(2024, 2, 10), "YEAR"), day(2024, 12, 31));
        assert_eq!(l(day(2024, 5, 10), "QUARTER"), day(2024, 6, 30));
        // 2024-03-14 is a Thursday.
        assert_eq!(l(day(2024, 3, 14), "WEEK"), day(2024, 3, 16));
        assert_eq!(l(day(2024, 3, 14), "WEEK(MONDAY)"), day(2024, 3, 17));
        assert_eq!(l(day(2024, 3, 14), "ISOWEEK"), day(2024, 3, 17));
        assert_eq!(l(day(2024, 6, 1), "ISOYEAR"), day(2024, 12, 29));
        assert_eq!(l(day(9999, 12, 31), "MONTH"), day(9999, 12, 31));
        assert!(last_day(day(2024, 1, 1), DatePart::Day).is_err());
    }

    #[test]
    fn truncation_in_a_zone_follows_its_clock() {
        let warsaw = Zone::parse("Europe/Warsaw", "T").unwrap();
        let micros = |s: &str| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let t = |ts: &str, p: &str| {
            trunc_in_zone(micros(ts), parse_part("T", p).unwrap(), warsaw).unwrap()
        };
        // 2024-03-01 23:30 UTC is 00:30 on 03-02 in Warsaw (UTC+1).
        assert_eq!(
            t("2024-03-01 23:30:00", "DAY"),
            micros("2024-03-01 23:00:00")
        );
        // Summer time (UTC+2).
        assert_eq!(
            t("2024-07-01 12:00:00", "DAY"),
            micros("2024-06-30 22:00:00")
        );
        // The day the clocks go forward (2024-03-31 02:00 → 03:00) begins at 23:00 UTC.
        assert_eq!(
            t("2024-03-31 12:00:00", "DAY"),
            micros("2024-03-30 23:00:00")
        );
        assert_eq!(
            t("2024-03-31 12:00:00", "MONTH"),
            micros("2024-02-29 23:00:00")
        );
        // The hour repeated when clocks go back (2024-10-27 03:00 → 02:00):
        // each occurrence truncates to its own start.
        assert_eq!(
            t("2024-10-27 00:30:00", "HOUR"),
            micros("2024-10-27 00:00:00")
        );
        assert_eq!(
            t("2024-10-27 01:30:00", "HOUR"),
            micros("2024-10-27 01:00:00")
        );
        // Seconds are the same in every zone (Warsaw's local mean time was
        // UTC+01:24).
        assert_eq!(
            trunc_in_zone(
                micros("1890-01-01 10:10:10") + 5,
                Part::Time(1_000_000),
                warsaw
            )
            .unwrap(),
            micros("1890-01-01 10:10:10")
        );
        // A zone half an hour off UTC truncates hours on its own clock.
        let kolkata = Zone::parse("Asia/Kolkata", "T").unwrap();
        assert_eq!(
            trunc_in_zone(
                micros("2024-03-01 10:10:00"),
                Part::Time(3_600_000_000),
                kolkata
            )
            .unwrap(),
            micros("2024-03-01 09:30:00")
        );
    }

    #[test]
    fn time_parts_truncate_the_clock() {
        let t = NaiveDateTime::parse_from_str("2024-03-05 17:45:12.345678", "%Y-%m-%d %H:%M:%S%.f")
            .unwrap();
        let tr = |p: &str| {
            trunc_naive("T", t, parse_part("T", p).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(tr("HOUR"), "2024-03-05 17:00:00");
        assert_eq!(tr("MILLISECOND"), "2024-03-05 17:45:12.345");
        assert_eq!(tr("WEEK(MONDAY)"), "2024-03-04 00:00:00");
    }
}

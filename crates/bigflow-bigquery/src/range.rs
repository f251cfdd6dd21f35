//! BigQuery's RANGE type (`RANGE<DATE>`, `RANGE<DATETIME>`,
//! `RANGE<TIMESTAMP>`) in Arrow form, its text and its literals.
//!
//! A RANGE is an Arrow struct of two fields named [`START`] and [`END`] of
//! the element type (Date32, Timestamp(µs) or Timestamp(µs, UTC)). An
//! unbounded start or end is stored as a sentinel below (above) every
//! value of the type, not as NULL: the engine's own comparisons of structs
//! (field by field, `=`, `<`, ORDER BY, GROUP BY, MIN/MAX, DISTINCT, joins)
//! then order ranges as BigQuery does — by start, an unbounded start
//! first, then by end, an unbounded end last. A NULL RANGE is a NULL
//! struct. Only the warehouse's functions build ranges and read their
//! fields (`RANGE_START` gives NULL for an unbounded start); results are
//! written as BigQuery writes ranges, `[2020-01-01, UNBOUNDED)`
//! ([`ranges_as_text`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StringBuilder, StructArray};
use arrow::datatypes::{
    DataType, Date32Type, Field as ArrowField, Fields, Schema, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};

use crate::error::{BqError, Result};

/// The name of a RANGE's start field.
pub const START: &str = "__bq_range_start";
/// The name of a RANGE's end field.
pub const END: &str = "__bq_range_end";

/// An unbounded DATE start (days from 1970-01-01): below every DATE.
pub const UNBOUNDED_START_DAYS: i32 = i32::MIN;
/// An unbounded DATE end: above every DATE.
pub const UNBOUNDED_END_DAYS: i32 = i32::MAX;
/// An unbounded DATETIME/TIMESTAMP start (µs): below every value.
pub const UNBOUNDED_START_MICROS: i64 = i64::MIN;
/// An unbounded DATETIME/TIMESTAMP end: above every value.
pub const UNBOUNDED_END_MICROS: i64 = i64::MAX;

const MIN_DATE_DAYS: i32 = -719_162;
const MAX_DATE_DAYS: i32 = 2_932_896;
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// The element type of a RANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    /// `RANGE<DATE>`.
    Date,
    /// `RANGE<DATETIME>`.
    DateTime,
    /// `RANGE<TIMESTAMP>`.
    Timestamp,
}

impl Element {
    /// `DATE`, `DATETIME` or `TIMESTAMP` (any case).
    pub fn from_name(name: &str) -> Option<Element> {
        match name.to_ascii_uppercase().as_str() {
            "DATE" => Some(Element::Date),
            "DATETIME" => Some(Element::DateTime),
            "TIMESTAMP" => Some(Element::Timestamp),
            _ => None,
        }
    }

    /// The BigQuery name of the element type.
    pub fn name(self) -> &'static str {
        match self {
            Element::Date => "DATE",
            Element::DateTime => "DATETIME",
            Element::Timestamp => "TIMESTAMP",
        }
    }

    /// The Arrow type of the element.
    pub fn data_type(self) -> DataType {
        match self {
            Element::Date => DataType::Date32,
            Element::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            Element::Timestamp => crate::schema::timestamp_type(),
        }
    }

    /// The element of an Arrow type, if it is one.
    pub fn of(t: &DataType) -> Option<Element> {
        match t {
            DataType::Date32 => Some(Element::Date),
            DataType::Timestamp(TimeUnit::Microsecond, None) => Some(Element::DateTime),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Some(Element::Timestamp),
            _ => None,
        }
    }

    /// The Arrow type of `RANGE<element>`.
    pub fn range_type(self) -> DataType {
        DataType::Struct(Fields::from(vec![
            ArrowField::new(START, self.data_type(), true),
            ArrowField::new(END, self.data_type(), true),
        ]))
    }

    /// The sentinels of an unbounded start and end, as i64.
    fn unbounded(self) -> (i64, i64) {
        match self {
            Element::Date => (UNBOUNDED_START_DAYS.into(), UNBOUNDED_END_DAYS.into()),
            _ => (UNBOUNDED_START_MICROS, UNBOUNDED_END_MICROS),
        }
    }
}

/// The element of a RANGE type, `None` if `t` is not a RANGE.
pub fn element_of(t: &DataType) -> Option<Element> {
    let DataType::Struct(fields) = t else {
        return None;
    };
    if fields.len() != 2 || fields[0].name() != START || fields[1].name() != END {
        return None;
    }
    let e = Element::of(fields[0].data_type())?;
    (fields[1].data_type() == fields[0].data_type()).then_some(e)
}

/// Whether `t` is or holds (in arrays and structs) a RANGE.
pub fn contains_range(t: &DataType) -> bool {
    if element_of(t).is_some() {
        return true;
    }
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            contains_range(f.data_type())
        }
        DataType::Struct(fs) => fs.iter().any(|f| contains_range(f.data_type())),
        _ => false,
    }
}

/// One bound of a range: `None` when unbounded.
pub type Bound = Option<i64>;

/// The bounds of row `i` of a RANGE array (not NULL there), as days or µs.
pub fn bounds(array: &StructArray, i: usize) -> (Bound, Bound) {
    let e = element_of(array.data_type()).unwrap_or(Element::Date);
    let (lo, hi) = e.unbounded();
    let value = |c: &ArrayRef| -> i64 {
        match c.data_type() {
            DataType::Date32 => c.as_primitive::<Date32Type>().value(i).into(),
            _ => c.as_primitive::<TimestampMicrosecondType>().value(i),
        }
    };
    let (s, t) = (array.column(0), array.column(1));
    // A NULL field (a struct made elsewhere) is unbounded too.
    let start = (!s.is_null(i)).then(|| value(s)).filter(|v| *v != lo);
    let end = (!t.is_null(i)).then(|| value(t)).filter(|v| *v != hi);
    (start, end)
}

/// A RANGE array of `element` from bounds (`None` row: a NULL range).
pub fn build(element: Element, rows: &[Option<(Bound, Bound)>]) -> ArrayRef {
    let (lo, hi) = element.unbounded();
    let starts: Vec<i64> = rows
        .iter()
        .map(|r| r.map_or(0, |(s, _)| s.unwrap_or(lo)))
        .collect();
    let ends: Vec<i64> = rows
        .iter()
        .map(|r| r.map_or(0, |(_, e)| e.unwrap_or(hi)))
        .collect();
    let column = |values: Vec<i64>| -> ArrayRef {
        match element {
            Element::Date => Arc::new(arrow::array::Date32Array::from(
                values.into_iter().map(|v| v as i32).collect::<Vec<_>>(),
            )),
            Element::DateTime => Arc::new(arrow::array::TimestampMicrosecondArray::from(values)),
            Element::Timestamp => {
                Arc::new(arrow::array::TimestampMicrosecondArray::from(values).with_timezone("UTC"))
            }
        }
    };
    let DataType::Struct(fields) = element.range_type() else {
        unreachable!("a range type is a struct")
    };
    let nulls =
        arrow::buffer::NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    Arc::new(StructArray::new(
        fields,
        vec![column(starts), column(ends)],
        Some(nulls),
    ))
}

/// A bound's text as BigQuery writes the element: `2020-01-01`,
/// `2020-01-01 12:00:00.5`, `2020-01-01 12:00:00+00`; `UNBOUNDED`.
pub fn bound_text(element: Element, bound: Bound) -> String {
    let Some(v) = bound else {
        return "UNBOUNDED".into();
    };
    match element {
        Element::Date => NaiveDate::from_num_days_from_ce_opt((v as i32).saturating_add(719_163))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("{v} days from 1970-01-01")),
        Element::DateTime | Element::Timestamp => match DateTime::from_timestamp_micros(v) {
            Some(t) => {
                let text = t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string();
                if element == Element::Timestamp {
                    format!("{text}+00")
                } else {
                    text
                }
            }
            None => format!("{v} µs from 1970-01-01"),
        },
    }
}

/// A range's text: `[start, end)`.
pub fn text(element: Element, (start, end): (Bound, Bound)) -> String {
    format!(
        "[{}, {})",
        bound_text(element, start),
        bound_text(element, end)
    )
}

/// A RANGE array as text (`[2020-01-01, UNBOUNDED)`), NULLs kept.
pub fn to_text(array: &ArrayRef) -> ArrayRef {
    let s = array.as_struct();
    let element = element_of(array.data_type()).unwrap_or(Element::Date);
    let mut out = StringBuilder::new();
    for i in 0..s.len() {
        if s.is_null(i) {
            out.append_null();
        } else {
            out.append_value(text(element, bounds(s, i)));
        }
    }
    Arc::new(out.finish())
}

/// `t` with every RANGE, also nested, as STRING.
pub fn text_type(t: &DataType) -> DataType {
    if element_of(t).is_some() {
        return DataType::Utf8;
    }
    let field = |f: &ArrowField| Arc::new(f.clone().with_data_type(text_type(f.data_type())));
    match t {
        DataType::List(f) => DataType::List(field(f)),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(|f| field(f)).collect()),
        other => other.clone(),
    }
}

/// `array` with every RANGE, also inside arrays and structs, as its text.
pub fn array_as_text(array: &ArrayRef) -> ArrayRef {
    if !contains_range(array.data_type()) {
        return array.clone();
    }
    if element_of(array.data_type()).is_some() {
        return to_text(array);
    }
    match array.data_type() {
        DataType::List(f) => {
            let l = array.as_list::<i32>();
            let values = array_as_text(l.values());
            let field = Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(values.data_type().clone()),
            );
            Arc::new(ListArray::new(
                field,
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            ))
        }
        DataType::Struct(fs) => {
            let s = array.as_struct();
            let columns: Vec<ArrayRef> = s.columns().iter().map(array_as_text).collect();
            let fields: Fields = fs
                .iter()
                .zip(&columns)
                .map(|(f, c)| Arc::new(f.as_ref().clone().with_data_type(c.data_type().clone())))
                .collect();
            Arc::new(StructArray::new(fields, columns, s.nulls().cloned()))
        }
        _ => array.clone(),
    }
}

/// A batch with its RANGE values as text (for JSON, CSV and tables).
pub fn ranges_as_text(batch: &RecordBatch) -> RecordBatch {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| contains_range(f.data_type()))
    {
        return batch.clone();
    }
    let columns: Vec<ArrayRef> = batch.columns().iter().map(array_as_text).collect();
    let fields: Vec<ArrowField> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        batch.schema().metadata().clone(),
    ));
    RecordBatch::try_new(schema, columns).unwrap_or_else(|_| batch.clone())
}

/// A schema with its RANGE columns as STRING (see [`ranges_as_text`]).
pub fn text_schema(schema: &Schema) -> Schema {
    let fields: Vec<ArrowField> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(text_type(f.data_type())))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn bad(text: &str, why: &str) -> BqError {
    BqError::Sql {
        message: format!("invalid RANGE literal '{text}': {why}"),
        position: None,
    }
}

/// A civil date and time at the start of `s`: `YYYY-[M]M-[D]D[( |T)[H]H:[M]M:[S]S[.F]]`,
/// and the rest of `s`.
fn civil_prefix(s: &str) -> Option<(NaiveDateTime, &str)> {
    let date_end = s
        .char_indices()
        .enumerate()
        .find(|(n, (_, c))| !(c.is_ascii_digit() || (*c == '-' && *n > 0)))
        .map(|(_, (i, _))| i)
        .unwrap_or(s.len());
    let date_text = &s[..date_end];
    let parts: Vec<&str> = date_text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 || !(1..=2).contains(&m.len()) || !(1..=2).contains(&d.len()) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let rest = &s[date_end..];
    let mut chars = rest.chars();
    let time_follows = matches!(chars.next(), Some(' ' | 'T' | 't'))
        && chars.next().is_some_and(|c| c.is_ascii_digit());
    if !time_follows {
        return Some((date.and_time(NaiveTime::MIN), rest));
    }
    let rest = &rest[1..];
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let time_text = &rest[..time_end];
    let (hms, fraction) = match time_text.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time_text, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, mi, sec] = parts.as_slice() else {
        return None;
    };
    if [h, mi, sec].iter().any(|p| !(1..=2).contains(&p.len())) {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            return None;
        }
        Some(f) => format!("{f:0<6}").parse::<u32>().ok()?,
    };
    let time = NaiveTime::from_hms_micro_opt(
        h.parse().ok()?,
        mi.parse().ok()?,
        sec.parse().ok()?,
        micros,
    )?;
    Some((date.and_time(time), &rest[time_end..]))
}

/// The UTC offset in seconds of a zone suffix (`Z`, `+01`, `-08:00`,
/// `+0530`, ` UTC`, ` America/Los_Angeles`) at the civil time `civil`.
fn zone_offset(zone: &str, civil: NaiveDateTime) -> Option<i64> {
    let zone = zone.trim();
    if zone.is_empty() || zone.eq_ignore_ascii_case("Z") || zone.eq_ignore_ascii_case("UTC") {
        return Some(0);
    }
    if let Some(digits) = zone.strip_prefix(['+', '-']) {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h, m),
            None if digits.len() > 2 => digits.split_at(digits.len() - 2),
            None => (digits, "0"),
        };
        if h.is_empty() || h.len() > 2 || m.len() > 2 {
            return None;
        }
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        if h > 14 || m > 59 {
            return None;
        }
        return Some(sign * (h * 3600 + m * 60));
    }
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let local = tz.from_local_datetime(&civil).earliest()?;
    Some(local.offset().fix().local_minus_utc().into())
}

/// One bound of a RANGE literal (`UNBOUNDED` is `None`) as days or µs.
pub fn parse_bound(element: Element, text: &str) -> std::result::Result<Bound, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("UNBOUNDED") {
        return Ok(None);
    }
    let invalid = || format!("'{t}' is not a valid {}", element.name());
    let (civil, rest) = civil_prefix(t).ok_or_else(invalid)?;
    let value = match element {
        Element::Date => {
            if !rest.is_empty() || civil.time() != NaiveTime::MIN || t.contains([' ', 'T', 't']) {
                return Err(invalid());
            }
            let days = (civil.date() - NaiveDate::default()).num_days();
            if !(i64::from(MIN_DATE_DAYS)..=i64::from(MAX_DATE_DAYS)).contains(&days) {
                return Err(invalid());
            }
            days
        }
        Element::DateTime => {
            if !rest.is_empty() {
                return Err(invalid());
            }
            civil.and_utc().timestamp_micros()
        }
        Element::Timestamp => {
            let offset = zone_offset(rest, civil).ok_or_else(invalid)?;
            civil.and_utc().timestamp_micros() - offset * 1_000_000
        }
    };
    if element != Element::Date && !(MIN_MICROS..=MAX_MICROS).contains(&value) {
        return Err(invalid());
    }
    Ok(Some(value))
}

/// Checks that a start is below an end, as BigQuery requires.
pub fn check_order(element: Element, start: Bound, end: Bound) -> std::result::Result<(), String> {
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        return Err(format!(
            "the start of a RANGE must be below its end, got [{}, {})",
            bound_text(element, Some(s)),
            bound_text(element, Some(e))
        ));
    }
    Ok(())
}

/// A RANGE literal's text, `[start, end)` with `UNBOUNDED` for an open side.
pub fn parse_text(element: Element, text: &str) -> std::result::Result<(Bound, Bound), String> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("a RANGE is written [start, end), got '{t}'"))?;
    let (s, e) = inner
        .split_once(',')
        .filter(|(_, e)| !e.contains(','))
        .ok_or_else(|| format!("a RANGE is written [start, end), got '{t}'"))?;
    let (start, end) = (parse_bound(element, s)?, parse_bound(element, e)?);
    check_order(element, start, end)?;
    Ok((start, end))
}

/// A RANGE given as JSON (streaming inserts): BigQuery's text
/// `"[2020-01-01, UNBOUNDED)"`, or `{"start": …, "end": …}` with `null` (or
/// a missing key) for an unbounded side; as the JSON of the stored struct
/// (days or µs, sentinels), which Arrow's JSON reader takes.
pub fn json_to_stored(
    element: Element,
    v: &serde_json::Value,
) -> std::result::Result<serde_json::Value, String> {
    use serde_json::Value;
    let (start, end) = match v {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => parse_text(element, s)?,
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "start" && *k != "end") {
                return Err(format!("a RANGE object has a start and an end, not {k}"));
            }
            let bound = |k: &str| match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => parse_bound(element, s),
                Some(other) => Err(format!(
                    "the {k} of a RANGE<{}> is a string, got {other}",
                    element.name()
                )),
            };
            let (s, e) = (bound("start")?, bound("end")?);
            check_order(element, s, e)?;
            (s, e)
        }
        other => {
            return Err(format!(
                "a RANGE<{}> is a string '[start, end)' or an object {{\"start\", \"end\"}}, got {other}",
                element.name()
            ));
        }
    };
    let (lo, hi) = element.unbounded();
    let mut o = serde_json::Map::new();
    o.insert(START.into(), Value::from(start.unwrap_or(lo)));
    o.insert(END.into(), Value::from(end.unwrap_or(hi)));
    Ok(Value::Object(o))
}

/// A row of a streaming insert with its RANGE columns (top-level, also
/// REPEATED) as [`json_to_stored`] writes them.
pub fn row_to_stored(
    fields: &[crate::schema::Field],
    row: &serde_json::Value,
) -> std::result::Result<serde_json::Value, String> {
    use serde_json::Value;
    let mut row = row.clone();
    let Some(object) = row.as_object_mut() else {
        return Ok(row);
    };
    for f in fields {
        let Some(e) = f
            .range_element_type
            .as_ref()
            .and_then(|e| Element::from_name(&e.element_type))
        else {
            continue;
        };
        let Some((_, v)) = object
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(&f.name))
        else {
            continue;
        };
        let column = |why: String| format!("column {}: {why}", f.name);
        let stored = match &*v {
            Value::Array(items) if f.mode.eq_ignore_ascii_case("REPEATED") => Value::Array(
                items
                    .iter()
                    .map(|x| json_to_stored(e, x))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(column)?,
            ),
            other => json_to_stored(e, other).map_err(column)?,
        };
        *v = stored;
    }
    Ok(row)
}

/// [`parse_text`] as the warehouse's error.
pub fn parse_literal(element: Element, text: &str) -> Result<(Bound, Bound)> {
    parse_text(element, text).map_err(|why| bad(text, &why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_read_as_bigquery_reads_them() {
        let day =
            |y, m, d| (NaiveDate::from_ymd_opt(y, m, d).unwrap() - NaiveDate::default()).num_days();
        assert_eq!(
            parse_text(Element::Date, "[2020-01-01, UNBOUNDED)").unwrap(),
            (Some(day(2020, 1, 1)), None)
        );
        assert_eq!(
            parse_text(Element::Date, " [unbounded,unbounded) ").unwrap(),
            (None, None)
        );
        let (s, e) = parse_text(
            Element::Timestamp,
            "[2020-01-01 12:00:00.000005+01, 2020-01-02 00:00:00 UTC)",
        )
        .unwrap();
        assert_eq!(s, Some(1_577_876_400_000_005));
        assert_eq!(e, Some(1_577_923_200_000_000));
        let (s, _) = parse_text(
            Element::Timestamp,
            "[2020-01-01 America/Los_Angeles, UNBOUNDED)",
        )
        .unwrap();
        assert_eq!(s, Some(1_577_865_600_000_000));
        let (s, e) = parse_text(Element::DateTime, "[2020-01-01, 2020-01-01T00:00:00.5)").unwrap();
        assert_eq!(
            (s, e),
            (Some(1_577_836_800_000_000), Some(1_577_836_800_500_000))
        );
        for bad in [
            "[2020-01-02, 2020-01-01)",
            "[2020-01-01, 2020-01-01)",
            "(2020-01-01, 2020-01-02)",
            "[2020-01-01, 2020-01-02]",
            "[2020-01-01 10:00:00, 2020-01-02)",
            "[2020-13-01, UNBOUNDED)",
            "[NULL, UNBOUNDED)",
            "[2020-01-01)",
        ] {
            assert!(parse_text(Element::Date, bad).is_err(), "{bad}");
        }
        assert!(parse_text(Element::DateTime, "[2020-01-01 00:00:00+01, UNBOUNDED)").is_err());
        assert!(
            parse_text(
                Element::DateTime,
                "[2020-01-01 00:00:00.1234567, UNBOUNDED)"
            )
            .is_err()
        );
    }

    #[test]
    fn ranges_round_trip_through_arrow_and_text() {
        let a = build(
            Element::Date,
            &[Some((Some(18262), None)), None, Some((None, Some(0)))],
        );
        assert_eq!(element_of(a.data_type()), Some(Element::Date));
        let t = to_text(&a);
        let t = t.as_string::<i32>();
        assert_eq!(t.value(0), "[2020-01-01, UNBOUNDED)");
        assert!(t.is_null(1));
        assert_eq!(t.value(2), "[UNBOUNDED, 1970-01-01)");
        let ts = build(
            Element::Timestamp,
            &[Some((Some(1_500_000), Some(2_000_000)))],
        );
        assert_eq!(
            to_text(&ts).as_string::<i32>().value(0),
            "[1970-01-01 00:00:01.500+00, 1970-01-01 00:00:02+00)"
        );
        assert_eq!(ts.data_type(), &Element::Timestamp.range_type());
        // Inside arrays and structs too.
        let list = ListArray::new(
            Arc::new(ArrowField::new("item", a.data_type().clone(), true)),
            arrow::buffer::OffsetBuffer::from_lengths([3]),
            a.clone(),
            None,
        );
        let list: ArrayRef = Arc::new(list);
        assert!(contains_range(list.data_type()));
        let text = array_as_text(&list);
        assert_eq!(text.data_type(), &text_type(list.data_type()));
        assert!(!contains_range(text.data_type()));
    }

    #[test]
    fn unbounded_sides_order_as_bigquery_orders_them() {
        let a = build(
            Element::Date,
            &[
                Some((None, Some(5))),
                Some((Some(1), Some(5))),
                Some((Some(1), None)),
                Some((None, None)),
            ],
        );
        let cmp = arrow::array::make_comparator(&a, &a, Default::default()).unwrap();
        // [UNBOUNDED, 5) < [UNBOUNDED, UNBOUNDED) < [1, 5) < [1, UNBOUNDED)
        assert!(cmp(0, 3).is_lt());
        assert!(cmp(3, 1).is_lt());
        assert!(cmp(1, 2).is_lt());
    }
}

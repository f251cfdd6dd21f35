//! Runtimes: the civil date-time (no time zone) a batch job runs for.
//!
//! BigFlow accepts exactly two spellings on the command line,
//! `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD` (midnight); no runtime means "now"
//! in local time. [`parse_runtime`] is strict about the shape so that a typo
//! never silently becomes another date.

use chrono::{Local, NaiveDate, NaiveDateTime, Timelike};

/// A job's runtime: a civil date-time without a zone.
pub type Runtime = NaiveDateTime;

/// The canonical text form of a runtime (`runtime_str` in BigFlow).
pub const RUNTIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Why a runtime string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid runtime '{input}': {reason}; expected 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD', e.g. '2020-08-01 10:00:00'"
)]
pub struct RuntimeError {
    /// The text given.
    pub input: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Parses `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (meaning midnight).
pub fn parse_runtime(input: &str) -> Result<Runtime, RuntimeError> {
    let err = |reason| RuntimeError {
        input: input.to_string(),
        reason,
    };
    let b = input.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let date_shape = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10);
    match b.len() {
        10 if date_shape => {}
        19 if date_shape
            && b[10] == b' '
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19) => {}
        _ => return Err(err("wrong format")),
    }
    let num = |range: std::ops::Range<usize>| -> u32 {
        // The shape check above guarantees ASCII digits.
        b[range]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let date = NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10))
        .ok_or_else(|| err("no such date"))?;
    let (h, m, s) = if b.len() == 19 {
        (num(11..13), num(14..16), num(17..19))
    } else {
        (0, 0, 0)
    };
    date.and_hms_opt(h, m, s)
        .ok_or_else(|| err("no such time of day"))
}

/// Formats a runtime as `YYYY-MM-DD HH:MM:SS`.
pub fn format_runtime(runtime: &Runtime) -> String {
    runtime.format(RUNTIME_FORMAT).to_string()
}

/// The current local time, truncated to whole seconds (BigFlow's default runtime).
pub fn now() -> Runtime {
    Local::now()
        .naive_local()
        .with_nanosecond(0)
        .unwrap_or_else(|| Local::now().naive_local())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_both_formats() {
        assert_eq!(
            format_runtime(&parse_runtime("2020-08-01 10:00:00").unwrap()),
            "2020-08-01 10:00:00"
        );
        assert_eq!(
            format_runtime(&parse_runtime("2020-08-01").unwrap()),
            "2020-08-01 00:00:00"
        );
    }

    #[test]
    fn rejects_bad_shapes_and_dates() {
        for bad in [
            "",
            "2020-8-1",
            "2020-08-01T10:00:00",
            "2020-08-01 10:00",
            "20200801",
            "2020-08-01 10:00:00 ",
            "２０２０-08-01",
        ] {
            let e = parse_runtime(bad).unwrap_err();
            assert_eq!(e.reason, "wrong format", "{bad}");
        }
        assert_eq!(
            parse_runtime("2021-02-29").unwrap_err().reason,
            "no such date"
        );
        assert_eq!(
            parse_runtime("2021-02-28 24:00:00").unwrap_err().reason,
            "no such time of day"
        );
        let msg = parse_runtime("yesterday").unwrap_err().to_string();
        assert!(
            msg.contains("'yesterday'") && msg.contains("YYYY-MM-DD HH:MM:SS"),
            "{msg}"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,25}") {
            let _ = parse_runtime(&s);
        }

        #[test]
        fn round_trips(secs in 0i64..(400 * 365 * 86_400)) {
            let rt = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            prop_assert_eq!(parse_runtime(&format_runtime(&rt)).unwrap(), rt);
        }

        #[test]
        fn near_miss_shapes_fail_cleanly(y in 0u32..10000, m in 0u32..20, d in 0u32..40, h in 0u32..30, mi in 0u32..70, s in 0u32..70) {
            let text = format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            match parse_runtime(&text) {
                Ok(rt) => prop_assert_eq!(format_runtime(&rt), text),
                Err(e) => prop_assert!(e.reason != "wrong format"),
            }
        }
    }
}

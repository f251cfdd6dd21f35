//! Schedules and start-time factories: when Airflow runs a workflow.
//!
//! A schedule is either one of Airflow's presets (`@once`, `@hourly`,
//! `@daily`, …) or a five-field cron expression, validated with `croner`
//! when the workflow is built so a typo fails on the laptop, not in Composer.
//! A start-time factory maps the time a DAG is built to its first runtime.

use std::fmt;
use std::sync::Arc;

use chrono::{Duration, Local, NaiveDateTime, Offset, Timelike};
use croner::parser::{CronParser, Seconds, Year};

/// Airflow's schedule presets that BigFlow workflows may use.
pub const PRESETS: &[&str] = &[
    "@once",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
];

/// BigFlow's default schedule.
pub const DEFAULT_SCHEDULE: &str = "@daily";

/// A validated schedule: an Airflow preset or a five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(String);

/// Why a schedule was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule_interval '{input}': {reason}; use a preset ({presets}) or a five-field cron expression such as '0 2 * * *'", presets = PRESETS.join(" "))]
pub struct ScheduleError {
    /// The text given.
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

impl Schedule {
    /// Validates a preset or a cron expression (minute hour day-of-month month day-of-week).
    pub fn parse(input: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError {
            input: input.to_string(),
            reason,
        };
        let text = input.trim();
        if text != input || text.is_empty() {
            return Err(err("empty or surrounded by spaces".into()));
        }
        if text.starts_with('@') {
            return if PRESETS.contains(&text) {
                Ok(Schedule(text.to_string()))
            } else {
                Err(err("unknown preset".into()))
            };
        }
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(err(format!(
                "a cron expression has 5 fields, this one has {fields}"
            )));
        }
        if !text.is_ascii() {
            return Err(err("cron expressions are ASCII".into()));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| err(e.to_string()))?;
        Ok(Schedule(text.to_string()))
    }

    /// The schedule as Airflow expects it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The five-field cron expression of the schedule (a preset's
    /// equivalent, as Airflow defines it); `None` for `@once`.
    pub fn cron(&self) -> Option<&str> {
        Some(match self.0.as_str() {
            "@once" => return None,
            "@hourly" => "0 * * * *",
            "@daily" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@quarterly" => "0 0 1 */3 *",
            "@yearly" => "0 0 1 1 *",
            cron => cron,
        })
    }

    /// The runtimes the schedule produces from `start` to `end`, both
    /// included, oldest first (what a backfill runs). `@once` produces
    /// `start` alone. More than `limit` runtimes is an error, so a typo'd
    /// range cannot start a million runs.
    pub fn runtimes_between(
        &self,
        start: NaiveDateTime,
        end: NaiveDateTime,
        limit: usize,
    ) -> Result<Vec<NaiveDateTime>, String> {
        if end < start {
            return Err(format!(
                "the end time {} is before the start time {}",
                end.format("%Y-%m-%d %H:%M:%S"),
                start.format("%Y-%m-%d %H:%M:%S")
            ));
        }
        let Some(cron) = self.cron() else {
            return Ok(vec![start]);
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| format!("schedule '{self}': {e}"))?;
        let mut runtimes = Vec::new();
        for t in cron.iter_from(start, croner::Direction::Forward) {
            if t > end {
                break;
            }
            if runtimes.len() == limit {
                return Err(format!(
                    "the range has more than {limit} runtimes of schedule '{self}'; backfill a shorter range at a time"
                ));
            }
            runtimes.push(t);
        }
        Ok(runtimes)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule(DEFAULT_SCHEDULE.to_string())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Maps the DAG build's start time to the workflow's first runtime.
#[derive(Clone)]
pub struct StartTimeFactory {
    name: &'static str,
    f: Arc<dyn Fn(NaiveDateTime) -> NaiveDateTime + Send + Sync>,
}

impl StartTimeFactory {
    /// A factory from any function; `name` shows up in listings.
    pub fn new(
        name: &'static str,
        f: impl Fn(NaiveDateTime) -> NaiveDateTime + Send + Sync + 'static,
    ) -> Self {
        StartTimeFactory {
            name,
            f: Arc::new(f),
        }
    }

    /// BigFlow's default: midnight of the day before the start time.
    pub fn daily() -> Self {
        Self::new("daily_start_time", daily_start_time)
    }

    /// The start time in UTC, whole seconds (BigFlow's `hourly_start_time`).
    pub fn hourly() -> Self {
        Self::new("hourly_start_time", hourly_start_time)
    }

    /// Applies the factory.
    pub fn apply(&self, start_time: NaiveDateTime) -> NaiveDateTime {
        (self.f)(start_time)
    }

    /// The factory's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Default for StartTimeFactory {
    fn default() -> Self {
        Self::daily()
    }
}

impl fmt::Debug for StartTimeFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Midnight of the day before `start_time`.
pub fn daily_start_time(start_time: NaiveDateTime) -> NaiveDateTime {
    start_time.date().and_hms_opt(0, 0, 0).unwrap_or(start_time) - Duration::hours(24)
}

/// `start_time` (a local time) shifted to UTC, truncated to whole seconds.
pub fn hourly_start_time(start_time: NaiveDateTime) -> NaiveDateTime {
    let offset = Local::now().offset().fix().local_minus_utc();
    start_time.with_nanosecond(0).unwrap_or(start_time) - Duration::seconds(i64::from(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn presets_and_cron() {
        for ok in [
            "@daily",
            "@once",
            "@hourly",
            "0 2 * * *",
            "*/15 * * * 1-5",
            "0 0 1 JAN *",
        ] {
            assert_eq!(Schedule::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "@fortnightly",
            "",
            " @daily",
            "0 2 * *",
            "0 0 2 * * *",
            "61 * * * *",
            "* 25 * * *",
            "x y z a b",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} should be rejected");
        }
        let msg = Schedule::parse("61 * * * *").unwrap_err().to_string();
        assert!(
            msg.contains("'61 * * * *'") && msg.contains("five-field cron"),
            "{msg}"
        );
    }

    #[test]
    fn runtimes_between_cross_month_ends_oldest_first() {
        let t = |s| crate::runtime::parse_runtime(s).unwrap();
        let fmt = |v: Vec<NaiveDateTime>| {
            v.iter()
                .map(crate::runtime::format_runtime)
                .collect::<Vec<_>>()
        };
        let daily = Schedule::parse("@daily").unwrap();
        assert_eq!(
            fmt(daily
                .runtimes_between(t("2020-02-28 12:00:00"), t("2020-03-02"), 100)
                .unwrap()),
            [
                "2020-02-29 00:00:00",
                "2020-03-01 00:00:00",
                "2020-03-02 00:00:00"
            ]
        );
        let hourly = Schedule::parse("@hourly").unwrap();
        let hours = hourly
            .runtimes_between(t("2020-01-31 22:00:00"), t("2020-02-01 01:30:00"), 100)
            .unwrap();
        assert_eq!(
            fmt(hours),
            [
                "2020-01-31 22:00:00",
                "2020-01-31 23:00:00",
                "2020-02-01 00:00:00",
                "2020-02-01 01:00:00"
            ]
        );
        let monthly = Schedule::parse("@monthly").unwrap();
        assert_eq!(
            monthly
                .runtimes_between(t("2020-01-01"), t("2020-12-31"), 100)
                .unwrap()
                .len(),
            12
        );
        let once = Schedule::parse("@once").unwrap();
        assert_eq!(
            fmt(once
                .runtimes_between(t("2020-01-05"), t("2020-02-01"), 100)
                .unwrap()),
            ["2020-01-05 00:00:00"]
        );
        let cron = Schedule::parse("30 6 * * 1-5").unwrap();
        assert_eq!(
            fmt(cron
                .runtimes_between(t("2020-01-03"), t("2020-01-07 06:30:00"), 100)
                .unwrap()),
            [
                "2020-01-03 06:30:00",
                "2020-01-06 06:30:00",
                "2020-01-07 06:30:00"
            ]
        );
        assert!(
            daily
                .runtimes_between(t("2020-01-02"), t("2020-01-01"), 100)
                .unwrap_err()
                .contains("before the start time")
        );
        assert!(
            hourly
                .runtimes_between(t("2020-01-01"), t("2021-01-01"), 1000)
                .unwrap_err()
                .contains("more than 1000 runtimes")
        );
        // A range inside one interval has no runtime.
        assert!(
            daily
                .runtimes_between(t("2020-01-01 01:00:00"), t("2020-01-01 02:00:00"), 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn daily_start_time_is_previous_midnight() {
        let t = crate::runtime::parse_runtime("2020-01-05 13:30:00").unwrap();
        assert_eq!(
            crate::runtime::format_runtime(&daily_start_time(t)),
            "2020-01-04 00:00:00"
        );
    }

    proptest! {
        #[test]
        fn cron_parser_never_panics(s in "[0-9*/,\\-A-Z@ ]{0,30}") {
            let _ = Schedule::parse(&s);
        }
    }
}

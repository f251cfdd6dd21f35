//! Logging set-up: readable text for people, Cloud Logging JSON for Composer.
//!
//! With `--log-format json` each event is one line in Cloud Logging's
//! structured format (`severity`, `message`, `time` and
//! `logging.googleapis.com/labels` with `workflow_id`, `job_id`, `runtime`
//! and the run's `run_id` taken from the event and its spans), so Composer's
//! logs can be filtered by workflow and job. The project's image sets
//! `BIGFLOW_LOG_FORMAT=json`, so deployed tasks log this way by default.
//! Logs always go to stderr; stdout belongs to the jobs.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Fields that become Cloud Logging labels.
pub const LABEL_FIELDS: &[&str] = &["workflow_id", "job_id", "runtime", "run_id"];

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// Cloud Logging structured JSON, one object per line.
    Json,
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("invalid --log-level '{level}': {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging)
            .try_init(),
    };
    Ok(())
}

/// Formats events as Cloud Logging structured entries.
pub struct CloudLogging;

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

fn label_text(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(s),
        other => Value::String(other.to_string()),
    }
}

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut labels = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields.as_str()) {
                    for (k, v) in map {
                        if LABEL_FIELDS.contains(&k.as_str()) {
                            labels.insert(k, label_text(v));
                        }
                    }
                }
            }
        }
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut entry = Map::new();
        entry.insert("severity".into(), severity(event.metadata().level()).into());
        let message = fields
            .0
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        entry.insert("message".into(), message);
        entry.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        entry.insert("target".into(), event.metadata().target().into());
        for (k, v) in fields.0 {
            if LABEL_FIELDS.contains(&k.as_str()) {
                labels.insert(k, label_text(v));
            } else {
                entry.insert(k, v);
            }
        }
        if !labels.is_empty() {
            entry.insert(
                "logging.googleapis.com/labels".into(),
                Value::Object(labels),
            );
        }
        writeln!(writer, "{}", Value::Object(entry))
    }
}

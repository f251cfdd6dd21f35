//! Tracing output as Fn API log entries: a `tracing` layer that a worker
//! process installs, so what the pipeline's code logs reaches the runner's
//! Logging service (and, on Dataflow, Cloud Logging) while the worker runs.

use std::fmt::{self, Write as _};
use std::sync::Mutex;

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::proto::fn_execution as fnapi;

/// Where the layer sends entries once a worker's Logging stream is open.
static SINK: Mutex<Option<mpsc::Sender<fnapi::LogEntry>>> = Mutex::new(None);

/// Starts sending the layer's entries to `out` (the worker's Logging stream).
pub(crate) fn connect(out: mpsc::Sender<fnapi::LogEntry>) {
    if let Ok(mut s) = SINK.lock() {
        *s = Some(out);
    }
}

/// A `tracing` layer that forwards events as Fn API log entries.
#[derive(Debug, Default, Clone, Copy)]
pub struct FnApiLogLayer;

struct Message {
    text: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

fn severity(level: &Level) -> fnapi::log_entry::severity::Enum {
    use fnapi::log_entry::severity::Enum;
    match *level {
        Level::ERROR => Enum::Error,
        Level::WARN => Enum::Warn,
        Level::INFO => Enum::Info,
        Level::DEBUG => Enum::Debug,
        Level::TRACE => Enum::Trace,
    }
}

impl<S: Subscriber> Layer<S> for FnApiLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Ok(sink) = SINK.lock() else { return };
        let Some(out) = sink.as_ref() else { return };
        let mut m = Message {
            text: String::new(),
            fields: String::new(),
        };
        event.record(&mut m);
        let meta = event.metadata();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // A full queue drops the entry rather than block the pipeline's code.
        let _ = out.try_send(fnapi::LogEntry {
            severity: severity(meta.level()) as i32,
            timestamp: Some(prost_types::Timestamp {
                seconds: now.as_secs() as i64,
                nanos: now.subsec_nanos() as i32,
            }),
            message: format!("{}{}", m.text, m.fields),
            log_location: format!(
                "{}:{}",
                meta.file().unwrap_or(meta.target()),
                meta.line().unwrap_or(0)
            ),
            thread: std::thread::current().name().unwrap_or("").to_string(),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_log_entries_with_severity_message_and_fields() {
        let (tx, mut rx) = mpsc::channel(16);
        connect(tx);
        let subscriber = tracing_subscriber::registry().with(FnApiLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(word = "love", "counted {} words", 3);
            tracing::error!("it failed");
        });
        let first = rx.try_recv().unwrap();
        assert_eq!(
            first.severity,
            fnapi::log_entry::severity::Enum::Warn as i32
        );
        assert_eq!(first.message, "counted 3 words word=love");
        assert!(
            first.log_location.contains("fn_logging.rs"),
            "{}",
            first.log_location
        );
        assert!(first.timestamp.is_some());
        let second = rx.try_recv().unwrap();
        assert_eq!(
            second.severity,
            fnapi::log_entry::severity::Enum::Error as i32
        );
        assert_eq!(second.message, "it failed");
    }
}

//! The `tracing` layer that writes each event as one line (`line.rs`) into
//! the log buffer. Spans are not printed.

use std::cell::RefCell;
use std::fmt::Debug;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::config::LogFormat;
use crate::logging::buffer::LogBuffer;
use crate::logging::line::Line;
use crate::logging::request_id;

pub struct LineLayer {
    buffer: LogBuffer,
    format: LogFormat,
}

impl LineLayer {
    pub fn new(buffer: LogBuffer, format: LogFormat) -> Self {
        Self { buffer, format }
    }
}

thread_local! {
    /// Where a line is assembled before it goes into the buffer whole.
    pub(super) static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        SCRATCH.with_borrow_mut(|out| {
            out.clear();
            let mut line = Line::start(out, self.format, *metadata.level(), metadata.target());
            event.record(&mut Fields(&mut line));
            // A handler's own lines name their request, as its access line does.
            request_id::with_current(|id| {
                if let Some(id) = id {
                    line.str("request_id", id.to_str().unwrap_or_default());
                }
            });
            line.finish();
            // The buffer takes every line whole, or drops and counts it.
            let _ = (&self.buffer).write_all(out);
        });
    }
}

/// Hands each field of an event to the line.
struct Fields<'l, 'a>(&'l mut Line<'a>);

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.message(value);
        } else {
            self.0.str(field.name(), value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.int(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.int(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.bool(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0.message(&format!("{value:?}"));
        } else {
            self.0.debug(field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::logging::buffer::{Output, log_buffer};

    fn logged(format: LogFormat) -> Vec<String> {
        let output = Output::default();
        let (buffer, flusher) = log_buffer(output.clone());
        let subscriber = tracing_subscriber::registry().with(LineLayer::new(buffer, format));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(address = %"0.0.0.0:8000", max_connections = 2048u64, "serving");
            tracing::warn!(reason = "two\nlines", stopping = true, delta = -3i64, "odd");
            let mut id = axum::http::HeaderValue::from_static("0a1b2c3d-7");
            request_id::scope(&mut id, || tracing::info!(item = 7u64, "by a handler"));
        });
        drop(flusher);
        output
            .text()
            .lines()
            .map(|line| {
                line.split_once(if format == LogFormat::Text { ' ' } else { ',' })
                    .expect("a timestamp")
                    .1
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn events_are_written_in_text_with_the_message_first() {
        assert_eq!(
            logged(LogFormat::Text),
            [
                " INFO api::logging::layer::tests: serving address=0.0.0.0:8000 max_connections=2048",
                r#" WARN api::logging::layer::tests: odd reason="two\nlines" stopping=true delta=-3"#,
                " INFO api::logging::layer::tests: by a handler item=7 request_id=0a1b2c3d-7",
            ]
        );
    }

    #[test]
    fn events_are_written_in_json_with_typed_values() {
        let lines = logged(LogFormat::Json);
        let parsed: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| serde_json::from_str(&format!("{{{line}")).expect("JSON"))
            .collect();
        assert_eq!(parsed[0]["message"], "serving");
        assert_eq!(parsed[0]["address"], "0.0.0.0:8000");
        assert_eq!(parsed[0]["max_connections"], 2048);
        assert_eq!(parsed[1]["level"], "WARN");
        assert_eq!(parsed[1]["reason"], "two\nlines");
        assert_eq!(parsed[1]["stopping"], true);
        assert_eq!(parsed[1]["delta"], -3);
        assert_eq!(parsed[1]["target"], "api::logging::layer::tests");
        assert!(parsed[1].get("request_id").is_none(), "not a handler's");
        assert_eq!(parsed[2]["request_id"], "0a1b2c3d-7");
    }
}

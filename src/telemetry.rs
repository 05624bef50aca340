//! Logging through `tracing`, to stdout: plain text lines by default, JSON
//! lines with `--log-format json`.
//!
//! Three things keep the access log off the request's critical path:
//! - Lines go to a buffer that a background thread writes out every 100 ms
//!   (see `log_buffer`): no system call per request.
//! - The text format is our own: tracing-subscriber's default one spends
//!   about 10,000 instructions a line on colour codes (even when they are
//!   off) and on quoting every string; this one about a fifth of that
//!   (docs/benchmarks.md). It prints the same fields in the same order.
//! - Access lines skip `tracing` altogether (`access_log`), in the same
//!   formats.

use std::fmt::{self, Debug};
use std::io;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::access_log::{self, Timestamp};
use crate::config::LogFormat;
use crate::log_buffer::{LogFlusher, log_buffer};

/// Installs the global subscriber. Keep the flusher alive until exit:
/// dropping it writes the lines still buffered.
pub fn init(format: LogFormat, filter: &str) -> Result<LogFlusher, String> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| format!("invalid log filter {filter:?}: {error}"))?;
    let (writer, flusher) = log_buffer(io::stdout());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    match format {
        LogFormat::Text => subscriber.event_format(TextLine).init(),
        LogFormat::Json => subscriber.json().flatten_event(true).init(),
    }
    access_log::install(writer, format);
    Ok(flusher)
}

/// `2026-11-27T20:55:57.589861Z  INFO api::access: request method=GET path=/hello_world status=200 ...`
pub struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        write!(
            writer,
            "{} {:>5} {}:",
            Timestamp::now().as_str(),
            metadata.level(),
            metadata.target()
        )?;
        let mut fields = FieldWriter {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes ` name=value` per field, and the message bare.
struct FieldWriter<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    /// Writes ` name=` (or just ` ` for the message), then `value`.
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.writer.write_char(' ').and_then(|()| {
                if field.name() != "message" {
                    self.writer.write_str(field.name())?;
                    self.writer.write_char('=')?;
                }
                value(self.writer)
            });
        }
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Strings are written as they are, unless a control character could
        // break the line (one line per event is what log shippers expect).
        if value.bytes().any(|byte| byte.is_ascii_control()) {
            self.write(field, |writer| write!(writer, "{value:?}"));
        } else {
            self.write(field, |writer| writer.write_str(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |writer| write!(writer, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.write(field, |writer| write!(writer, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_buffer::Output;

    #[test]
    fn text_line_prints_the_message_and_fields_on_one_line() {
        let output = Output::default();
        let (writer, flusher) = log_buffer(output.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .event_format(TextLine)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "api::access", method = %"GET", path = "/x", status = 200u16, "request");
            tracing::warn!(reason = "two\nlines", "odd");
        });
        drop(flusher);
        let text = output.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (timestamp, rest) = lines[0].split_once(' ').expect("a timestamp");
        assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{timestamp}");
        assert_eq!(
            rest,
            " INFO api::access: request method=GET path=/x status=200"
        );
        assert!(
            lines[1].ends_with(r#"WARN api::telemetry::tests: odd reason="two\nlines""#),
            "{}",
            lines[1]
        );
    }
}

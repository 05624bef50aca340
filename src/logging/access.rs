//! The access log: one line per request, written straight into the log
//! buffer by the same writer as every other line (`line.rs`), in the
//! format the process logs in.
//!
//! Going through `tracing` cost about 3,400 instructions a request, a sixth
//! of the whole: the dispatcher, the filter, a visitor call per field and
//! the dynamic dispatch around each (docs/benchmarks.md). So the filter is
//! asked once, at start, and each line is written directly.
//!
//! Until `install` runs (in tests, say), lines go through `tracing`, so that
//! a test's subscriber sees them.

use std::io::Write;
use std::sync::OnceLock;

use tracing::Level;

use crate::config::LogFormat;
use crate::key;
use crate::logging::buffer::LogBuffer;
use crate::logging::layer::SCRATCH;
use crate::logging::line::Line;

/// Target and level of access lines, for `--log-filter` / `RUST_LOG`.
pub const TARGET: &str = "api::access";

/// What one line records about a request.
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_us: u64,
    pub request_id: &'a str,
    /// The request's trace and span, when traces are on.
    pub trace: Option<TraceIds<'a>>,
}

/// A trace id and a span id, in lowercase hex.
pub struct TraceIds<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
}

struct Installed {
    buffer: LogBuffer,
    format: LogFormat,
    /// Whether the log filter lets INFO lines of [`TARGET`] through.
    enabled: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// From now on, access lines go to `buffer` in `format`, if the global
/// `tracing` filter (installed already) lets them through.
pub fn install(buffer: LogBuffer, format: LogFormat) {
    let enabled = tracing::enabled!(target: TARGET, Level::INFO);
    // A second install (a second `logging::init`) keeps the first.
    let _ = INSTALLED.set(Installed {
        buffer,
        format,
        enabled,
    });
}

/// Logs one request.
pub fn log(line: &AccessLine<'_>) {
    let Some(installed) = INSTALLED.get() else {
        tracing::info!(
            target: TARGET,
            method = line.method,
            path = line.path,
            route = line.route,
            status = line.status,
            latency_us = line.latency_us,
            request_id = line.request_id,
            trace_id = line.trace.as_ref().map(|ids| ids.trace_id),
            span_id = line.trace.as_ref().map(|ids| ids.span_id),
        );
        return;
    };
    if !installed.enabled {
        return;
    }
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        write(out, installed.format, line);
        // The buffer takes every line whole, or drops and counts it.
        let _ = (&installed.buffer).write_all(out);
    });
}

fn write(out: &mut Vec<u8>, format: LogFormat, line: &AccessLine<'_>) {
    let mut written = Line::start(out, format, Level::INFO, TARGET);
    // None of these can hold a control character: a method is a token, the
    // `http` crate refuses control bytes in a path, routes are our
    // templates, request ids are printable ASCII (`api::observe`), and
    // trace and span ids are hex.
    written.plain_str(key!("method"), line.method);
    written.plain_str(key!("path"), line.path);
    written.plain_str(key!("route"), line.route);
    written.key_int(key!("status"), line.status);
    written.key_int(key!("latency_us"), line.latency_us);
    written.plain_str(key!("request_id"), line.request_id);
    if let Some(ids) = &line.trace {
        written.plain_str(key!("trace_id"), ids.trace_id);
        written.plain_str(key!("span_id"), ids.span_id);
    }
    written.finish();
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::logging::buffer::{Output, log_buffer};
    use crate::logging::layer::LineLayer;

    const LINE: AccessLine<'static> = AccessLine {
        method: "GET",
        path: "/hello%5Fworld",
        route: "/hello_world",
        status: 200,
        latency_us: 73,
        request_id: "a\"b\\c",
        trace: None,
    };

    const TRACED: AccessLine<'static> = AccessLine {
        trace: Some(TraceIds {
            trace_id: "0af7651916cd43dd8448eb211c80319c",
            span_id: "b7ad6b7169203331",
        }),
        ..LINE
    };

    /// The line as written directly, and as `tracing` gets it before
    /// `install` (through our layer), timestamps cut out.
    fn both(format: LogFormat, line: &AccessLine<'_>) -> (String, String) {
        let output = Output::default();
        let (buffer, flusher) = log_buffer(output.clone());
        let subscriber = tracing_subscriber::registry().with(LineLayer::new(buffer, format));
        tracing::subscriber::with_default(subscriber, || log(line));
        drop(flusher);
        let through_tracing = output.text();
        let mut out = Vec::new();
        write(&mut out, format, line);
        let cut =
            |line: &str| line.replacen(&line[line.find("202").expect("a date")..][..27], "TS", 1);
        (
            cut(&String::from_utf8(out).expect("UTF-8")),
            cut(&through_tracing),
        )
    }

    #[test]
    fn the_access_line_is_the_same_written_directly_or_through_tracing() {
        for format in [LogFormat::Text, LogFormat::Json] {
            for line in [&LINE, &TRACED] {
                let (direct, through_tracing) = both(format, line);
                assert_eq!(direct, through_tracing, "{format:?}");
            }
        }
        let (json, _) = both(LogFormat::Json, &LINE);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(parsed["request_id"], "a\"b\\c");
        assert_eq!(parsed["status"], 200);
        assert!(parsed.get("trace_id").is_none());
    }

    #[test]
    fn a_traced_request_logs_its_trace_and_span_ids() {
        let (json, _) = both(LogFormat::Json, &TRACED);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(parsed["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parsed["span_id"], "b7ad6b7169203331");
        let (text, _) = both(LogFormat::Text, &TRACED);
        assert!(
            text.ends_with(
                " request_id=a\"b\\c trace_id=0af7651916cd43dd8448eb211c80319c span_id=b7ad6b7169203331\n"
            ),
            "{text}"
        );
    }
}

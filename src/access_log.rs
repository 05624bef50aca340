//! The access log: one line per request, in text or JSON, exactly as
//! `tracing` would print it, but written directly into the log buffer.
//!
//! Going through `tracing` cost about 3,400 instructions a request, a sixth
//! of the whole: the dispatcher, the filter, a visitor call per field, the
//! `fmt` machinery for every value, and a timestamp formatted from scratch
//! on every line. Here the line is assembled byte by byte, numbers with
//! `itoa`, and the date and time are formatted once a second
//! (docs/benchmarks.md). Every other log line still goes through `tracing`.
//!
//! Until `install` runs (in tests, say), lines go through `tracing`.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;
use crate::log_buffer::LogBuffer;

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
    let enabled = tracing::enabled!(target: TARGET, tracing::Level::INFO);
    // A second install (a second `telemetry::init`) keeps the first.
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
        );
        return;
    };
    if !installed.enabled {
        return;
    }
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        let now = Timestamp::now();
        match installed.format {
            LogFormat::Text => text(out, &now, line),
            LogFormat::Json => json(out, &now, line),
        }
        // The buffer takes every write whole; it drops, and counts, lines
        // only when its reader stalls.
        let _ = (&installed.buffer).write_all(out);
    });
}

/// `2026-11-27T20:55:57.589861Z  INFO api::access: method=GET path=/ ... request_id=1880b33d-1`,
/// as `telemetry::TextLine` prints an event with these fields.
///
/// `TextLine` quotes a value that holds a control character; none of these
/// can: a method is a token, the `http` crate refuses control bytes in a
/// path, routes are our templates, and request ids are printable ASCII
/// (`observe.rs`). So they are written as they are, unscanned.
fn text(out: &mut Vec<u8>, now: &Timestamp, line: &AccessLine<'_>) {
    debug_assert!(
        [line.method, line.path, line.route, line.request_id]
            .iter()
            .all(|value| !value.bytes().any(|byte| byte.is_ascii_control())),
        "an access-log field holds a control character"
    );
    out.extend_from_slice(now.as_bytes());
    out.extend_from_slice(b"  INFO api::access: method=");
    out.extend_from_slice(line.method.as_bytes());
    out.extend_from_slice(b" path=");
    out.extend_from_slice(line.path.as_bytes());
    out.extend_from_slice(b" route=");
    out.extend_from_slice(line.route.as_bytes());
    out.extend_from_slice(b" status=");
    out.extend_from_slice(itoa::Buffer::new().format(line.status).as_bytes());
    out.extend_from_slice(b" latency_us=");
    out.extend_from_slice(itoa::Buffer::new().format(line.latency_us).as_bytes());
    out.extend_from_slice(b" request_id=");
    out.extend_from_slice(line.request_id.as_bytes());
    out.push(b'\n');
}

/// The line `tracing-subscriber`'s JSON format (flattened) prints for the
/// same event: timestamp, level, the fields in order, target.
fn json(out: &mut Vec<u8>, now: &Timestamp, line: &AccessLine<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(now.as_bytes());
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"method\":");
    json_string(out, line.method);
    out.extend_from_slice(b",\"path\":");
    json_string(out, line.path);
    out.extend_from_slice(b",\"route\":");
    json_string(out, line.route);
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(itoa::Buffer::new().format(line.status).as_bytes());
    out.extend_from_slice(b",\"latency_us\":");
    out.extend_from_slice(itoa::Buffer::new().format(line.latency_us).as_bytes());
    out.extend_from_slice(b",\"request_id\":");
    json_string(out, line.request_id);
    out.extend_from_slice(b",\"target\":\"api::access\"}\n");
}

fn json_string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(out, value).expect("a string serialises into memory");
}

/// `2026-11-27T20:55:57.589861Z`: RFC 3339 in UTC with microseconds.
pub struct Timestamp([u8; 27]);

impl Timestamp {
    /// Now. The date and time of day are formatted once a second per
    /// thread, the microseconds on every call.
    pub fn now() -> Self {
        thread_local! {
            static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let (cached, mut date_time) = SECOND.get();
        if cached != seconds {
            let formatted = humantime::format_rfc3339_seconds(UNIX_EPOCH + since_epoch).to_string();
            date_time.copy_from_slice(&formatted.as_bytes()[..19]);
            SECOND.set((seconds, date_time));
        }
        let mut stamp = [0; 27];
        stamp[..19].copy_from_slice(&date_time);
        stamp[19] = b'.';
        let mut micros = since_epoch.subsec_micros();
        for digit in stamp[20..26].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        stamp[26] = b'Z';
        Self(stamp)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits and punctuation")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_buffer::{Output, log_buffer};
    use crate::telemetry::TextLine;

    const LINE: AccessLine<'static> = AccessLine {
        method: "GET",
        path: "/hello%5Fworld",
        route: "/hello_world",
        status: 200,
        latency_us: 73,
        request_id: "a\"b\\c",
    };

    /// What `tracing-subscriber` prints for the same event, in `format`.
    fn through_tracing(format: LogFormat) -> String {
        let output = Output::default();
        let (writer, flusher) = log_buffer(output.clone());
        let subscriber = tracing_subscriber::fmt().with_writer(writer);
        let dispatch = match format {
            LogFormat::Text => tracing::Dispatch::new(subscriber.event_format(TextLine).finish()),
            LogFormat::Json => {
                tracing::Dispatch::new(subscriber.json().flatten_event(true).finish())
            }
        };
        tracing::dispatcher::with_default(&dispatch, || log(&LINE));
        drop(flusher);
        output.text()
    }

    fn direct(format: LogFormat) -> String {
        let mut out = Vec::new();
        let now = Timestamp::now();
        match format {
            LogFormat::Text => text(&mut out, &now, &LINE),
            LogFormat::Json => json(&mut out, &now, &LINE),
        }
        String::from_utf8(out).expect("UTF-8")
    }

    /// Both lines with their timestamps (27 bytes) cut out.
    fn without_timestamps(a: &str, b: &str) -> (String, String) {
        let cut =
            |line: &str| line.replacen(&line[line.find("202").expect("a date")..][..27], "TS", 1);
        (cut(a), cut(b))
    }

    #[test]
    fn the_direct_text_line_is_the_one_tracing_prints() {
        let (ours, theirs) =
            without_timestamps(&direct(LogFormat::Text), &through_tracing(LogFormat::Text));
        assert_eq!(ours, theirs);
    }

    #[test]
    fn the_direct_json_line_is_the_one_tracing_prints() {
        let (ours, theirs) =
            without_timestamps(&direct(LogFormat::Json), &through_tracing(LogFormat::Json));
        assert_eq!(ours, theirs);
        let parsed: serde_json::Value = serde_json::from_str(&ours).expect("JSON");
        assert_eq!(parsed["request_id"], "a\"b\\c");
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds_and_follow_the_clock() {
        let before = SystemTime::now();
        let stamp = Timestamp::now();
        let parsed = humantime::parse_rfc3339(stamp.as_str()).expect("RFC 3339");
        let after = SystemTime::now();
        let micro = std::time::Duration::from_micros(1);
        assert!(
            before - micro <= parsed && parsed <= after,
            "{}",
            stamp.as_str()
        );
    }
}

//! The one writer of log lines, in both formats, for every line the
//! process logs: application events (through `tracing`, `layer.rs`) and
//! access lines (directly, `access.rs`).
//!
//! - text: `2026-11-27T20:55:57.589861Z  INFO api::access: method=GET path=/ status=200`
//!   (the message, if any, bare; a value holding a control character is
//!   quoted and escaped, so that an event is always one line);
//! - JSON: `{"timestamp":"…","level":"INFO","method":"GET",…,"target":"api::access"}`,
//!   one object per line.
//!
//! Written by hand, byte by byte, numbers with `itoa`, the date and time
//! formatted once a second: through tracing-subscriber's formatters, a
//! line cost several thousand instructions more (colour codes even when
//! off, quoting every string, the `fmt` machinery for every value;
//! docs/benchmarks.md).

use std::cell::Cell;
use std::fmt::{self, Debug, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;

use crate::config::LogFormat;

/// A field name as both formats write it before the value: ` name=` and
/// `,"name":`. Made once, at compile time, by [`key!`]: writing a name
/// piece by piece cost a hundred instructions a field on the access line.
#[derive(Clone, Copy)]
pub struct Key {
    pub text: &'static str,
    pub json: &'static str,
}

/// `key!("method")`: the [`Key`] of a field named `method`.
#[macro_export]
macro_rules! key {
    ($name:literal) => {
        $crate::logging::line::Key {
            text: concat!(" ", $name, "="),
            json: concat!(",\"", $name, "\":"),
        }
    };
}

/// A line being written into `out`: start it, add fields, finish it.
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    format: LogFormat,
    target: &'a str,
}

impl<'a> Line<'a> {
    /// The timestamp, the level and (in text) the target.
    pub fn start(out: &'a mut Vec<u8>, format: LogFormat, level: Level, target: &'a str) -> Self {
        let now = Timestamp::now();
        match format {
            LogFormat::Text => {
                out.extend_from_slice(now.as_bytes());
                out.extend_from_slice(match level {
                    Level::ERROR => b" ERROR ",
                    Level::WARN => b"  WARN ",
                    Level::INFO => b"  INFO ",
                    Level::DEBUG => b" DEBUG ",
                    Level::TRACE => b" TRACE ",
                });
                out.extend_from_slice(target.as_bytes());
                out.push(b':');
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(now.as_bytes());
                out.extend_from_slice(b"\",\"level\":\"");
                out.extend_from_slice(level.as_str().as_bytes());
                out.push(b'"');
            }
        }
        Self {
            out,
            format,
            target,
        }
    }

    /// The event's message: bare in text, a `message` field in JSON.
    pub fn message(&mut self, message: &str) {
        match self.format {
            LogFormat::Text => {
                self.out.push(b' ');
                self.text_value(message);
            }
            LogFormat::Json => self.str("message", message),
        }
    }

    /// A string field.
    pub fn str(&mut self, name: &str, value: &str) {
        self.name(name);
        match self.format {
            LogFormat::Text => self.text_value(value),
            LogFormat::Json => json_string(self.out, value),
        }
    }

    /// A string field known to hold no control character (a method, a
    /// path the `http` crate accepted, a route template, a request id):
    /// written without looking at it in text, where the look costs the
    /// most (debug builds check). For the access line, whose fields are
    /// known: its name comes ready in both formats ([`key!`]).
    pub fn plain_str(&mut self, key: Key, value: &str) {
        debug_assert!(
            !value.bytes().any(|byte| byte.is_ascii_control()),
            "the field {} holds a control character",
            key.text
        );
        self.key(key);
        match self.format {
            LogFormat::Text => self.out.extend_from_slice(value.as_bytes()),
            LogFormat::Json => json_string(self.out, value),
        }
    }

    /// A number field whose name comes ready ([`key!`]).
    pub fn key_int(&mut self, key: Key, value: impl itoa::Integer) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn key(&mut self, key: Key) {
        self.out.extend_from_slice(match self.format {
            LogFormat::Text => key.text.as_bytes(),
            LogFormat::Json => key.json.as_bytes(),
        });
    }

    /// A number field.
    pub fn int(&mut self, name: &str, value: impl itoa::Integer) {
        self.name(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// A `true` or `false` field (a JSON boolean).
    pub fn bool(&mut self, name: &str, value: bool) {
        self.name(name);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// A field of any other type, as its `Debug` form (a string in JSON).
    pub fn debug(&mut self, name: &str, value: &dyn Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        match self.format {
            LogFormat::Text => {
                self.name(name);
                self.text_value(&text);
            }
            LogFormat::Json => self.str(name, &text),
        }
    }

    /// Ends the line (and, in JSON, names the target last, as
    /// tracing-subscriber's JSON format does).
    pub fn finish(self) {
        match self.format {
            LogFormat::Text => self.out.push(b'\n'),
            LogFormat::Json => {
                self.out.extend_from_slice(b",\"target\":");
                json_string(self.out, self.target);
                self.out.extend_from_slice(b"}\n");
            }
        }
    }

    fn name(&mut self, name: &str) {
        match self.format {
            LogFormat::Text => {
                self.out.push(b' ');
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'=');
            }
            LogFormat::Json => {
                self.out.push(b',');
                json_string(self.out, name);
                self.out.push(b':');
            }
        }
    }

    /// A text value: as it is, unless a control character could break
    /// the line (one line per event is what log shippers expect).
    fn text_value(&mut self, value: &str) {
        if value.bytes().any(|byte| byte.is_ascii_control()) {
            let mut quoted = String::new();
            let _ = write!(quoted, "{value:?}");
            self.out.extend_from_slice(quoted.as_bytes());
        } else {
            self.out.extend_from_slice(value.as_bytes());
        }
    }
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

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat, fields: impl FnOnce(&mut Line<'_>)) -> String {
        let mut out = Vec::new();
        let mut line = Line::start(&mut out, format, Level::WARN, "api::test");
        fields(&mut line);
        line.finish();
        let text = String::from_utf8(out).expect("UTF-8");
        // The timestamp, checked, then cut out.
        let (stamp, rest) = match format {
            LogFormat::Text => text.split_at(27),
            LogFormat::Json => (&text[14..41], &text[41..]),
        };
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
        rest.to_owned()
    }

    fn fields(line: &mut Line<'_>) {
        line.message("odd");
        line.str("reason", "two\nlines");
        line.plain_str(crate::key!("path"), "/x");
        line.int("status", 200u16);
        line.bool("sampled", true);
        line.debug("timeout", &std::time::Duration::from_millis(1500));
    }

    #[test]
    fn text_lines_are_one_line_with_the_message_bare() {
        assert_eq!(
            line(LogFormat::Text, fields),
            "  WARN api::test: odd reason=\"two\\nlines\" path=/x status=200 sampled=true timeout=1.5s\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_with_the_target_last() {
        let rest = line(LogFormat::Json, fields);
        assert_eq!(
            rest,
            "\",\"level\":\"WARN\",\"message\":\"odd\",\"reason\":\"two\\nlines\",\"path\":\"/x\",\"status\":200,\"sampled\":true,\"timeout\":\"1.5s\",\"target\":\"api::test\"}\n"
        );
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

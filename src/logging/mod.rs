//! Logging: one line per event on stdout, as text by default or JSON with
//! `--log-format json`, for application events (through `tracing`) and
//! access lines alike.
//!
//! - `line.rs` writes every line, in both formats;
//! - `layer.rs` is the `tracing` layer that hands events to it;
//! - `access.rs` writes the access line of each request directly, without
//!   going through `tracing`'s machinery (a sixth of a request's cost);
//! - `request_id.rs` is the id of the request whose handler is running,
//!   which the lines its handler logs carry;
//! - `buffer.rs` is where lines wait for a background thread to write them
//!   out, every 100 ms: no system call on the request path.

pub mod access;
pub mod buffer;
mod layer;
pub mod line;
pub mod request_id;

use std::io;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;
use crate::logging::buffer::{LogFlusher, log_buffer};
use crate::logging::layer::LineLayer;

/// Installs the global subscriber. Keep the flusher alive until exit, then
/// stop it by the shutdown's deadline: it writes the lines still buffered.
pub fn init(format: LogFormat, filter: &str) -> Result<LogFlusher, String> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| format!("invalid log filter {filter:?}: {error}"))?;
    let (buffer, flusher) = log_buffer(io::stdout());
    tracing_subscriber::registry()
        .with(filter)
        .with(LineLayer::new(buffer.clone(), format))
        .try_init()
        .map_err(|error| error.to_string())?;
    access::install(buffer, format);
    // The default hook prints a panic as plain text on stderr, outside the
    // log lines: a JSON pipeline would not parse it, nor tie it to a request.
    std::panic::set_hook(Box::new(log_panic));
    Ok(flusher)
}

/// A panic, as an error line of its own (target `api::panic`), with where
/// it happened; one in a handler also names its request (`request_id.rs`).
/// The app answers such a request 500 and keeps serving (`api::guard`).
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    let location = info.location().map_or_else(String::new, |location| {
        format!(
            "{}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        )
    });
    tracing::error!(target: "api::panic", location, "{message}");
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::logging::buffer::Output;

    #[test]
    fn a_panic_is_an_error_line_with_its_message_and_location() {
        let output = Output::default();
        let (buffer, flusher) = log_buffer(output.clone());
        let subscriber =
            tracing_subscriber::registry().with(LineLayer::new(buffer, LogFormat::Json));
        tracing::subscriber::with_default(subscriber, || {
            // The hook is the process's: only for as long as this panic.
            std::panic::set_hook(Box::new(log_panic));
            let panicked = std::panic::catch_unwind(|| panic!("a bug: {}", 42));
            drop(std::panic::take_hook());
            assert!(panicked.is_err());
        });
        drop(flusher);
        let text = output.text();
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["target"], "api::panic");
        assert_eq!(line["message"], "a bug: 42");
        assert!(
            line["location"]
                .as_str()
                .expect("a location")
                .starts_with("src/logging/mod.rs:"),
            "{line}"
        );
    }
}

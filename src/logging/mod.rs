//! Logging: one line per event on stdout, as text by default or JSON with
//! `--log-format json`, for application events (through `tracing`) and
//! access lines alike.
//!
//! - `line.rs` writes every line, in both formats;
//! - `layer.rs` is the `tracing` layer that hands events to it;
//! - `access.rs` writes the access line of each request directly, without
//!   going through `tracing`'s machinery (a sixth of a request's cost);
//! - `buffer.rs` is where lines wait for a background thread to write them
//!   out, every 100 ms: no system call on the request path.

pub mod access;
pub mod buffer;
mod layer;
pub mod line;

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
    Ok(flusher)
}

//! Logging through `tracing`, to stdout, as text or JSON lines.
//!
//! Lines are handed to a background thread that writes whatever has queued up
//! in one go and flushes whenever the queue runs dry: no `write(2)` on the
//! request path, and no line waits longer than it takes to write the ones
//! before it. If the queue ever fills, lines are dropped rather than
//! slowing requests down.

use std::io::{self, BufWriter, IsTerminal};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Keep the guard alive until exit: dropping
/// it flushes the lines still queued.
pub fn init(format: LogFormat, filter: &str) -> Result<WorkerGuard, String> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| format!("invalid log filter {filter:?}: {error}"))?;
    let (writer, guard) = tracing_appender::non_blocking(BufWriter::new(io::stdout()));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stdout().is_terminal())
        .with_writer(writer);
    match format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().flatten_event(true).init(),
    }
    Ok(guard)
}

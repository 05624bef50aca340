//! How many connections the server holds, and what it does at the limit.
//!
//! Each open connection costs memory (about 12 KB once it has made a
//! request; docs/benchmarks.md) and a file descriptor. Without a bound, a
//! crowd of clients that open connections and keep them alive grows the
//! process until the container is OOM-killed, or until it runs out of
//! descriptors and `accept` fails in a loop. So:
//!
//! - at start, the soft open-files limit is raised to the hard one: containers
//!   now start with a soft limit of 1024 and expect software that needs more
//!   to raise it itself (as Go's runtime does);
//! - at most `--max-connections` connections are open at once. At the limit
//!   the server stops accepting until one closes: new clients wait in the
//!   kernel's listen backlog instead of costing memory here;
//! - accept errors (which the two measures above make rare) are logged at
//!   most once every few seconds, with how many there were.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept for everything that is not a client connection: stdio,
/// the listeners, the runtime's epoll and wake-up descriptors, metrics
/// scrapes, and the health probe's own connection.
const RESERVED_FDS: u64 = 64;

/// How often repeated accept errors are logged.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// Raises the soft open-files limit as far as the hard limit allows and
/// returns the limit in force, or the error that prevented reading it.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection limit that fits in `open_files` descriptors: `requested`,
/// or fewer when the descriptors would run out first (`accept` would fail
/// before the limit is reached).
pub fn fit_to_open_files(requested: usize, open_files: u64) -> usize {
    let available = open_files.saturating_sub(RESERVED_FDS).max(1);
    requested.min(usize::try_from(available).unwrap_or(usize::MAX))
}

/// What the connection limit reports to the metrics.
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Times the server stopped accepting because the limit was reached.
    pub limit_reached: IntCounter,
    /// Failed `accept` calls.
    pub accept_errors: IntCounter,
}

/// At most `max` connections open at once, counted in the metrics if any.
#[derive(Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    metrics: Option<ConnectionMetrics>,
}

impl ConnectionLimit {
    pub fn new(max: usize, metrics: Option<ConnectionMetrics>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            metrics,
        }
    }

    /// Waits until one more connection may be opened: the returned place
    /// is kept for it while it is accepted.
    pub async fn admit(&self) -> Admission {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!("connection limit reached; waiting for a connection to close");
                if let Some(metrics) = &self.metrics {
                    metrics.limit_reached.inc();
                }
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        Admission(permit)
    }

    /// The accepted connection that takes `place`: counted as open until
    /// it is dropped, which frees the place.
    pub fn open(&self, place: Admission) -> Connection {
        let open = self.metrics.as_ref().map(|metrics| {
            metrics.open.inc();
            metrics.open.clone()
        });
        Connection {
            _permit: place.0,
            open,
        }
    }

    /// Counts a failed accept; see [`AcceptErrors`] for the log line.
    pub fn count_accept_error(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.accept_errors.inc();
        }
    }
}

/// A place for one more connection, not yet accepted.
pub struct Admission(OwnedSemaphorePermit);

/// One open connection: frees its place when dropped.
pub struct Connection {
    _permit: OwnedSemaphorePermit,
    open: Option<IntGauge>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.dec();
        }
    }
}

/// Logs failed accepts at most once every [`ACCEPT_ERROR_LOG_EVERY`], with
/// how many failed since the last line: a failing `accept` repeats every
/// few milliseconds, and a line for each would flood the log.
#[derive(Default)]
pub struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    pub fn record(&mut self, error: &io::Error) {
        self.unlogged += 1;
        let due = self
            .last_logged
            .is_none_or(|logged| logged.elapsed() >= ACCEPT_ERROR_LOG_EVERY);
        if due {
            tracing::warn!(
                %error,
                failures = self.unlogged,
                "accept failed; backing off (at most one such line every 5 s)"
            );
            self.last_logged = Some(Instant::now());
            self.unlogged = 0;
        }
    }

    /// Failures since the last line: what the next line will report.
    #[cfg(test)]
    fn unlogged(&self) -> u64 {
        self.unlogged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_shrinks_to_fit_the_open_files_limit() {
        assert_eq!(fit_to_open_files(2048, 1_048_576), 2048);
        assert_eq!(fit_to_open_files(10_000, 1024), 1024 - 64);
        assert_eq!(fit_to_open_files(10_000, 10), 1);
    }

    #[test]
    fn repeated_accept_errors_make_one_line_then_are_counted_until_the_next() {
        let mut errors = AcceptErrors::default();
        let error = io::Error::from_raw_os_error(24);
        errors.record(&error);
        assert_eq!(errors.unlogged(), 0, "the first failure is logged at once");
        for _ in 0..99 {
            errors.record(&error);
        }
        assert_eq!(errors.unlogged(), 99, "then they wait for the next line");
    }

    #[tokio::test]
    async fn past_the_limit_admission_waits_until_a_connection_closes() {
        let limit = ConnectionLimit::new(2, None);
        let first = limit.admit().await;
        let _second = limit.admit().await;
        let third = tokio::spawn({
            let limit = limit.clone();
            async move { limit.admit().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "the third waits while two are open");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("admitted once the first closed")
            .expect("joins");
    }
}

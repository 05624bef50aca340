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
//!   most once every few seconds, with how many there were;
//! - so are connections that end in an error hyper answered itself (a
//!   malformed or oversized request head: 400, 431, 414), or with no answer
//!   (header-read or write timeout, the client going away), counted by
//!   [`ConnectionError`] reason: these never reach the app, so they have no
//!   access line and no request id, and the counter is how an operator sees
//!   a scan or a slowloris wave.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::stream::WriteStalled;

/// Descriptors kept for everything that is not a client connection: stdio,
/// the listeners, the runtime's epoll and wake-up descriptors, metrics
/// scrapes, and the health probe's own connection.
const RESERVED_FDS: u64 = 64;

/// How often a repeated accept or connection error is logged, at most.
pub const ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

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

/// What a listener's connections report to the metrics.
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// The API listener's gauges and counters (`http_connections_*`);
    /// `None` for the metrics listener, which has only its errors counted.
    pub counts: Option<ConnectionCounts>,
    /// Connections that ended in an error, by reason: one counter per
    /// [`ConnectionError`], in the order of [`ConnectionError::ALL`].
    pub errors: Vec<IntCounter>,
}

#[derive(Clone)]
pub struct ConnectionCounts {
    /// Connections open now.
    pub open: IntGauge,
    /// Times the server stopped accepting because the limit was reached.
    pub limit_reached: IntCounter,
    /// Failed `accept` calls.
    pub accept_errors: IntCounter,
}

/// Why a connection ended badly. hyper answers the first two itself and
/// closes the connection; the others end with no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionError {
    /// An unparsable request head: hyper answered 400.
    Parse,
    /// A request head over `--max-header-bytes` or `--max-headers`, or a
    /// URI too long: hyper answered 431 or 414.
    TooLarge,
    /// No complete request head within `--header-read-timeout`, on a new
    /// connection or after a request began (slowloris, or a silent client).
    /// A keep-alive connection idle between requests is closed at the same
    /// timeout, normally, and not counted.
    HeaderTimeout,
    /// A response the client did not read for `--write-timeout`.
    WriteTimeout,
    /// The client closed the connection in the middle of a request.
    Incomplete,
    /// The socket failed: a reset, mostly (the client went away mid-answer).
    Io,
    /// Anything else hyper reports.
    Other,
}

impl ConnectionError {
    pub const ALL: [Self; 7] = [
        Self::Parse,
        Self::TooLarge,
        Self::HeaderTimeout,
        Self::WriteTimeout,
        Self::Incomplete,
        Self::Io,
        Self::Other,
    ];

    /// Why a connection ended with `error`, or `None` when that end is
    /// normal: the header-read timeout closing an idle keep-alive
    /// connection (`head_pending` false; see `stream::HeadPending`).
    pub fn of(error: &hyper::Error, head_pending: bool) -> Option<Self> {
        let io_error =
            std::error::Error::source(error).and_then(|source| source.downcast_ref::<io::Error>());
        Some(if error.is_parse_too_large() {
            Self::TooLarge
        } else if error.is_parse() {
            Self::Parse
        } else if error.is_timeout() {
            if !head_pending {
                return None;
            }
            Self::HeaderTimeout
        } else if io_error
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<WriteStalled>())
        {
            Self::WriteTimeout
        } else if error.is_incomplete_message() {
            Self::Incomplete
        } else if io_error.is_some() {
            Self::Io
        } else {
            Self::Other
        })
    }

    /// Its `reason` label in `http_connection_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::TooLarge => "too_large",
            Self::HeaderTimeout => "header_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::Incomplete => "incomplete",
            Self::Io => "io",
            Self::Other => "other",
        }
    }

    /// One line for `count` of these; `detail` is the last error's text.
    fn log(self, count: u64, detail: &str) {
        let (what, reason) = (self.what_happened(), self.label());
        // Clients that go away are routine; the others are misbehaving.
        if matches!(self, Self::Incomplete | Self::Io) {
            tracing::info!(
                detail,
                reason,
                count,
                "{what} (at most one such line every 5 s)"
            );
        } else {
            tracing::warn!(
                detail,
                reason,
                count,
                "{what} (at most one such line every 5 s)"
            );
        }
    }

    fn what_happened(self) -> &'static str {
        match self {
            Self::Parse => "unparsable request heads answered 400",
            Self::TooLarge => "oversized request heads answered 431 or 414",
            Self::HeaderTimeout => "connections closed for not sending a request head in time",
            Self::WriteTimeout => "connections closed for not reading their answer in time",
            Self::Incomplete => "clients that closed their connection mid-request",
            Self::Io => "connections that failed (reset by the client, mostly)",
            Self::Other => "connections that ended in another error",
        }
    }
}

/// At most `max` connections open at once, counted in the metrics if any.
#[derive(Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    metrics: Option<ConnectionMetrics>,
    error_log: Arc<ErrorLog>,
}

impl ConnectionLimit {
    pub fn new(max: usize, metrics: Option<ConnectionMetrics>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            metrics,
            error_log: Arc::default(),
        }
    }

    /// Waits until one more connection may be opened: the returned place
    /// is kept for it while it is accepted.
    pub async fn admit(&self) -> Admission {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!("connection limit reached; waiting for a connection to close");
                if let Some(counts) = self.counts() {
                    counts.limit_reached.inc();
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
        if let Some(counts) = self.counts() {
            counts.open.inc();
        }
        Connection {
            _permit: place.0,
            limit: self.clone(),
        }
    }

    fn counts(&self) -> Option<&ConnectionCounts> {
        self.metrics.as_ref()?.counts.as_ref()
    }

    /// Logs what the throttle held back of the errors that stopped coming:
    /// call it every [`ERROR_LOG_EVERY`] or so.
    pub fn report_held_back(&self) {
        if let Some(failures) = self
            .error_log
            .accept
            .lock()
            .expect("not poisoned")
            .held_back_due()
        {
            tracing::warn!(failures, "accept failed (held back since the last line)");
        }
        let mut throttles = self.error_log.connections.lock().expect("not poisoned");
        for (reason, throttle) in ConnectionError::ALL.iter().zip(throttles.iter_mut()) {
            if let Some(count) = throttle.held_back_due() {
                reason.log(count, "held back since the last line");
            }
        }
    }

    /// Counts and (rate-limited) logs a failed accept.
    pub fn accept_failed(&self, error: &io::Error) {
        if let Some(counts) = self.counts() {
            counts.accept_errors.inc();
        }
        if let Some(failures) = self.error_log.accept.lock().expect("not poisoned").due() {
            tracing::warn!(
                %error,
                failures,
                "accept failed; backing off (at most one such line every 5 s)"
            );
        }
    }
}

/// A place for one more connection, not yet accepted.
pub struct Admission(OwnedSemaphorePermit);

/// One open connection: frees its place when dropped.
pub struct Connection {
    _permit: OwnedSemaphorePermit,
    limit: ConnectionLimit,
}

impl Connection {
    /// The connection ended with `error` (see [`ConnectionError::of`]):
    /// counted, and logged at most once every 5 s per reason, with how many
    /// there were since the last line.
    pub fn failed(&self, error: &hyper::Error, head_pending: bool) {
        let Some(reason) = ConnectionError::of(error, head_pending) else {
            return;
        };
        if let Some(metrics) = &self.limit.metrics {
            metrics.errors[reason as usize].inc();
        }
        let due = self
            .limit
            .error_log
            .connections
            .lock()
            .expect("not poisoned")[reason as usize]
            .due();
        if let Some(count) = due {
            reason.log(count, &error.to_string());
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(counts) = self.limit.counts() {
            counts.open.dec();
        }
    }
}

/// The log of repeated errors, shared by every connection of a listener.
#[derive(Default)]
struct ErrorLog {
    accept: Mutex<Throttle>,
    connections: Mutex<[Throttle; ConnectionError::ALL.len()]>,
}

/// Lets a line through at most once every [`ERROR_LOG_EVERY`], counting
/// what it holds back: a failing `accept` repeats every few milliseconds,
/// and a line for each would flood the log.
#[derive(Default)]
struct Throttle {
    last_logged: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// One more occurrence: `Some(occurrences since the last line)` when a
    /// line is due now.
    fn due(&mut self) -> Option<u64> {
        self.held_back += 1;
        self.held_back_due()
    }

    /// `Some(occurrences held back)` when there are some and a line is due:
    /// asked every few seconds, so that the last of a burst is reported
    /// even when nothing follows it.
    fn held_back_due(&mut self) -> Option<u64> {
        let due = self.held_back > 0
            && self
                .last_logged
                .is_none_or(|logged| logged.elapsed() >= ERROR_LOG_EVERY);
        due.then(|| {
            self.last_logged = Some(Instant::now());
            std::mem::take(&mut self.held_back)
        })
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
    fn repeated_errors_make_one_line_then_are_counted_until_the_next() {
        let mut throttle = Throttle::default();
        assert_eq!(throttle.due(), Some(1), "the first is logged at once");
        for _ in 0..99 {
            assert_eq!(throttle.due(), None, "the next ones wait");
        }
        assert_eq!(throttle.held_back, 99, "and are counted for the next line");
        throttle.last_logged = Some(Instant::now() - ERROR_LOG_EVERY);
        assert_eq!(throttle.due(), Some(100));
        for _ in 0..5 {
            throttle.due();
        }
        assert_eq!(throttle.held_back_due(), None, "not due yet");
        throttle.last_logged = Some(Instant::now() - ERROR_LOG_EVERY);
        assert_eq!(
            throttle.held_back_due(),
            Some(5),
            "the last of a burst, reported"
        );
        assert_eq!(throttle.held_back_due(), None, "and only once");
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

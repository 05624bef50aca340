//! How the process stops, in order, in this one file:
//!
//! 1. **Told to stop**: SIGTERM (`docker stop`, Kubernetes, ECS) or SIGINT
//!    (Ctrl-C). A second one, any time after, ends the process at once.
//! 2. **Stopping**: `/healthcheck` answers 503 and every response carries
//!    `Connection: close`, so that balancers and readiness probes take the
//!    instance out of rotation and clients reconnect elsewhere.
//! 3. **Delay** (`--shutdown-delay`): it keeps accepting and serving in that
//!    state, for balancers that only notice through their health checks.
//! 4. **Stop accepting** on the API port; new clients are refused by the
//!    kernel and go to another instance.
//! 5. **Drain**: in-flight requests finish, idle keep-alive connections are
//!    closed, until `--shutdown-timeout` at the latest.
//! 6. **The metrics port last** (scrapes, `/livez`), so that liveness stays
//!    green through the drain; with `--metrics-linger`, it stays open that
//!    much longer, so that a scrape sees the drain's last counts.
//! 7. **Exit**: `main` writes the last log lines, by the same deadline, and
//!    the process exits 0.
//!
//! The servers (`http::serve`) only ask a [`Drain`] whether to go on
//! accepting, and hand it each connection to finish gracefully.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper_util::server::graceful::GracefulConnection;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// After `--metrics-linger`, what a scrape that has begun gets to finish.
const METRICS_LAST_SCRAPE: Duration = Duration::from_secs(1);

/// Step 2's flag, read by `/healthcheck` and by every response.
#[derive(Clone, Default)]
pub struct Stopping(Arc<AtomicBool>);

impl Stopping {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the shutdown needs to know and stop.
pub struct Shutdown {
    pub stopping: Stopping,
    pub delay: Duration,
    pub timeout: Duration,
    /// How long the metrics port stays open after the API has drained.
    pub metrics_linger: Duration,
    /// Drained first.
    pub api: Drain,
    /// Drained once the API is: scrapes and liveness probes.
    pub metrics: Drain,
}

impl Shutdown {
    /// Waits for `told_to_stop`, then stops in the order above. Returns
    /// the deadline that the drain had: whatever is left to do before the
    /// process exits must be done by then.
    pub async fn run(self, told_to_stop: impl Future<Output = ()>) -> Instant {
        told_to_stop.await;
        self.stopping.set();
        if !self.delay.is_zero() {
            tracing::info!(
                delay = ?self.delay,
                "still serving, with /healthcheck answering 503, before closing the port"
            );
            tokio::time::sleep(self.delay).await;
        }
        let mut deadline = Instant::now() + self.timeout;
        self.api.drain_by(deadline).await;
        if !self.metrics_linger.is_zero() {
            tokio::time::sleep(self.metrics_linger).await;
            // A scrape begun at the end of the linger may finish.
            deadline = deadline.max(Instant::now() + METRICS_LAST_SCRAPE);
        }
        self.metrics.drain_by(deadline).await;
        tracing::info!("stopped");
        deadline
    }
}

/// One listener's connections, and when to stop accepting new ones.
#[derive(Clone, Default)]
pub struct Drain {
    stop_accepting: CancellationToken,
    finish_connections: CancellationToken,
    connections: TaskTracker,
}

impl Drain {
    /// Completes when the listener must stop accepting.
    pub async fn stopped_accepting(&self) {
        self.stop_accepting.cancelled().await;
    }

    /// Serves `connection` until it ends, or until the drain asks it to
    /// finish: then it ends after the request in flight, if any. `ended`
    /// gets the outcome.
    pub fn spawn<C>(&self, connection: C, ended: impl FnOnce(Result<(), C::Error>) + Send + 'static)
    where
        C: GracefulConnection + Send + 'static,
        C::Error: Send,
    {
        let finish = self.finish_connections.clone();
        self.connections.spawn(async move {
            let mut connection = pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                () = finish.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            ended(outcome);
        });
    }

    /// Steps 4 and 5 for this listener: no new connections, the open ones
    /// finish, and whatever is still running at `deadline` is abandoned.
    async fn drain_by(&self, deadline: Instant) {
        self.stop_accepting.cancel();
        self.finish_connections.cancel();
        self.connections.close();
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.connections.len(),
                "connections still open at the shutdown timeout; abandoning them"
            );
        }
    }
}

/// Step 1: completes on SIGINT (Ctrl-C) or SIGTERM. From then on, a second
/// SIGINT or SIGTERM ends the process at once, with the shell's code for
/// death by that signal (130, 143): whoever sends it wants the process gone
/// now, not after the drain.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a SIGTERM that arrives right after the server says it is
/// serving must still shut it down cleanly. Call it inside the runtime.
pub fn signal_received() -> impl Future<Output = ()> {
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    async move {
        let first = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(
            "{first} received, shutting down (a second SIGINT or SIGTERM exits at once)"
        );
        tokio::spawn(async move {
            let (second, code) = tokio::select! {
                _ = interrupt.recv() => ("SIGINT", 130),
                _ = terminate.recv() => ("SIGTERM", 143),
            };
            // Straight to stderr, since the log buffer is not written out,
            // but never waiting on it long: a stderr nobody reads must not
            // stop the exit that was asked for.
            let (said, written) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                eprintln!(
                    "api: {second} received while shutting down: exiting at once with {code}"
                );
                let _ = said.send(());
            });
            let _ = written.recv_timeout(Duration::from_millis(100));
            std::process::exit(code);
        });
    }
}

//! The HTTP/1.1 server loop, written on hyper directly because `axum::serve`
//! has no header-read timeout: a crowd of clients that send their headers a
//! byte at a time (slowloris), or connect and send nothing, would hold
//! connections open forever. hyper's `http1::Builder` with a timer closes
//! them. `axum::serve` has no bound on open connections either; ours is
//! `connections::ConnectionLimit`. HTTP/2 is left to the load balancer in
//! front.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::connections::ConnectionLimit;
use crate::stream::ClientStream;

/// How long to wait after a failed accept before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener`, at most `limit` connections at a time,
/// until `stop` is cancelled; then stops accepting, lets in-flight requests
/// finish for up to `config.shutdown_timeout`, and returns.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    config: &ServerConfig,
    limit: ConnectionLimit,
    stop: CancellationToken,
) where
    S: tower::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes as usize)
        .max_headers(config.max_headers);
    let graceful = GracefulShutdown::new();

    loop {
        // At the limit, wait here, not in `accept`: the kernel keeps new
        // clients in the listen backlog until a connection closes.
        let place = tokio::select! {
            place = limit.admit() => place,
            () = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Typically EMFILE: out of file descriptors. Back off
                    // instead of spinning; connections close and free some.
                    limit.accept_failed(&error);
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                        () = stop.cancelled() => break,
                    }
                }
            },
            () = stop.cancelled() => break,
        };
        let open = limit.open(place);
        // Our answers are small: send each as soon as it is written.
        let _ = stream.set_nodelay(true);
        let (stream, head_pending) = ClientStream::new(stream, config.write_timeout);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                open.failed(&error, head_pending.get());
            }
        });
    }

    drop(listener);
    if tokio::time::timeout(config.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?config.shutdown_timeout,
            "connections still open after the shutdown timeout; closing them"
        );
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (`docker stop`, Kubernetes).
/// From then on, a second SIGINT or SIGTERM ends the process at once, with
/// the shell's code for death by that signal (130, 143): whoever sends it
/// wants the process gone now, not after the drain.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a SIGTERM that arrives right after the server says it is
/// serving must still shut it down cleanly. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
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
            // Straight to stderr: the log buffer is not written out.
            eprintln!("api: {second} received while shutting down: exiting at once with {code}");
            std::process::exit(code);
        });
    }
}

//! The HTTP/1.1 accept loop, on hyper directly because `axum::serve` has
//! no header-read timeout: a crowd of clients that send their headers a
//! byte at a time (slowloris), or connect and send nothing, would hold
//! connections open forever. hyper's `http1::Builder` with a timer closes
//! them; `stream::ClientStream` does the same for clients that do not read
//! their answers. `axum::serve` has no bound on open connections either;
//! ours is `connections::ConnectionLimit`. HTTP/2 is left to the load
//! balancer in front.
//!
//! It serves any hyper `Service` (a tower one through hyper-util's
//! `TowerToHyperService`): what the service answers is not this module's
//! business.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::http::connections::{ConnectionLimit, ERROR_LOG_EVERY};
use crate::http::stream::ClientStream;
use crate::shutdown::Drain;

/// How long to wait after a failed accept before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What clients of a listener are allowed.
#[derive(Clone, Copy)]
pub struct ClientLimits {
    /// To send a request head (and, kept alive, the next one).
    pub header_read_timeout: Duration,
    /// To read an answer: time without progress (`stream::ClientStream`).
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

impl From<&ServerConfig> for ClientLimits {
    fn from(config: &ServerConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            write_timeout: config.write_timeout,
            max_header_bytes: config.max_header_bytes as usize,
            max_headers: config.max_headers,
        }
    }
}

/// Serves `app` on `listener`, at most `limit` connections at a time,
/// until `drain` says to stop accepting; the drain then finishes the
/// connections (see `shutdown`).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    clients: &ClientLimits,
    limit: ConnectionLimit,
    drain: Drain,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(clients.header_read_timeout)
        .max_buf_size(clients.max_header_bytes)
        .max_headers(clients.max_headers)
        // A client may close its side once it has sent its request and
        // still get the answer (hyper would drop it): the header-read and
        // write timeouts bound what such a client can hold.
        .half_close(true);
    let reporter = tokio::spawn({
        let limit = limit.clone();
        async move {
            let mut every = tokio::time::interval(ERROR_LOG_EVERY);
            loop {
                every.tick().await;
                limit.report_held_back();
            }
        }
    });

    loop {
        // At the limit, wait here, not in `accept`: the kernel keeps new
        // clients in the listen backlog until a connection closes.
        let place = tokio::select! {
            place = limit.admit() => place,
            () = drain.stopped_accepting() => break,
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
                        () = drain.stopped_accepting() => break,
                    }
                }
            },
            () = drain.stopped_accepting() => break,
        };
        let open = limit.open(place);
        // Our answers are small: send each as soon as it is written.
        let _ = stream.set_nodelay(true);
        let (stream, head_pending) = ClientStream::new(stream, clients.write_timeout);
        let connection = http.serve_connection(TokioIo::new(stream), app.clone());
        drain.spawn(connection, move |ended| {
            if let Err(error) = ended {
                open.failed(&error, head_pending.get());
            }
        });
    }
    reporter.abort();
    // Dropping the listener closes the port: new clients are refused.
}

//! Binds the listeners (so that the real ports are known before serving,
//! which is how tests run on port 0), then serves the API and the metrics
//! until told to stop, and stops in the order load balancers need.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::connections::{self, ConnectionLimit};
use crate::lifecycle::Lifecycle;
use crate::metrics::{self, Metrics};
use crate::router::app;
use crate::server::serve;

/// Connections to the metrics port at once: Prometheus keeps one per
/// scraper. A bound keeps that port from costing memory too.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// How many connections the kernel keeps waiting to be accepted: where new
/// clients wait while `--max-connections` are open. The kernel lowers it to
/// `net.core.somaxconn` (4096 by default since Linux 5.4). tokio's `bind`
/// asks for 128, which at the limit makes the 129th client's handshake
/// fail and retry a second or more later.
const LISTEN_BACKLOG: u32 = 4096;

pub struct Application {
    config: ServerConfig,
    api: TcpListener,
    metrics: Option<(TcpListener, Arc<Metrics>)>,
    open_files: Option<u64>,
    max_connections: usize,
}

impl Application {
    pub async fn build(config: ServerConfig) -> io::Result<Self> {
        // Before binding: the limit covers every descriptor we open.
        let open_files = match connections::raise_open_files_limit() {
            Ok(limit) => Some(limit),
            Err(error) => {
                tracing::warn!(%error, "cannot read or raise the open-files limit");
                None
            }
        };
        let requested = config.max_connections as usize;
        let max_connections = open_files.map_or(requested, |open_files| {
            connections::fit_to_open_files(requested, open_files)
        });
        if max_connections < requested {
            tracing::warn!(
                requested,
                max_connections,
                open_files,
                "--max-connections lowered to fit the open-files limit (raise the hard limit: ulimit -Hn)"
            );
        }
        let api = bind(SocketAddr::new(config.host, config.port)).await?;
        let metrics = if config.disable_metrics {
            None
        } else {
            let listener = bind(SocketAddr::new(config.host, config.metrics_port)).await?;
            Some((listener, Arc::new(Metrics::new())))
        };
        Ok(Self {
            config,
            api,
            metrics,
            open_files,
            max_connections,
        })
    }

    pub fn port(&self) -> u16 {
        local_port(&self.api)
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics
            .as_ref()
            .map(|(listener, _)| local_port(listener))
    }

    /// Serves until `shutdown` completes, then shuts down: /healthcheck
    /// answers 503 and responses say `Connection: close` at once; after
    /// `--shutdown-delay` both servers stop accepting and drain. Returns
    /// when the drain is over, with the deadline it had (when the port
    /// closed, plus `--shutdown-timeout`): what is left to do before the
    /// process exits (the last log lines) must be done by then.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Instant {
        let Self {
            config,
            api,
            metrics,
            open_files,
            max_connections,
        } = self;
        tracing::info!(
            address = %api.local_addr().expect("bound"),
            metrics = metrics
                .as_ref()
                .map(|(listener, _)| display(listener.local_addr().expect("bound"))),
            max_connections,
            max_open_files = open_files,
            version = crate::config::VERSION,
            "serving"
        );
        let (metrics_listener, metrics) = metrics.unzip();
        let lifecycle = Lifecycle::default();
        let router = app(config.request_timeout, metrics.clone(), lifecycle.clone());
        let limit = ConnectionLimit::new(
            max_connections,
            metrics
                .as_ref()
                .map(|metrics| metrics.connections(max_connections)),
        );
        let stop = CancellationToken::new();
        let stopper = async {
            shutdown.await;
            lifecycle.begin_shutdown();
            if !config.shutdown_delay.is_zero() {
                tracing::info!(
                    delay = ?config.shutdown_delay,
                    "still serving, with /healthcheck answering 503, before closing the port"
                );
                tokio::time::sleep(config.shutdown_delay).await;
            }
            stop.cancel();
            Instant::now() + config.shutdown_timeout
        };
        // The metrics port (scrapes, liveness) stays open until the API
        // has drained: the drain's last errors get scraped, and liveness
        // probes keep passing while in-flight requests finish.
        let api_drained = CancellationToken::new();
        let api_server = async {
            serve(api, router, &config, limit, stop.clone()).await;
            api_drained.cancel();
        };
        let metrics_server = async {
            if let (Some(listener), Some(metrics)) = (metrics_listener, metrics) {
                let limit = ConnectionLimit::new(METRICS_MAX_CONNECTIONS, None);
                serve(
                    listener,
                    metrics::routes(metrics),
                    &config,
                    limit,
                    api_drained.clone(),
                )
                .await;
            }
        };
        let (deadline, (), ()) = tokio::join!(stopper, api_server, metrics_server);
        tracing::info!("stopped");
        deadline
    }
}

async fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let listen = || {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // As tokio's `bind` does: a restarted server can bind the port
        // again while connections of the old one linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|error| {
        io::Error::new(error.kind(), format!("cannot listen on {address}: {error}"))
    })
}

fn local_port(listener: &TcpListener) -> u16 {
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

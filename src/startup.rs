//! Binds the listeners (so that the real ports are known before serving,
//! which is how tests run on port 0), wires the parts together, and runs
//! the API and metrics servers until the shutdown (`shutdown.rs`) is over.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};

use crate::api::routing::Endpoints;
use crate::api::{self, AppState, Settings, endpoints};
use crate::config::ServerConfig;
use crate::http::connections::{self, ConnectionLimit};
use crate::http::serve::{ClientLimits, serve};
use crate::metrics::{self, Metrics};
use crate::shutdown::{Drain, Shutdown, Stopping};

/// Connections to the metrics port at once: Prometheus keeps one per
/// scraper, and liveness probes one each. A bound keeps that port from
/// costing memory too (64 idle connections: under 1 MB).
const METRICS_MAX_CONNECTIONS: usize = 64;

/// How long a client of the metrics port has to send its request head, or
/// to send the next one on a kept-alive connection. Scrapers and probes
/// send theirs at once; short, so that a crowd of silent connections
/// cannot hold the liveness probe's port for long (and must come from
/// where the network lets them: the monitoring namespace, Prometheus's
/// security group).
const METRICS_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// Serves the service's endpoints until `told_to_stop` completes, then
    /// shuts down (`shutdown.rs`). Returns when that is over, with the
    /// deadline the drain had: what is left to do before the process exits
    /// (the last log lines) must be done by then.
    pub async fn run_until(self, told_to_stop: impl Future<Output = ()>) -> Instant {
        self.run_endpoints_until(endpoints::all(), told_to_stop)
            .await
    }

    /// [`run_until`](Self::run_until) with other endpoints: for tests that
    /// need routes the service does not have, behind the same guards.
    pub async fn run_endpoints_until(
        self,
        endpoints: Endpoints,
        told_to_stop: impl Future<Output = ()>,
    ) -> Instant {
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
        let stopping = Stopping::default();
        let app = api::app(
            endpoints,
            Settings {
                request_timeout: config.request_timeout,
                metrics: metrics.clone(),
                state: AppState {
                    stopping: stopping.clone(),
                },
            },
        );
        let limit = ConnectionLimit::new(
            max_connections,
            metrics
                .as_ref()
                .map(|metrics| metrics.api_connections(max_connections)),
        );
        let shutdown = Shutdown {
            stopping,
            delay: config.shutdown_delay,
            timeout: config.shutdown_timeout,
            metrics_linger: config.metrics_linger,
            api: Drain::default(),
            metrics: Drain::default(),
        };
        let api_clients = ClientLimits::from(&config);
        let api_server = serve(api, app, &api_clients, limit, shutdown.api.clone());
        let metrics_drain = shutdown.metrics.clone();
        let metrics_server = async {
            if let (Some(listener), Some(metrics)) = (metrics_listener, metrics) {
                let limit = ConnectionLimit::new(
                    METRICS_MAX_CONNECTIONS,
                    Some(metrics.metrics_connections()),
                );
                let routes = TowerToHyperService::new(metrics::routes(metrics));
                let clients = ClientLimits {
                    header_read_timeout: METRICS_HEADER_READ_TIMEOUT,
                    ..ClientLimits::from(&config)
                };
                serve(listener, routes, &clients, limit, metrics_drain).await;
            }
        };
        let (deadline, (), ()) =
            tokio::join!(shutdown.run(told_to_stop), api_server, metrics_server);
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

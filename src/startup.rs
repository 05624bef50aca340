//! Binds the listeners (so that the real ports are known before serving,
//! which is how tests run on port 0), then serves the API and the metrics
//! until told to stop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::metrics::{self, Metrics};
use crate::router::app;
use crate::server::serve;

pub struct Application {
    config: ServerConfig,
    api: TcpListener,
    metrics: Option<(TcpListener, Arc<Metrics>)>,
}

impl Application {
    pub async fn build(config: ServerConfig) -> io::Result<Self> {
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

    /// Serves until `shutdown` completes, then drains both servers.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let Self {
            config,
            api,
            metrics,
        } = self;
        tracing::info!(
            address = %api.local_addr().expect("bound"),
            metrics = ?metrics.as_ref().map(|(listener, _)| listener.local_addr().expect("bound")),
            version = crate::config::VERSION,
            "serving"
        );
        let (metrics_listener, metrics) = metrics.unzip();
        let router = app(config.request_timeout, metrics.clone());
        let stop = CancellationToken::new();
        let stopper = async {
            shutdown.await;
            stop.cancel();
        };
        let metrics_server = async {
            if let (Some(listener), Some(metrics)) = (metrics_listener, metrics) {
                serve(listener, metrics::routes(metrics), &config, stop.clone()).await;
            }
        };
        tokio::join!(
            stopper,
            serve(api, router, &config, stop.clone()),
            metrics_server
        );
        tracing::info!("stopped");
    }
}

async fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        io::Error::new(error.kind(), format!("cannot listen on {address}: {error}"))
    })
}

fn local_port(listener: &TcpListener) -> u16 {
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

//! The HTTP client the OTLP exporter sends through: hyper's, which the
//! server already links, HTTP/1.1 over plain TCP with kept-alive
//! connections. No TLS: the collector is expected beside the service (a
//! sidecar, a node agent, a cluster service), which is where
//! OpenTelemetry's deployment guides put it and what keeps a TLS stack
//! and its licences out of the binary (docs/tracing.md).
//!
//! The SDK's export thread has no tokio runtime, so each request runs as
//! a task on the server's runtime, cut off at the exporter's timeout and
//! cancelled if the export is abandoned.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;
use tokio::task::{JoinError, JoinHandle};

/// A collector's answer is a few bytes (a partial-success message at
/// most); more is not a collector.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Kept-alive connections to the collector are closed after this long
/// unused (the exporter sends every few seconds when busy).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct PlainHttp {
    client: Client<HttpConnector, Full<Bytes>>,
    runtime: Handle,
    /// Per request: `OTEL_EXPORTER_OTLP_TIMEOUT`.
    timeout: Duration,
}

impl PlainHttp {
    pub fn new(runtime: Handle, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
            .build(connector);
        Self {
            client,
            runtime,
            timeout,
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for PlainHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let sent = AbortOnDrop(
            self.runtime
                .spawn(async move { tokio::time::timeout(timeout, send(&client, request)).await }),
        );
        match sent.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_elapsed)) => Err(format!("no answer within {timeout:?}").into()),
            Err(error) => Err(error.into()),
        }
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, HttpError> {
    let response = client.request(request.map(Full::new)).await?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await?;
    Ok(Response::from_parts(parts, body.to_bytes()))
}

/// A task that is cancelled when whoever waits for it stops waiting.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! Traces, end to end: the server in-process and the compiled binary send
//! their spans to an OTLP/HTTP receiver started here, which decodes them
//! from protobuf as a collector does (tests/e2e/traces.py does the same
//! against a real collector, rotel). What a client sees must never depend
//! on the collector: down, hung or fine, every answer is the same.

use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::api::endpoints;
use api::config::ServerConfig;
use axum::Extension;
use axum::body::Bytes;
use axum::http::Method;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::helpers::{Binary, spawn_app_with, spawn_endpoints};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// One span as a collector got it, with the service it came from.
#[derive(Clone, Debug)]
struct Received {
    service: Option<String>,
    span: Span,
}

impl Received {
    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes
        .iter()
        .find(|attribute| attribute.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match value {
        any_value::Value::StringValue(text) => text.clone(),
        any_value::Value::IntValue(number) => number.to_string(),
        other => format!("{other:?}"),
    })
}

#[derive(Default)]
struct Deliveries {
    spans: Vec<Received>,
    content_types: Vec<String>,
}

/// An OTLP/HTTP receiver on a free port: answers, or hangs (accepts, reads
/// and never answers, as a collector stuck behind a full pipeline does).
/// On a runtime of its own, so that it keeps receiving while a test waits
/// for the binary without yielding.
struct Collector {
    /// Its base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    endpoint: String,
    deliveries: Arc<Mutex<Deliveries>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Collector {
    fn answering() -> Self {
        Self::start(false)
    }

    fn hanging() -> Self {
        Self::start(true)
    }

    fn start(hangs: bool) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.set_nonblocking(true).expect("non-blocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let deliveries = Arc::new(Mutex::new(Deliveries::default()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.spawn({
            let deliveries = deliveries.clone();
            async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                while let Ok((mut stream, _)) = listener.accept().await {
                    if hangs {
                        tokio::spawn(async move {
                            let mut buffer = [0; 4096];
                            while stream.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
                        });
                        continue;
                    }
                    let deliveries = deliveries.clone();
                    let service = service_fn(move |request| receive(request, deliveries.clone()));
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            }
        });
        Self {
            endpoint,
            deliveries,
            runtime: Some(runtime),
        }
    }

    fn spans(&self) -> Vec<Received> {
        self.deliveries.lock().expect("unpoisoned").spans.clone()
    }

    fn content_types(&self) -> Vec<String> {
        self.deliveries
            .lock()
            .expect("unpoisoned")
            .content_types
            .clone()
    }

    /// The spans, once there are at least `count` (or after 10 s).
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..500 {
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.spans()
    }
}

async fn receive(
    request: Request<Incoming>,
    deliveries: Arc<Mutex<Deliveries>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut deliveries = deliveries.lock().expect("unpoisoned");
    deliveries.content_types.push(content_type);
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| attribute(&resource.attributes, "service.name"));
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                deliveries.spans.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    Ok(Response::builder()
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from(answer)))
        .expect("a response"))
}

fn traced_config(collector: &Collector) -> ServerConfig {
    let mut config = ServerConfig::ephemeral();
    config.otlp_endpoint = Some(collector.endpoint.clone());
    config
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("answered")
}

fn by_path<'a>(spans: &'a [Received], path: &str) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|span| span.attribute("url.path").as_deref() == Some(path))
        .collect()
}

#[tokio::test]
async fn spans_continue_the_callers_trace_with_the_http_conventions() {
    let collector = Collector::answering();
    let app = spawn_app_with(traced_config(&collector)).await;
    let url = |path: &str| format!("{}{path}", app.address);
    let traced = get_with(&url("/hello_world"), &[("traceparent", TRACEPARENT)]).await;
    assert_eq!(traced.status(), 200);
    assert_eq!(
        get_with(&url("/current_time?name=Ada"), &[]).await.status(),
        200
    );
    let malformed = get_with(
        &url("/healthcheck"),
        &[(
            "traceparent",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        )],
    )
    .await;
    assert_eq!(
        malformed.status(),
        200,
        "a malformed traceparent is ignored"
    );
    assert_eq!(get_with(&url("/nowhere"), &[]).await.status(), 404);
    // The batch is exported every 5 s by default: these arrive because the
    // shutdown flushes them.
    app.stopped().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    assert!(
        collector
            .content_types()
            .iter()
            .all(|content_type| content_type == "application/x-protobuf")
    );

    let continued = by_path(&spans, "/hello_world")[0];
    assert_eq!(continued.trace_id(), TRACE_ID);
    assert_eq!(continued.parent_id(), PARENT_ID);
    assert_eq!(continued.span.name, "GET /hello_world");
    assert_eq!(continued.span.kind, span::SpanKind::Server as i32);
    assert_eq!(continued.service.as_deref(), Some("api"));
    let port = app_port(&continued.attribute("server.port"));
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/hello_world"),
        ("http.response.status_code", "200"),
        ("url.scheme", "http"),
        ("server.address", "127.0.0.1"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(continued.attribute(key).as_deref(), Some(value), "{key}");
    }
    assert!(port > 0);
    assert_eq!(continued.attribute("error.type"), None);
    // Unset (0): only a 5xx is a server span's error.
    assert_eq!(continued.span.status.clone().unwrap_or_default().code, 0);

    let root = by_path(&spans, "/current_time")[0];
    assert!(root.parent_id().is_empty(), "a new root: {root:?}");
    assert_ne!(root.trace_id(), TRACE_ID);
    assert_eq!(root.attribute("url.query").as_deref(), Some("name=Ada"));
    assert_eq!(root.span.name, "GET /current_time");

    let restarted = by_path(&spans, "/healthcheck")[0];
    assert!(restarted.parent_id().is_empty(), "{restarted:?}");
    assert_ne!(restarted.trace_id(), TRACE_ID);

    let unmatched = by_path(&spans, "/nowhere")[0];
    assert_eq!(unmatched.span.name, "GET", "no route: the method alone");
    assert_eq!(unmatched.attribute("http.route"), None);
    assert_eq!(
        unmatched.attribute("http.response.status_code").as_deref(),
        Some("404")
    );
}

fn app_port(port: &Option<String>) -> u16 {
    port.as_deref()
        .and_then(|port| port.parse().ok())
        .expect("server.port")
}

/// A handler's view: the trace id of the context its request carries.
async fn trace_id_seen(Extension(context): Extension<opentelemetry::Context>) -> String {
    context.span().span_context().trace_id().to_string()
}

#[tokio::test]
async fn handlers_get_the_requests_context_and_server_errors_are_errors() {
    let collector = Collector::answering();
    let endpoints = endpoints::all()
        .hidden(Method::GET, "/trace_id", trace_id_seen)
        .hidden(Method::GET, "/panic", crate::helpers::panics);
    let app = spawn_endpoints(endpoints, traced_config(&collector)).await;
    let seen = get_with(
        &format!("{}/trace_id", app.address),
        &[("traceparent", TRACEPARENT)],
    )
    .await;
    assert_eq!(seen.text().await.expect("a body"), TRACE_ID);
    let panicked = get_with(&format!("{}/panic", app.address), &[]).await;
    assert_eq!(panicked.status(), 500);
    app.stopped().await;
    let spans = collector.spans();
    let failed = by_path(&spans, "/panic")[0];
    assert_eq!(failed.attribute("error.type").as_deref(), Some("500"));
    let status = failed.span.status.clone().expect("a status");
    assert_eq!(status.code, status::StatusCode::Error as i32);
}

/// The binary, its environment set as a deployment sets it.
fn traced_binary(collector_endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Binary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", collector_endpoint);
    for (name, value) in env {
        command.env(name, value);
    }
    Binary::spawn(command, args, true)
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn metrics_of(binary: &Binary) -> String {
    reqwest::get(format!("{}/metrics", binary.metrics_address()))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn the_access_line_carries_the_ids_of_the_exported_span() {
    let collector = Collector::answering();
    let binary = traced_binary(
        &collector.endpoint,
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
        &[],
    );
    let traced = get_with(
        &format!("{}/hello_world", binary.address),
        &[("traceparent", TRACEPARENT)],
    )
    .await;
    assert_eq!(traced.status(), 200);
    let spans = collector.wait_for(1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let line = binary.log_line(|line| line["path"] == "/hello_world");
    assert_eq!(line["trace_id"], TRACE_ID, "{line}");
    assert_eq!(line["span_id"], spans[0].span_id(), "{line}");
    let metrics = metrics_of(&binary).await;
    assert_eq!(
        metric(&metrics, "api_trace_spans_total{outcome=\"exported\"}"),
        1,
        "{metrics}"
    );
}

#[tokio::test]
async fn sigterm_flushes_the_spans_of_answered_requests() {
    let collector = Collector::answering();
    // A minute between exports: only the shutdown can send these.
    let mut binary = traced_binary(
        &collector.endpoint,
        &[("OTEL_BSP_SCHEDULE_DELAY", "60000")],
        &[],
    );
    for _ in 0..20 {
        assert_eq!(
            get_with(&format!("{}/hello_world", binary.address), &[])
                .await
                .status(),
            200
        );
    }
    assert!(collector.spans().is_empty());
    binary.terminate_cleanly_within(Duration::from_secs(10));
    assert_eq!(collector.spans().len(), 20);
}

#[tokio::test]
async fn sampling_at_zero_or_an_unsampled_caller_sends_nothing() {
    let collector = Collector::answering();
    let mut binary = traced_binary(
        &collector.endpoint,
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
        &[],
    );
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    for headers in [&[][..], &[("traceparent", unsampled)][..]] {
        for _ in 0..10 {
            let answer = get_with(&format!("{}/hello_world", binary.address), headers).await;
            assert_eq!(answer.status(), 200);
        }
    }
    // Not sampled, still logged with its ids, to match the caller's logs.
    let line =
        binary.log_line(|line| line["path"] == "/hello_world" && line["trace_id"] == TRACE_ID);
    assert_eq!(line["status"], 200);
    binary.terminate_cleanly_within(Duration::from_secs(10));
    assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
    assert!(
        collector.content_types().is_empty(),
        "not even an empty export"
    );
}

#[tokio::test]
async fn otel_sdk_disabled_turns_traces_off_whatever_the_endpoint() {
    let collector = Collector::answering();
    let mut binary = traced_binary(
        &collector.endpoint,
        &[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
        &[],
    );
    assert_eq!(
        get_with(
            &format!("{}/hello_world", binary.address),
            &[("traceparent", TRACEPARENT)]
        )
        .await
        .status(),
        200
    );
    let line = binary.log_line(|line| line["path"] == "/hello_world");
    assert!(line.get("trace_id").is_none(), "{line}");
    assert!(binary.serving.get("traces").is_none(), "{}", binary.serving);
    assert!(!metrics_of(&binary).await.contains("api_trace_spans_total"));
    binary.terminate_cleanly_within(Duration::from_secs(10));
    assert!(collector.content_types().is_empty());
}

#[tokio::test]
async fn the_flag_turns_traces_on_as_the_variable_does() {
    let collector = Collector::answering();
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let traces_url = format!("{}/v1/traces", collector.endpoint);
    let mut binary = Binary::spawn(command, &["--otlp-traces-endpoint", &traces_url], true);
    assert_eq!(
        binary.serving["traces"],
        traces_url.as_str(),
        "{}",
        binary.serving
    );
    assert_eq!(
        get_with(&format!("{}/hello_world", binary.address), &[])
            .await
            .status(),
        200
    );
    binary.terminate_cleanly_within(Duration::from_secs(10));
    assert_eq!(collector.spans().len(), 1);
}

/// Requests answered while the collector is `collector`, all 200, then
/// the process stops by its shutdown deadline.
async fn serves_regardless(collector_endpoint: &str) -> String {
    let mut binary = traced_binary(
        collector_endpoint,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "300"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "200"),
        ],
        &["--shutdown-timeout", "1s"],
    );
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let answer = client
            .get(format!("{}/hello_world", binary.address))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("answered while the collector is away");
        assert_eq!(answer.status(), 200);
    }
    // Give the exporter time to fail a few batches.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let metrics = metrics_of(&binary).await;
    // Drain and flush share the 1 s deadline; the last log lines get 100 ms.
    binary.terminate_cleanly_within(Duration::from_secs(3));
    binary.log_line(|line| line["message"] == "trace export failed; its spans are lost");
    metrics
}

#[tokio::test]
async fn a_collector_that_is_down_changes_nothing_for_clients() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("bound")
        .port();
    let metrics = serves_regardless(&format!("http://127.0.0.1:{port}")).await;
    let failed = metric(&metrics, "api_trace_spans_total{outcome=\"failed\"}");
    let dropped = metric(&metrics, "api_trace_spans_total{outcome=\"dropped\"}");
    assert!(failed > 0, "{metrics}");
    assert_eq!(
        metric(&metrics, "api_trace_spans_total{outcome=\"exported\"}"),
        0
    );
    assert!(failed + dropped <= 200, "{metrics}");
}

#[tokio::test]
async fn a_collector_that_hangs_changes_nothing_for_clients_and_drops_are_counted() {
    let collector = Collector::hanging();
    let metrics = serves_regardless(&collector.endpoint).await;
    let dropped = metric(&metrics, "api_trace_spans_total{outcome=\"dropped\"}");
    let failed = metric(&metrics, "api_trace_spans_total{outcome=\"failed\"}");
    // Each export waits its 300 ms for nothing; meanwhile the queue of 8
    // fills and the rest are turned away.
    assert!(dropped > 100, "{metrics}");
    assert!(failed > 0, "{metrics}");
}

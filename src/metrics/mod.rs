//! Prometheus metrics: request counts, latencies and in-flight requests by
//! matched route, plus the process's own figures and the build it runs.
//!
//! They are served on their own port (`--metrics-port`), not beside the API:
//! whoever can reach the API, say through a public load balancer, should not
//! read its internals, and a scraper can reach a pod's second port directly.

mod memory_limit;

use std::time::Duration;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::http::connections::{ConnectionCounts, ConnectionError, ConnectionMetrics};
use crate::metrics::memory_limit::MemoryLimit;
use crate::traces::{SpanCounts, known_method};

/// Upper bounds, in seconds: from well under a millisecond (our usual
/// answer) up to the default request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of requests that matched no route: raw paths would let
/// any client create new series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The statuses whose series exist from the start, for every route: a
/// success, and the two server-side failures the availability SLO counts
/// (a panic's 500, the request timeout's 408).
const INITIALIZED_STATUSES: [&str; 3] = ["200", "408", "500"];

/// A route's most used series, looked up once ([`Metrics::route_series`]):
/// looking them up per request was an eighth of a request's cost.
#[derive(Clone)]
pub struct RouteSeries {
    /// `None` for a route without GET.
    get_ok: Option<IntCounter>,
    duration: Histogram,
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    connections: ConnectionCounts,
    connections_limit: IntGauge,
    connection_errors: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by method, matched route and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by matched route.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(
            "http_requests_in_flight",
            "HTTP requests being answered now.",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "api_build_info",
                "Always 1; its labels name the version and git revision running.",
            ),
            &["version", "revision"],
        )
        .expect("valid metric");
        let connections = ConnectionCounts {
            open: IntGauge::new("http_connections_open", "Client connections open now.")
                .expect("valid metric"),
            limit_reached: IntCounter::new(
                "http_connections_limit_reached_total",
                "Times the server stopped accepting because --max-connections connections were open.",
            )
            .expect("valid metric"),
            accept_errors: IntCounter::new(
                "http_accept_errors_total",
                "Failed accepts of new connections (e.g. out of file descriptors).",
            )
            .expect("valid metric"),
        };
        let connection_errors = IntCounterVec::new(
            Opts::new(
                "http_connection_errors_total",
                "Client connections that ended in an error, by listener (api, metrics) and reason: requests hyper refused (parse: 400, too_large: 431/414), header_timeout, write_timeout, incomplete, io, other.",
            ),
            &["listener", "reason"],
        )
        .expect("valid metric");
        let connections_limit = IntGauge::new(
            "http_connections_limit",
            "Most client connections open at once (--max-connections, as fitted to the open-files limit).",
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("API_GIT_REVISION")])
            .set(1);

        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(build_info),
            Box::new(connections.open.clone()),
            Box::new(connections.limit_reached.clone()),
            Box::new(connections.accept_errors.clone()),
            Box::new(connection_errors.clone()),
            Box::new(connections_limit.clone()),
            Box::new(ProcessCollector::for_self()),
            Box::new(MemoryLimit::new()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            duration,
            in_flight,
            connections,
            connections_limit,
            connection_errors,
        }
    }

    /// The series of `route`, looked up once, for [`record`](Self::record)
    /// to skip the lookup in the common case. The ones the SLOs read are
    /// created now, at zero: a counter that first appears at 3 is read by
    /// `rate()` as no increase, so a new instance's first burst of errors
    /// would go unseen.
    /// `methods` are the ones the route answers: a series of a method it
    /// does not answer would be a zero that never moves.
    pub fn route_series(&self, route: &str, methods: &[&Method]) -> RouteSeries {
        for method in methods {
            for status in INITIALIZED_STATUSES {
                self.requests
                    .with_label_values(&[method_label(method), route, status]);
            }
        }
        RouteSeries {
            get_ok: methods
                .contains(&&Method::GET)
                .then(|| self.requests.with_label_values(&["GET", route, "200"])),
            duration: self.duration.with_label_values(&[route]),
        }
    }

    /// What the API listener's connections report, once its limit is known.
    pub fn api_connections(&self, limit: usize) -> ConnectionMetrics {
        self.connections_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        ConnectionMetrics {
            counts: Some(self.connections.clone()),
            errors: self.connection_errors("api"),
        }
    }

    /// What the metrics listener's connections report: their errors.
    pub fn metrics_connections(&self) -> ConnectionMetrics {
        ConnectionMetrics {
            counts: None,
            errors: self.connection_errors("metrics"),
        }
    }

    /// The listener's error counters, every reason created at zero.
    fn connection_errors(&self, listener: &str) -> Vec<IntCounter> {
        ConnectionError::ALL
            .iter()
            .map(|reason| {
                self.connection_errors
                    .with_label_values(&[listener, reason.label()])
            })
            .collect()
    }

    /// What the trace exporter counts, registered when traces are on (so
    /// that `/metrics` says nothing of traces when they are off).
    pub fn trace_spans(&self) -> SpanCounts {
        let spans = IntCounterVec::new(
            Opts::new(
                "api_trace_spans_total",
                "Trace spans of answered requests, by outcome: exported (the collector took them), failed (their export failed or timed out), dropped (the export queue was full: the collector is down, slow or refusing).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        self.registry
            .register(Box::new(spans.clone()))
            .expect("registered once");
        SpanCounts {
            exported: spans.with_label_values(&["exported"]),
            failed: spans.with_label_values(&["failed"]),
            dropped: spans.with_label_values(&["dropped"]),
        }
    }

    /// A request is being answered: counted in flight until
    /// [`request_ended`](Self::request_ended), which must follow once, even
    /// when its client goes away mid-answer.
    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    pub fn request_ended(&self) {
        self.in_flight.dec();
    }

    /// Counts one answer under `route`, through `series` when it has them
    /// (a route of the app's; not "unmatched").
    pub fn record(
        &self,
        method: &Method,
        route: &str,
        series: Option<&RouteSeries>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        match series {
            Some(series) => {
                if let Some(get_ok) = &series.get_ok
                    && method == Method::GET
                    && status == StatusCode::OK
                {
                    get_ok.inc();
                } else {
                    self.count(method, route, status);
                }
                series.duration.observe(seconds);
            }
            None => {
                self.count(method, route, status);
                self.duration.with_label_values(&[route]).observe(seconds);
            }
        }
    }

    fn count(&self, method: &Method, route: &str, status: StatusCode) {
        self.requests
            .with_label_values(&[method_label(method), route, status.as_str()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut text)
            .expect("metrics encode as text");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Standard methods by name, any other as `OTHER`, so that made-up methods
/// cannot create new series either.
fn method_label(method: &Method) -> &'static str {
    known_method(method).unwrap_or("OTHER")
}

/// The metrics port's routes: `GET /metrics`, and `GET /livez`, the
/// liveness probe. Liveness lives here, not on the API port, because this
/// port is never behind `--max-connections` with the API's clients and
/// stays open until the API has drained: a busy or stopping server still
/// answers it, so it is restarted only when the process itself is stuck.
pub fn routes(metrics: std::sync::Arc<Metrics>) -> Router {
    // Both are live readings: no cache may keep them.
    let live = |content_type| [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-store")];
    Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    StatusCode::OK,
                    live(prometheus::TEXT_FORMAT),
                    metrics.render(),
                )
            }),
        )
        .route(
            LIVENESS_PATH,
            get(move || async move { (live("application/json"), r#"{"status":"ok"}"#) }),
        )
}

/// The liveness probe's path on the metrics port.
pub const LIVENESS_PATH: &str = "/livez";

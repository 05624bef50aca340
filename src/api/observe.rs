//! What we learn from every request and add to every response: its id, its
//! access log line, its metrics and its trace span (when traces are on),
//! and the headers every response carries
//! (`Cache-Control: no-store` unless the handler chose otherwise,
//! `Connection: close` too, once the process is shutting down).
//!
//! Not a middleware layer: the app (`api::App`) starts an [`Observed`] for
//! each request and finishes it with the response, for one `Arc` clone a
//! request, and every answer passes here, the router's 404s included.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::http::header::{CACHE_CONTROL, CONNECTION, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::Response;

use crate::logging::access::{self, AccessLine, TraceIds};
use crate::logging::request_id;
use crate::metrics::{Metrics, RouteSeries, UNMATCHED_ROUTE};
use crate::shutdown::Stopping;
use crate::traces::{RequestTracer, ServerSpan};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What a route's requests are counted and logged under: its template
/// (the same for every path it matches, so that no client can add series)
/// and its series, looked up once.
pub struct RouteLabel {
    pub template: String,
    pub series: Option<RouteSeries>,
}

/// What observation reports to, shared by every request.
pub struct Observer {
    pub metrics: Option<Arc<Metrics>>,
    pub stopping: Stopping,
    pub traces: Option<RequestTracer>,
}

/// One request being answered.
pub struct Observed {
    observer: Arc<Observer>,
    started: Instant,
    request_id: HeaderValue,
    method: Method,
    /// As the client sent it, before any decoding for routing.
    uri: Uri,
    /// The route it is counted under; `None` for "unmatched".
    route: Option<Arc<RouteLabel>>,
    span: Option<ServerSpan>,
}

impl Observed {
    /// With traces on, the request's span starts, and the request carries
    /// its context to the handler (an `Extension<opentelemetry::Context>`).
    pub fn start<B>(observer: &Arc<Observer>, request: &mut Request<B>) -> Self {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|id| is_usable_request_id(id))
            .cloned()
            .unwrap_or_else(new_request_id);
        if let Some(metrics) = &observer.metrics {
            metrics.request_started();
        }
        let span = observer
            .traces
            .as_ref()
            .map(|tracer| start_span(tracer, request));
        Self {
            observer: observer.clone(),
            started: Instant::now(),
            request_id,
            method: request.method().clone(),
            uri: request.uri().clone(),
            route: None,
            span,
        }
    }

    /// Counted under this route template: the one the path matched, or the
    /// one its trailing-slash redirect leads to. Raw paths never become
    /// labels, so no client can add series: without a route, "unmatched".
    pub fn counts_under(&mut self, route: Arc<RouteLabel>) {
        self.route = Some(route);
    }

    /// Runs `poll` (of the request's answer) with its id current
    /// (`logging::request_id`): the handler's log lines carry it, and
    /// `api::extract::RequestId` reads it.
    pub fn while_answering<R>(&mut self, poll: impl FnOnce() -> R) -> R {
        request_id::scope(&mut self.request_id, poll)
    }

    /// Counts and logs the answer, and adds the headers every response
    /// carries.
    pub fn finish(mut self, response: &mut Response) {
        let elapsed = self.started.elapsed();
        let route = self
            .route
            .as_ref()
            .map_or(UNMATCHED_ROUTE, |route| route.template.as_str());
        let series = self.route.as_ref().and_then(|route| route.series.as_ref());
        let status = response.status();
        if let Some(metrics) = &self.observer.metrics {
            metrics.record(&self.method, route, series, status, elapsed);
        }
        let line = AccessLine {
            method: self.method.as_str(),
            path: self.uri.path(),
            route,
            status: status.as_u16(),
            latency_us: elapsed.as_micros() as u64,
            request_id: self.request_id.to_str().unwrap_or_default(),
            trace: None,
        };
        match self.span.take() {
            None => access::log(&line),
            Some(span) => {
                let template = self.route.as_ref().map(|route| route.template.as_str());
                log_and_end(span, line, template, status);
            }
        }
        let stopping = self.observer.stopping.is_set();
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, self.request_id.clone());
        // Our JSON echoes client input (`name`): browsers must never sniff it as HTML.
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // Answers are live unless their handler says otherwise (the docs
        // revalidate): a cached /current_time is wrong, a cached /healthcheck
        // or /hello_world would hide an outage, and RFC 9111 lets caches keep
        // 404s, 405s and redirects that say nothing.
        headers
            .entry(CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        if stopping {
            // hyper closes the connection once this response is written.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

// The traced path, out of line: with traces off, what a request runs is
// what it ran before traces existed (the hot path's inlining included:
// docs/benchmarks.md).

/// Starts the request's span; the request carries its context to the
/// handler.
#[inline(never)]
fn start_span<B>(tracer: &RequestTracer, request: &mut Request<B>) -> ServerSpan {
    let span = tracer.start(request);
    request.extensions_mut().insert(span.context().clone());
    span
}

/// The access line with the span's ids, then the span's end.
#[inline(never)]
fn log_and_end(span: ServerSpan, line: AccessLine<'_>, route: Option<&str>, status: StatusCode) {
    let ids = span.ids();
    access::log(&AccessLine {
        trace: Some(TraceIds {
            trace_id: ids.trace_id(),
            span_id: ids.span_id(),
        }),
        ..line
    });
    span.finish(route, status);
}

/// Finished or not (a client that goes away drops its request's future),
/// the request is no longer in flight.
impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(metrics) = &self.observer.metrics {
            metrics.request_ended();
        }
    }
}

/// A request id from the client is kept (it ties our log line to theirs) if
/// it is printable ASCII and short: it goes into every log line.
fn is_usable_request_id(id: &HeaderValue) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

/// `<8 hex digits random per process>-<sequence number in hex>`: unique
/// across replicas without a syscall per request, unlike a random UUID, and
/// written out by hand: `format!` would cost more than the rest of this
/// middleware.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    static PROCESS: LazyLock<u32> =
        LazyLock::new(|| RandomState::new().hash_one(std::process::id()) as u32);
    static SEQUENCE: AtomicU64 = AtomicU64::new(1);

    let mut id = [0; 8 + 1 + 16];
    let process = *PROCESS;
    for (i, digit) in id[..8].iter_mut().enumerate() {
        *digit = HEX[(process >> (28 - 4 * i) & 0xf) as usize];
    }
    id[8] = b'-';
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let digits = (64 - sequence.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, digit) in id[9..9 + digits].iter_mut().enumerate() {
        *digit = HEX[(sequence >> (4 * (digits - 1 - i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id[..9 + digits]).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_a_process_prefix_and_a_hex_sequence() {
        let first = new_request_id();
        let second = new_request_id();
        let (prefix, sequence) = first
            .to_str()
            .expect("ASCII")
            .split_once('-')
            .expect("a dash");
        let (same_prefix, next) = second
            .to_str()
            .expect("ASCII")
            .split_once('-')
            .expect("a dash");
        assert_eq!(prefix.len(), 8);
        assert_eq!(prefix, same_prefix);
        assert!(
            prefix
                .bytes()
                .chain(sequence.bytes())
                .all(|b| b.is_ascii_hexdigit())
        );
        let sequence = u64::from_str_radix(sequence, 16).expect("hex");
        assert!(u64::from_str_radix(next, 16).expect("hex") > sequence);
    }
}

//! One middleware for everything we learn from a request: its id, its access
//! log line and its metrics, plus the headers every response carries
//! (`Connection: close` too, once the process is shutting down). One
//! layer instead of three keeps the per-request cost to a single wrapped
//! future (see docs/benchmarks.md).

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::{CONNECTION, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use tower::{Layer, Service};

use crate::access_log::{self, AccessLine};
use crate::lifecycle::Lifecycle;
use crate::metrics::{InFlight, Metrics, UNMATCHED_ROUTE};
use crate::paths::RawPath;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The route a response that matched no route counts under (a redirect
/// counts under the route it leads to), set by the handler that made it.
#[derive(Clone)]
pub struct RouteLabel(pub Arc<str>);

#[derive(Clone, Default)]
pub struct ObserveLayer {
    metrics: Option<Arc<Metrics>>,
    lifecycle: Lifecycle,
}

impl ObserveLayer {
    pub fn new(metrics: Option<Arc<Metrics>>, lifecycle: Lifecycle) -> Self {
        Self { metrics, lifecycle }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            lifecycle: self.lifecycle.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
    lifecycle: Lifecycle,
}

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|id| is_usable_request_id(id))
            .cloned()
            .unwrap_or_else(new_request_id);
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        // The log shows the path as the client sent it.
        let uri = match request.extensions().get::<RawPath>() {
            Some(RawPath(raw)) => Uri::from(raw.clone()),
            None => request.uri().clone(),
        };
        let in_flight = self.metrics.as_ref().map(|metrics| metrics.in_flight());
        ObserveFuture {
            inner: self.inner.call(request),
            started: Instant::now(),
            request: Some(Observed {
                request_id,
                route,
                method,
                uri,
                metrics: self.metrics.clone(),
                lifecycle: self.lifecycle.clone(),
                _in_flight: in_flight,
            }),
        }
    }
}

/// What the response is logged and counted with.
struct Observed {
    request_id: HeaderValue,
    route: Option<MatchedPath>,
    method: Method,
    uri: Uri,
    metrics: Option<Arc<Metrics>>,
    lifecycle: Lifecycle,
    _in_flight: Option<InFlight>,
}

pin_project_lite::pin_project! {
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        request: Option<Observed>,
    }
}

impl<F, B, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let elapsed = this.started.elapsed();
        let request = this.request.take().expect("polled after completion");
        let route = match (&request.route, response.extensions().get::<RouteLabel>()) {
            (Some(matched), _) => matched.as_str(),
            (None, Some(RouteLabel(route))) => route,
            (None, None) => UNMATCHED_ROUTE,
        };
        let status = response.status();
        if let Some(metrics) = &request.metrics {
            metrics.record(&request.method, route, status, elapsed);
        }
        access_log::log(&AccessLine {
            method: request.method.as_str(),
            path: request.uri.path(),
            route,
            status: status.as_u16(),
            latency_us: elapsed.as_micros() as u64,
            request_id: request.request_id.to_str().unwrap_or_default(),
        });
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID, request.request_id);
        // Our JSON echoes client input (`name`): browsers must never sniff it as HTML.
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if request.lifecycle.is_stopping() {
            // hyper closes the connection once this response is written.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
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

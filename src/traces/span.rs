//! The server span of one request, as OpenTelemetry's HTTP semantic
//! conventions describe it
//! (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>): named
//! `GET /hello_world` after the matched route template (never the raw
//! path; the method alone when nothing matched), kind server, the request's
//! method, path, query, scheme, host, protocol version and user agent, the
//! route and the status; `error.type` and status Error for 5xx only (a 4xx
//! is the client's error, not the server's).
//!
//! Attributes are only built for spans that are recorded: an unsampled
//! request pays for its ids and the sampler's decision, not for strings.
//! The query's values for the keys the conventions name as secrets
//! (presigned URLs' signatures) are replaced by `REDACTED`.

use std::borrow::Cow;

use axum::http::header::{HOST, USER_AGENT};
use axum::http::uri::Authority;
use axum::http::{HeaderName, Method, Request, StatusCode, Version};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE, NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_PATH, URL_QUERY,
    URL_SCHEME, USER_AGENT_ORIGINAL,
};

use crate::traces::context;

/// The scheme the client used, as a balancer that ends TLS (an ALB) says.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Query keys whose values the conventions redact by default.
const SECRET_QUERY_KEYS: [&str; 4] = ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Starts each request's span. Cheap to clone: the SDK's tracer is an `Arc`.
#[derive(Clone)]
pub struct RequestTracer {
    tracer: SdkTracer,
    /// Whether a caller's `traceparent` is continued (`OTEL_PROPAGATORS`
    /// names `tracecontext`, as it does by default) or every request
    /// starts a trace of its own.
    continues_callers: bool,
}

impl RequestTracer {
    pub(super) fn new(tracer: SdkTracer, continues_callers: bool) -> Self {
        Self {
            tracer,
            continues_callers,
        }
    }

    /// The request's span, a child of the caller's if its `traceparent`
    /// is valid, else the root of a new trace.
    pub fn start<B>(&self, request: &Request<B>) -> ServerSpan {
        let parent = if self.continues_callers {
            context::parent(request.headers())
        } else {
            Context::new()
        };
        let method = known_method(request.method());
        // The conventions' name for a method they do not list.
        let name = method.unwrap_or("HTTP");
        let mut span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        if span.is_recording() {
            span.set_attributes(request_attributes(request, method));
        }
        ServerSpan {
            context: parent.with_span(span),
            name,
        }
    }
}

/// A request's span, in the context it is the active span of.
pub struct ServerSpan {
    context: Context,
    /// The span's name until the route is known.
    name: &'static str,
}

impl ServerSpan {
    /// The request's context, with this span in it: what a handler's own
    /// spans and outgoing requests continue (docs/tracing.md).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The ids of the trace and of this span, for the access line.
    pub fn ids(&self) -> SpanIds {
        let span = self.context.span();
        let span_context = span.span_context();
        let mut ids = SpanIds {
            trace_id: [0; 32],
            span_id: [0; 16],
        };
        lower_hex(&span_context.trace_id().to_bytes(), &mut ids.trace_id);
        lower_hex(&span_context.span_id().to_bytes(), &mut ids.span_id);
        ids
    }

    /// Ends the span with the answer: `route` is the template the request
    /// matched (`None`: nothing did). A span never finished (its client
    /// went away) is ended by the SDK when dropped, without a status.
    pub fn finish(self, route: Option<&str>, status: StatusCode) {
        let span = self.context.span();
        if !span.is_recording() {
            return;
        }
        if let Some(route) = route {
            span.update_name(format!("{} {route}", self.name));
            span.set_attribute(KeyValue::new(HTTP_ROUTE, route.to_owned()));
        }
        span.set_attribute(KeyValue::new(
            HTTP_RESPONSE_STATUS_CODE,
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_attribute(KeyValue::new(ERROR_TYPE, status.as_str().to_owned()));
            // No description: the status code says it.
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// A trace id and a span id in lowercase hex, as W3C Trace Context and
/// the OTLP/JSON encoding write them (and log pipelines expect them).
pub struct SpanIds {
    trace_id: [u8; 32],
    span_id: [u8; 16],
}

impl SpanIds {
    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).expect("hex digits")
    }

    pub fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).expect("hex digits")
    }
}

fn lower_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
}

/// The methods the conventions name (HTTP's and PATCH), `None` for any
/// other, which spans call `_OTHER` and metrics `OTHER`: a made-up method
/// must not become a new attribute value or series.
pub fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return None,
    })
}

/// What is known of the request when it arrives.
fn request_attributes<B>(request: &Request<B>, method: Option<&'static str>) -> Vec<KeyValue> {
    let headers = request.headers();
    let header = |name| {
        headers
            .get(name)
            .and_then(|value: &axum::http::HeaderValue| value.to_str().ok())
    };
    let mut attributes = Vec::with_capacity(10);
    match method {
        Some(method) => attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, method)),
        None => {
            attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, "_OTHER"));
            attributes.push(KeyValue::new(
                HTTP_REQUEST_METHOD_ORIGINAL,
                request.method().as_str().to_owned(),
            ));
        }
    }
    let scheme = match header(X_FORWARDED_PROTO) {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    attributes.push(KeyValue::new(URL_SCHEME, scheme));
    attributes.push(KeyValue::new(URL_PATH, request.uri().path().to_owned()));
    if let Some(query) = request.uri().query() {
        attributes.push(KeyValue::new(URL_QUERY, redacted(query).into_owned()));
    }
    let authority = request
        .uri()
        .authority()
        .cloned()
        .or_else(|| header(HOST).and_then(|host| host.parse::<Authority>().ok()));
    if let Some(authority) = authority {
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        attributes.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
        if let Some(port) = authority.port_u16() {
            attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
    }
    let version = match request.version() {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    attributes.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, version));
    if let Some(agent) = header(USER_AGENT) {
        attributes.push(KeyValue::new(USER_AGENT_ORIGINAL, agent.to_owned()));
    }
    attributes
}

/// `query`, the values of [`SECRET_QUERY_KEYS`] replaced by `REDACTED`.
fn redacted(query: &str) -> Cow<'_, str> {
    if !SECRET_QUERY_KEYS.iter().any(|key| query.contains(key)) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_QUERY_KEYS.contains(&key) => {
                Cow::Owned(format!("{key}=REDACTED"))
            }
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::Value;
    use opentelemetry::trace::{TraceId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    use super::*;

    fn tracer() -> (RequestTracer, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (RequestTracer::new(provider.tracer("test"), true), exporter)
    }

    fn attributes(span: &SpanData) -> HashMap<String, Value> {
        span.attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.clone()))
            .collect()
    }

    fn only_span(exporter: &InMemorySpanExporter) -> SpanData {
        let mut spans = exporter.get_finished_spans().expect("spans");
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans.remove(0)
    }

    #[test]
    fn a_span_carries_the_conventions_attributes() {
        let (tracer, exporter) = tracer();
        let request = Request::get("/current_time?name=Ada")
            .header("host", "api.example:8000")
            .header("user-agent", "curl/8")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(())
            .expect("request");
        let span = tracer.start(&request);
        let ids = span.ids();
        assert_eq!(ids.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        span.finish(Some("/current_time"), StatusCode::OK);
        let span = only_span(&exporter);
        assert_eq!(span.name, "GET /current_time");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(
            span.span_context.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("hex")
        );
        assert_eq!(format!("{:x}", span.parent_span_id), "b7ad6b7169203331");
        assert_eq!(
            ids.span_id(),
            format!("{:016x}", span.span_context.span_id())
        );
        assert_eq!(span.status, Status::Unset);
        let attributes = attributes(&span);
        let expected = [
            ("http.request.method", Value::from("GET")),
            ("url.scheme", Value::from("http")),
            ("url.path", Value::from("/current_time")),
            ("url.query", Value::from("name=Ada")),
            ("server.address", Value::from("api.example")),
            ("server.port", Value::from(8000)),
            ("network.protocol.version", Value::from("1.1")),
            ("user_agent.original", Value::from("curl/8")),
            ("http.route", Value::from("/current_time")),
            ("http.response.status_code", Value::from(200)),
        ];
        for (key, value) in &expected {
            assert_eq!(attributes.get(*key), Some(value), "{key}");
        }
        assert_eq!(attributes.len(), expected.len(), "{attributes:#?}");
    }

    #[test]
    fn server_errors_set_the_error_status_and_client_errors_do_not() {
        let (tracer, exporter) = tracer();
        let request = Request::get("/nowhere").body(()).expect("request");
        tracer
            .start(&request)
            .finish(None, StatusCode::INTERNAL_SERVER_ERROR);
        let span = only_span(&exporter);
        // No route: the method alone names it; no root's parent.
        assert_eq!(span.name, "GET");
        assert!(!span.parent_span_is_remote);
        assert_eq!(span.status, Status::error(""));
        assert_eq!(
            attributes(&span).get("error.type"),
            Some(&Value::from("500"))
        );
        assert_eq!(attributes(&span).get("http.route"), None);

        exporter.reset();
        tracer.start(&request).finish(None, StatusCode::NOT_FOUND);
        let span = only_span(&exporter);
        assert_eq!(span.status, Status::Unset);
        assert_eq!(attributes(&span).get("error.type"), None);
    }

    #[test]
    fn presigned_urls_signatures_are_redacted_from_the_query() {
        assert_eq!(redacted("name=Ada"), "name=Ada");
        assert_eq!(
            redacted("X-Goog-Signature=s3cr3t&name=Ada&sig=x&Signaturex=kept"),
            "X-Goog-Signature=REDACTED&name=Ada&sig=REDACTED&Signaturex=kept"
        );
    }

    #[test]
    fn callers_are_not_continued_when_trace_context_is_not_a_propagator() {
        let (tracer, exporter) = tracer();
        let tracer = RequestTracer {
            continues_callers: false,
            ..tracer
        };
        let request = Request::get("/")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(())
            .expect("request");
        tracer.start(&request).finish(None, StatusCode::NOT_FOUND);
        let span = only_span(&exporter);
        assert_ne!(
            format!("{:x}", span.span_context.trace_id()),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(span.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    }

    #[test]
    fn other_methods_are_other_and_the_forwarded_scheme_is_kept() {
        let (tracer, exporter) = tracer();
        let request = Request::builder()
            .method(Method::from_bytes(b"BREW").expect("a method"))
            .uri("/")
            .header("x-forwarded-proto", "https")
            .header("host", "[::1]:9000")
            .body(())
            .expect("request");
        tracer.start(&request).finish(None, StatusCode::NOT_FOUND);
        let span = only_span(&exporter);
        assert_eq!(span.name, "HTTP");
        let attributes = attributes(&span);
        assert_eq!(attributes["http.request.method"], Value::from("_OTHER"));
        assert_eq!(
            attributes["http.request.method_original"],
            Value::from("BREW")
        );
        assert_eq!(attributes["url.scheme"], Value::from("https"));
        assert_eq!(attributes["server.address"], Value::from("::1"));
        assert_eq!(attributes["server.port"], Value::from(9000));
    }
}

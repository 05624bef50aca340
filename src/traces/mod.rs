//! Traces: one OpenTelemetry server span per request, continuing the
//! caller's trace (W3C `traceparent`), exported over OTLP/HTTP (protobuf)
//! to a collector, usually the one beside the service (a sidecar, a node
//! agent). docs/tracing.md says how to turn it on and what arrives.
//!
//! On exactly when an OTLP endpoint is configured (`--otlp-traces-endpoint`
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `--otlp-endpoint` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), and never with `OTEL_SDK_DISABLED=true`;
//! off, nothing is built and a request pays one branch. OpenTelemetry's
//! other variables configure it as the SDK reads them (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `_ARG`,
//! `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`).
//!
//! - `context.rs`: `traceparent` and `tracestate` read strictly, as W3C
//!   Trace Context says; a malformed one starts a new trace, never an error;
//! - `span.rs`: the server span, with HTTP's semantic conventions, and its
//!   ids for the access line;
//! - `export.rs`: finished spans wait in a bounded queue, exported in
//!   batches off the request path, each export time-limited; drops and
//!   failures counted and logged at most every 10 s;
//! - `client.rs`: the HTTP client the exporter sends through.
//!
//! Serving never waits on the collector: a request only puts its span in
//! the queue, or drops it when the queue is full.

mod client;
mod context;
mod export;
mod span;

use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue, global};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_semantic_conventions::SCHEMA_URL;
use opentelemetry_semantic_conventions::attribute::{SERVICE_NAME, SERVICE_VERSION};

use crate::config::ServerConfig;

pub use export::SpanCounts;
pub use span::{RequestTracer, ServerSpan, SpanIds, known_method};

/// The service name when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` names one (the SDK's own default,
/// `unknown_service:api`, says nothing a dashboard wants).
const DEFAULT_SERVICE_NAME: &str = "api";

/// OpenTelemetry's defaults, for the variables the SDK's thread-based
/// batch processor leaves to us (it has no export timeout) or does not
/// tell (its queue size, which our queue enforces).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);

/// However long the drain took, the last spans get this long to go out.
const LAST_SPANS_TIME: Duration = Duration::from_millis(100);

/// Tracing, on: the SDK's provider (to flush at shutdown) and the tracer
/// every request starts its span with.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: RequestTracer,
    endpoint: String,
}

impl Traces {
    /// Tracing as configured, or `None` when it is off: no endpoint, or
    /// `OTEL_SDK_DISABLED=true`, or a configuration it cannot use (logged:
    /// as OpenTelemetry's specification asks, a telemetry setting never
    /// stops the service). `counts` makes the counters, only if it is on.
    /// Call it inside the runtime: the exporter sends on it.
    pub fn start(
        config: &ServerConfig,
        counts: impl FnOnce() -> Option<SpanCounts>,
    ) -> Option<Self> {
        let endpoint = endpoint(config, &|name| std::env::var(name).ok())?;
        Self::build(endpoint.clone(), counts)
            .inspect_err(|reason| tracing::error!(endpoint, "traces off: {reason}"))
            .ok()
    }

    fn build(
        endpoint: String,
        counts: impl FnOnce() -> Option<SpanCounts>,
    ) -> Result<Self, String> {
        // Schemes are case-insensitive (RFC 3986, 3.1).
        if !endpoint
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        {
            return Err(
                "the endpoint must be http:// (this build has no TLS: export to a collector beside the service, docs/tracing.md)"
                    .to_owned(),
            );
        }
        // Only now: a refused endpoint registers no counters, which would
        // read as tracing on and idle.
        let counts = counts();
        let env = |name: &str| std::env::var(name).ok();
        warn_of_unsupported_protocol(&env);
        let otlp_timeout = otlp_timeout(&env);
        let max_queue_size = variable(&env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE);
        let export_timeout = variable(&env, "OTEL_BSP_EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT);
        let runtime = tokio::runtime::Handle::current();
        let otlp = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client::PlainHttp::new(runtime.clone(), otlp_timeout))
            .with_endpoint(&endpoint)
            .with_timeout(otlp_timeout)
            .build()
            .map_err(|error| error.to_string())?;
        let (exporter, queue) =
            export::bounded(otlp, max_queue_size, export_timeout, runtime, counts);
        // The SDK reads the other OTEL_BSP_* variables itself.
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(max_queue_size)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue.in_front_of(batch))
            .with_resource(resource())
            .build();
        let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(SCHEMA_URL)
            .build();
        let continues_callers = propagates_trace_context(&env);
        let tracer = RequestTracer::new(provider.tracer_with_scope(scope), continues_callers);
        // For handlers' own spans and outgoing requests (docs/tracing.md).
        global::set_tracer_provider(provider.clone());
        if continues_callers {
            global::set_text_map_propagator(TraceContextPropagator::new());
        }
        Ok(Self {
            provider,
            tracer,
            endpoint,
        })
    }

    /// Where the spans go (the "serving" line says it).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What each request starts its span with.
    pub fn tracer(&self) -> RequestTracer {
        self.tracer.clone()
    }

    /// Exports the spans still queued, by `deadline` (at the least
    /// [`LAST_SPANS_TIME`] from now), and stops the exporter.
    pub async fn flush_by(self, deadline: Instant) {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(LAST_SPANS_TIME);
        let provider = self.provider;
        // The SDK waits for its export thread; the export itself runs on
        // this runtime, whose workers must stay free for it.
        match tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(left)).await {
            Ok(Ok(())) => tracing::info!("traces flushed"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "traces not all flushed by the shutdown deadline")
            }
            Err(error) => tracing::warn!(%error, "traces not flushed"),
        }
    }
}

/// Where spans go, or `None` for tracing off. OpenTelemetry's rules: the
/// traces endpoint as it is; else the base endpoint with `/v1/traces`;
/// empty is unset; `OTEL_SDK_DISABLED=true` (any case) turns everything
/// off; `OTEL_TRACES_EXPORTER=none` turns traces off.
fn endpoint(config: &ServerConfig, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let set = |value: &Option<String>| value.clone().filter(|value| !value.trim().is_empty());
    let endpoint = set(&config.otlp_traces_endpoint).or_else(|| {
        set(&config.otlp_endpoint)
            .map(|base| format!("{}/v1/traces", base.trim().trim_end_matches('/')))
    })?;
    let is =
        |name, value: &str| env(name).is_some_and(|set| set.trim().eq_ignore_ascii_case(value));
    if is("OTEL_SDK_DISABLED", "true") {
        tracing::info!("traces off: OTEL_SDK_DISABLED=true");
        return None;
    }
    if is("OTEL_TRACES_EXPORTER", "none") {
        tracing::info!("traces off: OTEL_TRACES_EXPORTER=none");
        return None;
    }
    Some(endpoint.trim().to_owned())
}

/// Whether W3C Trace Context is one of `OTEL_PROPAGATORS` (by default it
/// is; `none`, or a list without `tracecontext`, makes every request a new
/// trace: for a service on the internet that should not let its callers
/// choose its trace ids and sampling). The others are not implemented.
fn propagates_trace_context(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let Some(propagators) = env("OTEL_PROPAGATORS").filter(|set| !set.trim().is_empty()) else {
        return true;
    };
    let mut trace_context = false;
    for propagator in propagators.split(',').map(str::trim) {
        match propagator {
            "tracecontext" => trace_context = true,
            "none" | "baggage" => {}
            other => tracing::warn!(propagator = other, "propagator not supported: ignored"),
        }
    }
    trace_context
}

/// OTLP/HTTP with protobuf is what this build speaks (the default of
/// OpenTelemetry's SDKs); another protocol asked for is said, not obeyed.
fn warn_of_unsupported_protocol(env: &dyn Fn(&str) -> Option<String>) {
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .filter(|protocol| !protocol.is_empty());
    if let Some(protocol) = protocol.filter(|protocol| protocol != "http/protobuf") {
        tracing::warn!(
            protocol,
            "OTLP protocol not supported: exporting with http/protobuf"
        );
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`
/// (milliseconds), else 10 s: how long one export request may take.
fn otlp_timeout(env: &dyn Fn(&str) -> Option<String>) -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find(|name| env(name).is_some_and(|value| !value.is_empty()))
    .map_or(DEFAULT_OTLP_TIMEOUT, |name| {
        variable(env, name, DEFAULT_OTLP_TIMEOUT)
    })
}

/// A number (durations in milliseconds, as OpenTelemetry's variables give
/// them), or `default` when unset, empty or not a number (said).
fn variable<T: FromVariable>(env: &dyn Fn(&str) -> Option<String>, name: &str, default: T) -> T {
    match env(name).filter(|value| !value.trim().is_empty()) {
        None => default,
        Some(value) => T::from_variable(value.trim()).unwrap_or_else(|| {
            tracing::warn!(
                variable = name,
                value,
                "not a valid number: using the default"
            );
            default
        }),
    }
}

trait FromVariable: Sized {
    fn from_variable(value: &str) -> Option<Self>;
}

impl FromVariable for usize {
    fn from_variable(value: &str) -> Option<Self> {
        value.parse().ok().filter(|&size| size > 0)
    }
}

impl FromVariable for Duration {
    fn from_variable(value: &str) -> Option<Self> {
        value.parse().ok().map(Duration::from_millis)
    }
}

/// What the spans say about the service: the SDK's detection
/// (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `telemetry.sdk.*`),
/// with `service.name` and `service.version` of our own where those do
/// not name them.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&SERVICE_NAME.into())
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let mut resource = Resource::builder();
    if !named {
        resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
    }
    if detected.get(&SERVICE_VERSION.into()).is_none() {
        resource =
            resource.with_attribute(KeyValue::new(SERVICE_VERSION, env!("CARGO_PKG_VERSION")));
    }
    resource.build()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(traces: Option<&str>, base: Option<&str>) -> ServerConfig {
        let mut config = ServerConfig::ephemeral();
        config.otlp_traces_endpoint = traces.map(str::to_owned);
        config.otlp_endpoint = base.map(str::to_owned);
        config
    }

    fn decide(config: &ServerConfig, env: &[(&str, &str)]) -> Option<String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        endpoint(config, &|name| env.get(name).cloned())
    }

    #[tokio::test]
    async fn a_refused_endpoint_makes_no_counters_and_the_scheme_is_case_insensitive() {
        let refused = Traces::build("https://collector:4318/v1/traces".to_owned(), || {
            panic!("counters made for an endpoint that is refused")
        });
        assert!(refused.is_err());
        let mut made = false;
        let traces = Traces::build("HTTP://127.0.0.1:9/v1/traces".to_owned(), || {
            made = true;
            None
        });
        assert!(traces.is_ok() && made);
    }

    #[test]
    fn tracing_is_on_exactly_when_an_endpoint_is_set() {
        assert_eq!(decide(&config(None, None), &[]), None);
        assert_eq!(decide(&config(Some(""), Some(" ")), &[]), None);
        assert_eq!(
            decide(&config(None, Some("http://collector:4318/")), &[]).as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            decide(&config(None, Some("http://collector:4318/base")), &[]).as_deref(),
            Some("http://collector:4318/base/v1/traces")
        );
        // The traces endpoint wins, and is taken as it is.
        assert_eq!(
            decide(
                &config(Some("http://a:4318/traces"), Some("http://b:4318")),
                &[]
            )
            .as_deref(),
            Some("http://a:4318/traces")
        );
    }

    #[test]
    fn the_sdk_disabled_or_no_traces_exporter_turns_it_off() {
        let on = config(None, Some("http://collector:4318"));
        assert_eq!(decide(&on, &[("OTEL_SDK_DISABLED", "TRUE")]), None);
        assert_eq!(decide(&on, &[("OTEL_TRACES_EXPORTER", "none")]), None);
        // Only `true` is true, as OpenTelemetry's specification says.
        assert!(decide(&on, &[("OTEL_SDK_DISABLED", "1")]).is_some());
        assert!(decide(&on, &[("OTEL_SDK_DISABLED", "false")]).is_some());
    }

    #[test]
    fn trace_context_is_propagated_unless_the_propagators_leave_it_out() {
        let with = |value: &'static str| {
            move |name: &str| (name == "OTEL_PROPAGATORS").then(|| value.to_owned())
        };
        assert!(propagates_trace_context(&|_| None));
        assert!(propagates_trace_context(&with("")));
        assert!(propagates_trace_context(&with("tracecontext,baggage")));
        assert!(propagates_trace_context(&with(" baggage , tracecontext ")));
        assert!(!propagates_trace_context(&with("none")));
        assert!(!propagates_trace_context(&with("baggage,b3")));
    }

    #[test]
    fn numbers_come_from_their_variables_or_their_defaults() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(set, _)| *set == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert_eq!(otlp_timeout(&env(&[])), DEFAULT_OTLP_TIMEOUT);
        assert_eq!(
            otlp_timeout(&env(&[
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700")
            ])),
            Duration::from_millis(700)
        );
        assert_eq!(
            otlp_timeout(&env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")])),
            Duration::from_millis(2500)
        );
        assert_eq!(
            variable(
                &env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")]),
                "OTEL_BSP_MAX_QUEUE_SIZE",
                7
            ),
            7
        );
        assert_eq!(
            variable(
                &env(&[("OTEL_BSP_MAX_QUEUE_SIZE", " 64 ")]),
                "OTEL_BSP_MAX_QUEUE_SIZE",
                7
            ),
            64
        );
    }
}

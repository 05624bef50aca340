//! Command-line options. Every option also reads an environment variable, so
//! the same binary is configured by flags on a laptop and by `env:` in a
//! container or a Kubernetes manifest without a wrapper script.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `0.1.0 (abc1234)`: the crate version and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("API_GIT_REVISION"),
    ")"
);

/// A small HTTP API: hello world, the current time, a health check,
/// Swagger UI at /docs and Prometheus metrics on a separate port.
#[derive(Debug, Parser)]
#[command(name = "api", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub server: ServerConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe the server beside it (liveness: /livez on the metrics port; --readiness: /healthcheck): exit 0 on a 200, 1 otherwise.
    ///
    /// Distroless images have no shell or curl, so the image's HEALTHCHECK
    /// runs the binary itself.
    Healthcheck(HealthcheckConfig),
}

/// How the server listens, logs, protects itself and shuts down.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// IP address to listen on (0.0.0.0 = every IPv4 interface, :: = every IPv6 one).
    #[arg(long, env = "API_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// TCP port for the API. `PORT` is what most platforms set.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// TCP port for Prometheus metrics (GET /metrics), kept off the API port
    /// so that it is not exposed wherever the API is.
    #[arg(long, env = "API_METRICS_PORT", default_value_t = 9000)]
    pub metrics_port: u16,

    /// Record no metrics and open no metrics port.
    #[arg(long, env = "API_DISABLE_METRICS")]
    pub disable_metrics: bool,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "API_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `api=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// A client must send a request's headers within this time, or the
    /// connection is closed. It also closes keep-alive connections idle for
    /// this long: behind a load balancer, set it above the balancer's idle
    /// timeout (AWS ALB: 60s).
    #[arg(long, env = "API_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_read_timeout: Duration,

    /// A connection whose answer the client does not read (the socket
    /// accepts no byte) for this long is closed. Progress resets the clock,
    /// so slow clients that keep reading are never cut off; clients that
    /// pipeline requests and never read cannot hold connections forever.
    #[arg(long, env = "API_WRITE_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub write_timeout: Duration,

    /// A request that takes longer than this answers 408.
    #[arg(long, env = "API_REQUEST_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub request_timeout: Duration,

    /// Largest request head (request line + headers) in bytes; larger ones
    /// answer 431. At least 8192.
    #[arg(long, env = "API_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(8192..))]
    pub max_header_bytes: u32,

    /// Most headers a request may carry; more answer 431.
    #[arg(long, env = "API_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,

    /// Most client connections open at once; past it the server stops
    /// accepting until one closes, and new clients wait in the kernel's
    /// backlog. Each idle connection costs about 12 KB: the default keeps
    /// the process well inside a 64 MiB container.
    #[arg(long, env = "API_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// On SIGTERM or SIGINT, first keep accepting and serving for this long
    /// while /healthcheck answers 503 and every response says
    /// `Connection: close`, so that load balancers stop sending here before
    /// the port closes. For balancers without retries (e.g. an AWS ALB)
    /// where nothing else delays the SIGTERM. 0 = stop accepting at once.
    #[arg(long, env = "API_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// On SIGTERM or SIGINT, in-flight requests get this long to finish
    /// before the process exits (after --shutdown-delay). Keep both together
    /// under the orchestrator's kill timeout (Docker: 10s).
    #[arg(long, env = "API_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// On SIGTERM or SIGINT, keep the metrics port open this long after the
    /// API has drained, so that Prometheus scrapes the drain's last counts
    /// (set it to the scrape interval). It adds to the time the process
    /// takes to exit: keep the sum under the orchestrator's kill timeout.
    #[arg(long, env = "API_METRICS_LINGER", default_value = "0s", value_parser = humantime::parse_duration)]
    pub metrics_linger: Duration,

    /// Export traces over OTLP/HTTP (protobuf) to this URL, taken as it is,
    /// e.g. http://127.0.0.1:4318/v1/traces. Tracing is on exactly when this
    /// or --otlp-endpoint is set, unless OTEL_SDK_DISABLED=true; the other
    /// OTEL_* variables configure it (docs/tracing.md).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_traces_endpoint: Option<String>,

    /// The collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318:
    /// traces go to its /v1/traces (unless --otlp-traces-endpoint is set).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where `api healthcheck` looks and for how long.
///
/// Without `--url` it probes the server that runs beside it: the `api`
/// process in the same PID namespace (a container's), whose command line it
/// reads, so that `docker run api:production --port 9090` is probed on
/// 9090; failing that, the settings in its own environment (`PORT`,
/// `API_METRICS_PORT`, ...), which a container shares with its server.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckConfig {
    /// Probe readiness instead: `/healthcheck` on the API port, which
    /// answers 503 once the server is stopping and, like every API
    /// request, waits behind `--max-connections`. The default probes
    /// liveness: `/livez` on the metrics port, which does neither, so a
    /// busy or draining server is never reported dead.
    #[arg(long, conflicts_with = "url")]
    pub readiness: bool,

    /// Full URL to probe instead, e.g. http://10.0.0.7:9000/livez.
    #[arg(long, env = "API_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// Give up, and report unhealthy, after this long.
    #[arg(long, env = "API_HEALTHCHECK_TIMEOUT", default_value = "2s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// Deprecated (the form of earlier releases): probe `/healthcheck` on
    /// this API port, as `--readiness --url http://127.0.0.1:PORT/healthcheck`.
    #[arg(long, hide = true, conflicts_with_all = ["url", "readiness"])]
    pub port: Option<u16>,
}

/// A duration with units (`500ms`, `10s`, `1m`), more than zero: a zero
/// timeout would cut off every client, or never let one in.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than 0".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

impl ServerConfig {
    /// Settings for tests and embedding: every port picked by the OS,
    /// loopback only, no traces, everything else at its default.
    pub fn ephemeral() -> Self {
        let mut config = Cli::parse_from(["api"]).server;
        config.host = IpAddr::from([127, 0, 0, 1]);
        config.port = 0;
        config.metrics_port = 0;
        // A collector configured in the shell is not the tests'.
        config.otlp_traces_endpoint = None;
        config.otlp_endpoint = None;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

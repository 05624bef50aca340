//! What every test needs: requests through the in-process app, a real server
//! on a free port, and the compiled binary started as a user would.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use api::api::routing::Endpoints;
use api::api::{self as service, App, AppState, Settings, endpoints};
use api::config::ServerConfig;
use api::metrics::Metrics;
use api::shutdown::Stopping;
use api::startup::Application;
use axum::body::Body;
use axum::http::{Method, Request, Response};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One URI of each route that answers GET (and so HEAD) with 200.
pub const GET_ROUTES: [&str; 6] = [
    "/hello_world",
    "/current_time?name=x",
    "/healthcheck",
    "/openapi.json",
    "/docs",
    "/redoc",
];

/// Logs are silent unless `TEST_LOG` is set.
pub fn init_test_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .init();
        }
    });
}

/// A handler with a bug, to show what a panic does.
pub async fn panics() -> &'static str {
    panic!("a handler bug")
}

/// A response with its body read.
pub struct Answer {
    pub response: Response<()>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .map(|value| value.to_str().expect("ASCII header"))
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Anything that answers requests in-process: the app, or a bare router.
pub trait InProcess:
    tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible>
{
}

impl<S> InProcess for S where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible>
{
}

/// Sends one request through `app` in-process.
pub async fn call(app: impl InProcess, method: Method, uri: &str) -> Answer {
    init_test_log();
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("valid request");
    send(app, request).await
}

pub async fn send(app: impl InProcess, request: Request<Body>) -> Answer {
    let response = app.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("body reads")
        .to_bytes()
        .to_vec();
    Answer {
        response: Response::from_parts(parts, ()),
        body,
    }
}

/// The app in-process, as the service builds it from `endpoints`.
fn in_process(
    endpoints: Endpoints,
    request_timeout: Duration,
    metrics: Option<Arc<Metrics>>,
) -> App {
    let state = AppState::new(Stopping::default());
    let settings = Settings {
        request_timeout,
        metrics,
        traces: None,
        state,
    };
    service::app(endpoints, settings).expect("valid endpoints")
}

/// The real app, metrics off, not shutting down.
pub fn test_app() -> App {
    in_process(endpoints::all(), REQUEST_TIMEOUT, None)
}

/// The app in-process with `endpoints` (the service's, and routes it
/// doesn't have, behind the same guards), metrics off.
pub fn app_with_routes(endpoints: Endpoints, request_timeout: Duration) -> App {
    in_process(endpoints, request_timeout, None)
}

/// `GET uri` through the real app, metrics off.
pub async fn get(uri: &str) -> Answer {
    call(test_app(), Method::GET, uri).await
}

/// `GET uri` with these request headers through the real app, metrics off.
pub async fn get_with(uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(
        test_app(),
        request.body(Body::empty()).expect("valid request"),
    )
    .await
}

/// The app with metrics, and the metrics it records to.
pub fn app_with_metrics() -> (App, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let app = in_process(endpoints::all(), REQUEST_TIMEOUT, Some(metrics.clone()));
    (app, metrics)
}

/// A server running in this process on free ports; stops when dropped.
pub struct TestApp {
    pub address: String,
    pub metrics_address: String,
    /// Tells it to stop, as SIGTERM does.
    pub stop: CancellationToken,
    /// Ends when the shutdown is over.
    pub server: Option<tokio::task::JoinHandle<Instant>>,
}

/// `GET /metrics` from the metrics port at `metrics_address`, as text.
pub async fn metrics_text(metrics_address: &str) -> String {
    reqwest::get(format!("{metrics_address}/metrics"))
        .await
        .expect("the metrics port answers")
        .text()
        .await
        .expect("text")
}

impl TestApp {
    /// Its `GET /metrics`, as text.
    pub async fn metrics_text(&self) -> String {
        metrics_text(&self.metrics_address).await
    }

    /// Tells the server to stop and waits until its shutdown is over.
    pub async fn stopped(mut self) {
        self.stop.cancel();
        let server = self.server.take().expect("running");
        server.await.expect("the server stops");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The whole application, as `main` runs it, on 127.0.0.1 and free ports.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(ServerConfig::ephemeral()).await
}

/// The whole application with `config` (whose ports should be 0).
pub async fn spawn_app_with(config: ServerConfig) -> TestApp {
    spawn_endpoints(endpoints::all(), config).await
}

/// The whole application serving `endpoints`, with `config`.
pub async fn spawn_endpoints(endpoints: Endpoints, config: ServerConfig) -> TestApp {
    init_test_log();
    let application = Application::build_serving(config, endpoints)
        .await
        .expect("binds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let metrics_address = format!(
        "http://127.0.0.1:{}",
        application.metrics_port().expect("metrics on")
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(application.run_until(stop.clone().cancelled_owned()));
    TestApp {
        address,
        metrics_address,
        stop,
        server: Some(server),
    }
}

/// The compiled `api` binary, started with `args` on free ports.
pub struct Binary {
    pub child: Child,
    pub address: String,
    /// The "serving" log line, as JSON: address, limits, version.
    pub serving: serde_json::Value,
    /// Every log line after it, as JSON, as they arrive.
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Binary {
    /// Starts the binary and waits for its "serving" log line, which tells
    /// the address it bound.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_api")), args, true)
    }

    /// Starts the binary, and reads its stdout only up to the "serving"
    /// line: from then on the pipe fills and nobody drains it.
    pub fn start_unread(args: &[&str]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_api")), args, false)
    }

    /// Starts the binary with its open-files limit set first, as a
    /// container runtime sets it: `ulimit_args` are `ulimit`'s, e.g. `-Sn 256`.
    pub fn start_with_ulimit(ulimit_args: &str, args: &[&str]) -> Self {
        Self::start_after(&format!("ulimit {ulimit_args}"), args)
    }

    /// Starts the binary from a shell that first runs `setup` (the way a
    /// container runtime prepares the process), then becomes the binary.
    pub fn start_after(setup: &str, args: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(r#"{setup} && exec "$0" "$@""#))
            .arg(env!("CARGO_BIN_EXE_api"));
        Self::spawn(command, args, true)
    }

    /// Starts `command` (which ends by running the binary with the
    /// arguments it is given), on free ports.
    pub fn spawn(mut command: Command, args: &[&str], keep_reading: bool) -> Self {
        let mut child = command
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--metrics-port",
                "0",
                "--log-format",
                "json",
            ])
            .args(args)
            .env_remove("PORT")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let serving = lines
            .by_ref()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
            .find(|line| line["message"] == "serving")
            .expect("the binary logs a serving line");
        let address = serving["address"]
            .as_str()
            .expect("the serving line names the address")
            .to_owned();
        // Keep reading, so that the child never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let log = log.clone();
            move || {
                if !keep_reading {
                    // Hold the pipe open, unread, until the child is gone.
                    let _open = lines;
                    std::thread::park();
                    return;
                }
                for line in lines.map_while(Result::ok) {
                    if std::env::var_os("TEST_LOG").is_some() {
                        eprintln!("{line}");
                    }
                    if let Ok(line) = serde_json::from_str(&line) {
                        log.lock().expect("not poisoned").push(line);
                    }
                }
            }
        });
        Self {
            child,
            address: format!("http://{address}"),
            serving,
            log,
        }
    }

    /// The first log line that `wanted` accepts, waiting up to 2 s for it
    /// (lines are written in batches, every 100 ms).
    pub fn log_line(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(line) = self
                .log
                .lock()
                .expect("not poisoned")
                .iter()
                .find(|line| wanted(line))
            {
                return line.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no such log line");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:<metrics port>`, from the "serving" line.
    pub fn metrics_address(&self) -> String {
        let address = self.serving["metrics"]
            .as_str()
            .expect("the serving line names the metrics address");
        format!("http://{address}")
    }

    pub fn port(&self) -> String {
        self.address
            .rsplit(':')
            .next()
            .expect("address has a port")
            .to_owned()
    }

    /// Sends SIGTERM, as `docker stop` and Kubernetes do.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `INT`, ...).
    pub fn signal(&self, name: &str) {
        let killed = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    }

    /// Sends SIGTERM and asserts the process exits 0 within `patience`.
    pub fn terminate_cleanly_within(&mut self, patience: Duration) {
        self.terminate();
        let status = self
            .exit_within(patience)
            .unwrap_or_else(|| panic!("still running {patience:?} after SIGTERM"));
        assert_eq!(status.code(), Some(0));
    }

    /// The exit status, if the process exits within `patience`.
    pub fn exit_within(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `api` with `args` to completion: (exit code, stdout).
pub fn run_binary(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_api"))
        .args(args)
        .env_remove("PORT")
        .output()
        .expect("the binary runs");
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8(output.stdout).expect("UTF-8 output"),
    )
}

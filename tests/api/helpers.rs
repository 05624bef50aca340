//! What every test needs: requests through the in-process app, a real server
//! on a free port, and the compiled binary started as a user would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::Duration;

use api::config::ServerConfig;
use api::metrics::Metrics;
use api::router::app;
use api::server::serve;
use api::startup::Application;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response};
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Sends one request through `router` in-process.
pub async fn call(router: Router, method: Method, uri: &str) -> Answer {
    init_test_log();
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("valid request");
    send(router, request).await
}

pub async fn send(router: Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.expect("infallible");
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

/// `GET uri` through the real app, metrics off.
pub async fn get(uri: &str) -> Answer {
    call(app(REQUEST_TIMEOUT, None), Method::GET, uri).await
}

/// The app with metrics, and the metrics it records to.
pub fn app_with_metrics() -> (Router, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (app(REQUEST_TIMEOUT, Some(metrics.clone())), metrics)
}

/// A server running in this process on free ports; stops when dropped.
pub struct TestApp {
    pub address: String,
    pub metrics_address: String,
    stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The whole application, as `main` runs it, on 127.0.0.1 and free ports.
pub async fn spawn_app() -> TestApp {
    init_test_log();
    let application = Application::build(ServerConfig::ephemeral())
        .await
        .expect("binds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let metrics_address = format!(
        "http://127.0.0.1:{}",
        application.metrics_port().expect("metrics on")
    );
    let stop = CancellationToken::new();
    tokio::spawn(application.run_until(stop.clone().cancelled_owned()));
    TestApp {
        address,
        metrics_address,
        stop,
    }
}

/// Any router behind our server loop, for routes the real app doesn't have.
/// Returns the base URL, the stop switch and the server's task.
pub async fn spawn_router(
    router: Router,
    config: ServerConfig,
) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    init_test_log();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = format!("http://{}", listener.local_addr().expect("bound"));
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move { serve(listener, router, &config, stop).await }
    });
    (address, stop, server)
}

/// The compiled `api` binary, started with `args` on free ports.
pub struct Binary {
    pub child: Child,
    pub address: String,
}

impl Binary {
    /// Starts the binary and waits for its "serving" log line, which tells
    /// the address it bound.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
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
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let line: serde_json::Value = serde_json::from_str(&line).ok()?;
                (line["message"] == "serving")
                    .then(|| line["address"].as_str().map(str::to_owned))?
            })
            .expect("the binary logs the address it serves on");
        // Keep reading so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("{line}");
                }
            }
        });
        Self {
            child,
            address: format!("http://{address}"),
        }
    }

    pub fn port(&self) -> String {
        self.address
            .rsplit(':')
            .next()
            .expect("address has a port")
            .to_owned()
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

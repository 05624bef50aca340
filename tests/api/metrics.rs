//! The metrics count exactly what was sent, and clients cannot add series.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use api::config::ServerConfig;
use axum::http::Method;

use crate::helpers::{app_with_metrics, call, spawn_app, spawn_app_with};

/// The value of the sample line that starts with `series ` in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

#[tokio::test]
async fn request_counters_and_histogram_counts_equal_the_traffic_sent() {
    let (router, metrics) = app_with_metrics();
    for _ in 0..3 {
        call(router.clone(), Method::GET, "/hello_world").await;
    }
    call(router.clone(), Method::GET, "/current_time?name=x").await;
    call(router.clone(), Method::GET, "/current_time").await;
    call(router.clone(), Method::POST, "/hello_world").await;
    call(router.clone(), Method::HEAD, "/healthcheck").await;

    let text = metrics.render();
    for (series, expected) in [
        (
            r#"http_requests_total{method="GET",route="/hello_world",status="200"}"#,
            3.0,
        ),
        (
            r#"http_requests_total{method="GET",route="/current_time",status="200"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="GET",route="/current_time",status="422"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="POST",route="/hello_world",status="405"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="HEAD",route="/healthcheck",status="200"}"#,
            1.0,
        ),
        (
            r#"http_request_duration_seconds_count{route="/hello_world"}"#,
            4.0,
        ),
        (
            r#"http_request_duration_seconds_count{route="/current_time"}"#,
            2.0,
        ),
        (
            r#"http_request_duration_seconds_bucket{route="/hello_world",le="+Inf"}"#,
            4.0,
        ),
        ("http_requests_in_flight", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(expected), "{series} in\n{text}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_add_no_new_series() {
    let (router, metrics) = app_with_metrics();
    let brew =
        |n: u32| Method::from_bytes(format!("BREW{n}").as_bytes()).expect("a valid method token");
    // One of each kind first, so that every series these requests need exists.
    call(router.clone(), Method::GET, "/first-unknown").await;
    call(router.clone(), brew(0), "/hello_world").await;
    let series_before = metrics.render().lines().count();

    for n in 1..=5 {
        call(router.clone(), Method::GET, &format!("/unknown/{n}?q={n}")).await;
        call(router.clone(), brew(n), "/hello_world").await;
    }

    let text = metrics.render();
    assert_eq!(
        text.lines().count(),
        series_before,
        "no new series:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="OTHER",route="/hello_world",status="405"}"#
        ),
        Some(6.0)
    );
    assert!(
        !text.contains("unknown") && !text.contains("BREW"),
        "raw paths and methods never become labels"
    );
}

#[tokio::test]
async fn metrics_are_served_on_their_own_port_not_the_api_port() {
    let app = spawn_app().await;
    reqwest::get(format!("{}/hello_world", app.address))
        .await
        .expect("answers");

    let metrics = reqwest::get(format!("{}/metrics", app.metrics_address))
        .await
        .expect("answers");
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = metrics.text().await.expect("text");
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="/hello_world",status="200"}"#
        ),
        Some(1.0)
    );
    let build_info = format!(
        r#"api_build_info{{revision="{}",version="{}"}}"#,
        env!("API_GIT_REVISION"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build_info), Some(1.0), "\n{text}");
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&text, process).is_some_and(|value| value > 0.0),
            "{process} in\n{text}"
        );
    }
    assert!(
        sample(&text, "process_cpu_seconds_total").is_some(),
        "\n{text}"
    );

    let on_api_port = reqwest::get(format!("{}/metrics", app.address))
        .await
        .expect("answers");
    assert_eq!(
        on_api_port.status(),
        404,
        "the API port does not expose metrics"
    );
}

#[tokio::test]
async fn before_any_request_every_route_has_its_slo_series_at_zero() {
    // `rate()` needs a series to exist before it grows: one that first
    // appears at 3 hides a new instance's first errors.
    let app = spawn_app().await;
    let text = app.metrics_text().await;
    for route in ["/hello_world", "/current_time", "/healthcheck", "/docs"] {
        for status in ["200", "408", "500"] {
            let series =
                format!(r#"http_requests_total{{method="GET",route="{route}",status="{status}"}}"#);
            assert_eq!(sample(&text, &series), Some(0.0), "{series} in\n{text}");
        }
        let count = format!(r#"http_request_duration_seconds_count{{route="{route}"}}"#);
        assert_eq!(sample(&text, &count), Some(0.0), "{count} in\n{text}");
    }
}

#[tokio::test]
async fn liveness_is_answered_on_the_metrics_port_only() {
    let app = spawn_app().await;
    let live = reqwest::get(format!("{}/livez", app.metrics_address))
        .await
        .expect("answers");
    assert_eq!(live.status(), 200);
    assert_eq!(live.text().await.expect("body"), r#"{"status":"ok"}"#);
    let on_api_port = reqwest::get(format!("{}/livez", app.address))
        .await
        .expect("answers");
    assert_eq!(on_api_port.status(), 404);
}

/// Sends `GET /hello_world` on a keep-alive connection; true once the whole
/// answer arrived before the stream's read timeout.
fn answered(stream: &mut TcpStream) -> bool {
    let _ = stream.write_all(b"GET /hello_world HTTP/1.1\r\nHost: x\r\n\r\n");
    read_answer(stream)
}

fn read_answer(stream: &mut TcpStream) -> bool {
    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    while !answer.ends_with(br#"{"message":"Hello World!"}"#) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return false,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    true
}

fn connect(address: &str, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(address.trim_start_matches("http://")).expect("connects");
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("timeout set");
    stream
}

#[tokio::test]
async fn past_max_connections_a_client_waits_until_one_closes_and_the_metrics_count_it() {
    let mut config = ServerConfig::ephemeral();
    config.max_connections = 2;
    let app = spawn_app_with(config).await;
    let address = app.address.clone();
    let still_open = tokio::task::spawn_blocking(move || {
        let second_long = Duration::from_secs(1);
        let mut first = connect(&address, second_long);
        let mut second = connect(&address, second_long);
        assert!(answered(&mut first) && answered(&mut second));
        // The kernel completes the handshake (backlog); the server does not
        // accept it while two connections are open.
        let mut third = connect(&address, Duration::from_millis(300));
        assert!(!answered(&mut third), "answered past the limit");
        drop(first);
        third
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout set");
        assert!(read_answer(&mut third), "served once a connection closed");
        (second, third)
    })
    .await
    .expect("joins");

    let metrics = || app.metrics_text();
    // The first connection's end is counted by its task, a moment after
    // the client closed it: wait for the gauge to say two, then none.
    let open_becomes = |expected: f64| async move {
        for _ in 0..500 {
            if sample(&metrics().await, "http_connections_open") == Some(expected) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    assert!(open_becomes(2.0).await, "the second and third are open");
    drop(still_open);
    assert!(open_becomes(0.0).await, "none once they close");
    let text = metrics().await;
    assert_eq!(
        sample(&text, "http_connections_limit"),
        Some(2.0),
        "\n{text}"
    );
    assert!(
        sample(&text, "http_connections_limit_reached_total").is_some_and(|times| times >= 1.0),
        "\n{text}"
    );
    assert_eq!(sample(&text, "http_accept_errors_total"), Some(0.0));
}

#[tokio::test]
async fn redirects_and_encoded_paths_count_under_their_route_never_the_raw_path() {
    let (router, metrics) = app_with_metrics();
    call(router.clone(), Method::GET, "/hello_world/").await;
    call(router.clone(), Method::GET, "/hello%5Fworld").await;
    let text = metrics.render();
    for status in ["307", "200"] {
        let series = format!(
            r#"http_requests_total{{method="GET",route="/hello_world",status="{status}"}}"#
        );
        assert_eq!(sample(&text, &series), Some(1.0), "{series}\n{text}");
    }
    assert!(
        !text.contains("%5F") && !text.contains("hello_world/"),
        "{text}"
    );
}

//! The benchmark's axum peer: a plain `Router` with one JSON route, served
//! by `axum::serve`. No logging, request ids, metrics or timeouts.
//!
//!     cargo run --release -- 8002
#![forbid(unsafe_code)]

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|port| port.parse().ok()).unwrap_or(8002);
    let app = Router::new().route(
        "/hello_world",
        get(|| async { Json(Message { message: "Hello World!" }) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}

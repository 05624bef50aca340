//! The benchmark's actix-web peer: one JSON route, one worker (the other
//! servers get one core too). No logging, request ids, metrics or timeouts.
//!
//!     cargo run --release -- 8003
#![forbid(unsafe_code)]

use actix_web::{App, HttpServer, web};
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

async fn hello_world() -> web::Json<Message> {
    web::Json(Message { message: "Hello World!" })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|port| port.parse().ok()).unwrap_or(8003);
    HttpServer::new(|| App::new().route("/hello_world", web::get().to(hello_world)))
        .workers(1)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}

//! `api`: a Rust rewrite of a FastAPI demo service, compatible with its
//! contract and ready to run in production. `main.rs` only parses the command
//! line; everything else lives here so that tests can drive it.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod config;
pub mod connections;
pub mod docs;
pub mod error;
pub mod healthcheck;
pub mod lifecycle;
pub mod log_buffer;
pub mod memory_limit;
pub mod metrics;
pub mod observe;
pub mod paths;
pub mod router;
pub mod routes;
pub mod server;
pub mod startup;
pub mod static_files;
pub mod stream;
pub mod telemetry;
pub mod timeout;

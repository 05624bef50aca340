//! One integration-test binary (faster to link than one per file).
//! `TEST_LOG=1 cargo test` shows the servers' logs.

mod adding_an_endpoint;
mod binary;
mod caching;
mod contract;
mod helpers;
mod layering;
mod metrics;
mod parity;
mod server;

//! `api`: a Rust rewrite of a FastAPI demo service, compatible with its
//! contract and ready to run in production. `main.rs` only parses the command
//! line; everything else lives here so that tests can drive it.
//!
//! Each folder is one concern, and dependencies point one way, each layer
//! importing only the layers below it (`tests/api/layering.rs` checks):
//! `startup` → `api`, `healthcheck` → `metrics` → `http`, `logging`,
//! `traces` → `config`, `shutdown`.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod startup;
pub mod traces;

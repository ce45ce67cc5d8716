//! The fnhost library: everything the `fnhost` binary does, as modules (see ARCHITECTURE.md).
//!
//! The binary (`main.rs`) is only the command line; fuzz targets and benchmarks use the same
//! modules directly.

pub mod admin;
pub mod client;
pub mod deployments;
pub mod engine;
pub mod manifest;
pub mod metrics;
pub mod router;
pub mod server;
pub mod sources;
pub mod up;
pub mod watch;

//! The fnhost library: everything the `fnhost` binary does, as modules (see ARCHITECTURE.md
//! for the codemap and which module may use which).
//!
//! The binary (`main.rs`) is only the command line; fuzz targets and benchmarks use the same
//! modules directly.

pub mod admin;
pub mod capabilities;
pub mod deployments;
pub mod engine;
pub mod fsutil;
pub mod http;
pub mod manifest;
pub mod metrics;
#[cfg(feature = "new")]
pub mod new;
pub mod router;
pub mod sources;
pub mod spec;
pub mod up;
pub mod watch;

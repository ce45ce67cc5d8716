//! The admin API: its vocabulary (`api`: operations, typed parameters, the query format), the
//! server on the admin listener (`server`, with `host_files` for the host paths it may use),
//! the CLI that calls it (`client`), and what guards it (`token`: the bearer token and its
//! file; `tls`: the listener's certificate). Both ends use `api`, so an operation or parameter
//! is named and checked in one place.

pub mod api;
pub mod client;
mod host_files;
pub mod server;
pub mod tls;
pub mod token;

pub use host_files::AdminRoots;
pub use server::{handle, metrics_listener_response, metrics_response, Admin};

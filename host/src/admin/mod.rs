//! The admin API: its vocabulary (`api`: operations, typed parameters, the query format), the
//! server on the admin listener (`server`) and the CLI that calls it (`client`). Both ends use
//! `api`, so an operation or parameter is named and checked in one place.

pub mod api;
pub mod client;
pub mod server;

pub use server::{handle, metrics_response, Admin};

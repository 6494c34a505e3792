//! Freya's control plane: configuration, routing and call records on a SQL store, a REST API for
//! customers, and the gRPC service edges connect to. The `freya` binary (src/main.rs) wraps it.
//!
//! What is `pub` here is the crate's surface on purpose: the binary (`main.rs`), the benches
//! under `examples/` and the integration tests start a [`server::ControlPlane`] from a
//! [`config::ControlConfig`], seed and read its [`store`], and run `freya dev` and
//! `freya doctor`. Everything else (the REST handlers, the gRPC service, the webhook worker,
//! metrics) is the crate's own and `pub(crate)` or private, so a change there cannot break a
//! user of the crate; `unreachable_pub` keeps a `pub` from creeping back in unnoticed.

#![warn(unreachable_pub)]

mod api;
mod cluster;
pub mod config;
pub mod dev;
pub mod doctor;
mod edge_watch;
mod grpc;
mod grpc_listener;
mod metrics;
pub mod recording_rewrap;
pub mod recording_seal;
pub mod rekey;
pub mod retention;
pub mod server;
pub mod store;
mod trunk_health;
pub mod trust;
mod webhooks;

/// Hashes a person's password as the login check expects it: tests and benches seed users.
pub use api::hash_password;
/// The claims of a person's token: tests forge and tamper with tokens to check they are refused.
pub use api::Claims;
/// The command streams of the connected edges ([`server::ControlPlane::commands`]): tests ask an
/// edge to place a call through it.
pub use grpc::CommandHub;

//! Freya's control plane: configuration, routing and call records on a SQL store, a REST API for
//! customers, and the gRPC service edges connect to. The `freya` binary (src/main.rs) wraps it.

pub mod api;
pub mod config;
pub mod dev;
pub mod doctor;
pub mod edge_watch;
pub mod grpc;
mod grpc_listener;
pub mod metrics;
pub mod server;
pub mod store;
pub mod webhooks;

//! The domain model that Freya's control plane and edges both speak — ids, agents, numbers,
//! edge health, call events, the configuration snapshot an edge serves calls from — plus the
//! configuration loading, telemetry set-up, owner-only files and the request signature
//! (webhooks and tool requests) that every binary shares.

pub mod config;
pub mod ids;
pub mod join_token;
pub mod model;
pub mod private_files;
pub mod redact;
pub mod signature;
pub mod snapshot;
pub mod telemetry;
pub mod workflow;

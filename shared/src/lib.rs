//! The domain model that Freya's control plane and edges both speak — ids, agents, numbers,
//! edge health, call events, the configuration snapshot an edge serves calls from — plus the
//! configuration loading, telemetry set-up, owner-only files, the request signature
//! (webhooks and tool requests) and the one-line form of an error and its causes that every
//! binary shares.

pub mod config;
pub mod error_chain;
pub mod ids;
pub mod join_token;
pub mod model;
pub mod private_files;
pub mod recording_spool;
pub mod redact;
pub mod signature;
pub mod snapshot;
pub mod telemetry;
pub mod workflow;

//! The domain model that Freya's control plane and edges both speak — ids, agents, numbers,
//! edge health, call events, the configuration snapshot an edge serves calls from — plus the
//! configuration loading, telemetry set-up, owner-only files, the request signature
//! (webhooks and tool requests), the one-line form of an error and its causes that every
//! binary shares, and (feature `tls`) the verifier of a cluster certificate.

#[cfg(feature = "tls")]
pub mod cluster_certificate;
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

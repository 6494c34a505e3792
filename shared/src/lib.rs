//! The domain model that Freya's control plane and edges both speak — ids, agents, numbers,
//! edge health, call events, the configuration snapshot an edge serves calls from — plus the
//! configuration loading and telemetry set-up that every binary shares.

pub mod config;
pub mod ids;
pub mod model;
pub mod snapshot;
pub mod telemetry;
pub mod workflow;

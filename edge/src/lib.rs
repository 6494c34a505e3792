//! Freya's edge node: everything that touches a live call. It answers from its cached
//! configuration, reports call events through a durable spool, and keeps a link to the control
//! plane that survives the control plane going away.

pub mod call;
pub mod config;
pub mod control_link;
mod cpu;
pub mod egress;
mod http;
pub mod llm;
pub mod media;
mod metrics;
pub mod node;
pub mod recordings;
pub mod rtp;
pub mod serve;
pub mod sip;
pub mod speech;
pub mod state;
pub mod twilio;
pub mod voice;

pub use config::EdgeConfig;
pub use node::Edge;

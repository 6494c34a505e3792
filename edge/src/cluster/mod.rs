//! The cluster: edges that know each other. Each edge runs SWIM (the `foca` crate) over UDP on
//! `cluster.bind`, seeded from `cluster.seeds` and from the peers the control plane lists at
//! registration; members gossip a small health report; every datagram is sealed with an HMAC
//! keyed from the shared secret. `membership.rs` is the sans-IO core (foca itself is sans-IO),
//! `shell.rs` the tokio task around it (one socket, one clock, no logic), `report.rs` what the
//! edge shows at `GET /cluster` and tells the control plane when a peer dies.
//!
//! **Invariant:** the core names no tokio, opens no socket and reads no clock; the shell only
//! moves datagrams and time.

pub mod health;
pub mod identity;
pub mod membership;
pub mod seal;

pub use identity::Peer;
pub use membership::{
    ClusterEvent, MemberState, MemberView, Membership, MembershipSettings, Transmit,
};

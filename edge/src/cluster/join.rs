//! When a starting edge has joined its cluster, and so may take or redirect calls: once it
//! sees a peer alive (with its health, so a redirect has somewhere to go), or once the control
//! plane's answer to its registration named no peer to join and no seed is configured (the
//! first edge of a cluster), or at the latest `cluster.join_wait_ms` after it started (the
//! last edge standing after a restart, whose peers are all gone). Until then the edge answers
//! new INVITEs 503 with `Retry-After` and gossips itself as not taking calls, so a just
//! restarted edge never redirects on a view of its peers it has not learnt yet.
//!
//! Sans-IO: the cluster shell hands in the registration's peers and the members with `now`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::membership::{MemberState, MemberView};

/// Whether this edge has joined; decided once, never taken back.
#[derive(Debug, Clone)]
pub(crate) struct JoinGate {
    /// Joined by then whatever the peers say.
    deadline: Instant,
    /// Seeds from the config: an empty list from the control plane does not make us alone.
    configured_seeds: bool,
    joined: bool,
}

impl JoinGate {
    /// A gate for an edge starting at `now` that waits at most `wait` for a peer.
    pub(crate) fn new(now: Instant, wait: Duration, configured_seeds: bool) -> Self {
        Self {
            deadline: now + wait,
            configured_seeds,
            joined: false,
        }
    }

    /// The control plane answered our registration with these peers' gossip addresses.
    pub(crate) fn handle_registered_peers(&mut self, peers: &[SocketAddr]) {
        if peers.is_empty() && !self.configured_seeds {
            self.joined = true;
        }
    }

    /// The members as the membership core sees them at `now` (`me` is this edge's id).
    pub(crate) fn handle_members(&mut self, now: Instant, me: &str, members: &[MemberView]) {
        let peer_alive = members
            .iter()
            .any(|m| m.state == MemberState::Alive && &*m.peer.id != me && m.health.is_some());
        if peer_alive || now >= self.deadline {
            self.joined = true;
        }
    }

    /// Whether the edge has joined.
    pub(crate) fn is_joined(&self) -> bool {
        self.joined
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;

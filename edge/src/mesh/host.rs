//! The edge that dials a leg for a call living on another edge: which mesh `Dial` requests it
//! accepts, without I/O. A request is dialled only when the control plane granted exactly that
//! call, leg, workspace and destination to this edge with the asking edge as the call's home
//! (the grant comes over the control link with the API's `POST /v1/calls/{id}/legs`), when the
//! edge the request names is the one its connection's certificate names (the cluster CA issues
//! each edge a certificate naming its id, so gossip is never the only word on who asks), when
//! the request arrives from the address the cluster's gossip gives that home edge, when this
//! edge serves the workspace, and while the asking edge is within its dial rate and the call
//! within its count of legs here. Everything else is refused, answered with a
//! `Hangup { Refused }` and counted by reason. Grants not used within `grant_ttl` lapse.
//!
//! Dial budgets are kept per certified edge, not per address: a peer gets no fresh allowance
//! from a new connection or port. When more than [`MAX_TRACKED_PEERS`] are kept, only budgets
//! that have refilled are forgotten (a new one starts full, so nothing is lost), never one a
//! peer is spending.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::codec::LegKey;
use super::peers::FrameBudget;

/// Budgets kept before the refilled ones are swept.
pub const MAX_TRACKED_PEERS: usize = 1_024;

/// Limits of the dialling side (`[mesh]` in the edge's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSettings {
    /// Dial requests per second one peer may make (a burst of as many); more are refused.
    pub dials_per_sec_per_peer: u32,
    /// Legs one call may have dialled on this edge at once.
    pub max_legs_per_call: u8,
    /// How long a grant waits for its request.
    pub grant_ttl: Duration,
    /// Most grants held at once (the oldest lapse first beyond it).
    pub max_grants: usize,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            dials_per_sec_per_peer: 20,
            max_legs_per_call: 2,
            grant_ttl: Duration::from_secs(30),
            max_grants: 10_000,
        }
    }
}

/// What the control plane allows: dial `to` as leg `key` for `workspace`, asked by `home`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialGrant {
    pub key: LegKey,
    pub workspace: String,
    pub to: String,
    /// The call's edge, the only peer whose request uses the grant.
    pub home: String,
}

/// A request as it came over the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    pub key: LegKey,
    pub workspace: String,
    pub to: String,
    /// The edge the request says it comes from.
    pub from_edge: String,
}

/// Why a request was refused (the `reason` label of `freya_edge_mesh_dials_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DialRefusal {
    #[error("no grant from the control plane for this call and leg")]
    NoGrant,
    #[error("the request names another edge than its connection's certificate")]
    NotCertified,
    #[error("the request does not come from the call's edge")]
    NotHome,
    #[error("the request names another workspace or destination than the grant")]
    Mismatch,
    #[error("this edge does not serve the workspace")]
    WorkspaceNotServed,
    #[error("the peer asks to dial faster than allowed")]
    RateLimited,
    #[error("the call has its most legs on this edge")]
    TooManyLegs,
}

impl DialRefusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoGrant => "no_grant",
            Self::NotCertified => "certificate_mismatch",
            Self::NotHome => "not_home",
            Self::Mismatch => "mismatch",
            Self::WorkspaceNotServed => "workspace_not_served",
            Self::RateLimited => "rate_limited",
            Self::TooManyLegs => "too_many_legs",
        }
    }
}

/// What this edge knows when a request arrives; the shell fills it from gossip and the
/// configuration snapshot.
pub struct DialContext<'a> {
    /// The connection's remote address.
    pub from: SocketAddr,
    /// The edge id the connection's verified certificate names (`None`: the connection is
    /// gone, or names no edge).
    pub certified_as: Option<&'a str>,
    /// The mesh address gossip gives the grant's home edge (`None`: not a live member).
    pub home_addr: Option<SocketAddr>,
    /// Whether this edge serves a workspace.
    pub serves: &'a dyn Fn(&str) -> bool,
}

/// Grants, hosted legs and each peer's dial budget.
pub struct LegHost {
    settings: HostSettings,
    grants: HashMap<LegKey, (DialGrant, Instant)>,
    hosted: HashMap<LegKey, SocketAddr>,
    /// Dial budgets by certified edge id.
    budgets: HashMap<String, FrameBudget>,
}

impl LegHost {
    /// Nothing granted yet.
    pub fn new(settings: HostSettings) -> Self {
        Self {
            settings,
            grants: HashMap::new(),
            hosted: HashMap::new(),
            budgets: HashMap::new(),
        }
    }

    /// The control plane grants a dial; it lapses after `grant_ttl`.
    pub fn handle_grant(&mut self, now: Instant, grant: DialGrant) {
        self.handle_timeout(now);
        if self.grants.len() >= self.settings.max_grants {
            let oldest = self.grants.iter().min_by_key(|(_, (_, at))| *at);
            if let Some(key) = oldest.map(|(k, _)| *k) {
                self.grants.remove(&key);
            }
        }
        self.grants.insert(grant.key, (grant, now));
    }

    /// Decides a request: `Ok` takes its grant (it cannot be used twice) and counts the leg.
    pub fn handle_dial(
        &mut self,
        now: Instant,
        request: &DialRequest,
        context: &DialContext<'_>,
    ) -> Result<(), DialRefusal> {
        // Every mesh connection is certified; one that is not (any more) asks for nothing.
        let Some(certified) = context.certified_as else {
            return Err(DialRefusal::NotCertified);
        };
        // The budget first, so a flood of anything costs the flooder, not the lookups.
        let per_sec = self.settings.dials_per_sec_per_peer;
        let budget = self
            .budgets
            .entry(certified.to_owned())
            .or_insert_with(|| FrameBudget::new(now, per_sec));
        if !budget.take(now) {
            return Err(DialRefusal::RateLimited);
        }
        self.handle_timeout(now);
        let Some((grant, _)) = self.grants.get(&request.key) else {
            return Err(DialRefusal::NoGrant);
        };
        if certified != request.from_edge {
            return Err(DialRefusal::NotCertified);
        }
        if grant.home != request.from_edge || context.home_addr != Some(context.from) {
            return Err(DialRefusal::NotHome);
        }
        if grant.workspace != request.workspace || grant.to != request.to {
            return Err(DialRefusal::Mismatch);
        }
        if !(context.serves)(&grant.workspace) {
            return Err(DialRefusal::WorkspaceNotServed);
        }
        let call = request.key.call;
        if self.legs_of(call) >= usize::from(self.settings.max_legs_per_call) {
            return Err(DialRefusal::TooManyLegs);
        }
        self.grants.remove(&request.key);
        self.hosted.insert(request.key, context.from);
        Ok(())
    }

    /// A hosted leg is over.
    pub fn handle_ended(&mut self, key: LegKey) {
        self.hosted.remove(&key);
    }

    /// Lapses old grants and, past [`MAX_TRACKED_PEERS`], forgets the budgets that have
    /// refilled (never one a peer is spending).
    pub fn handle_timeout(&mut self, now: Instant) {
        let ttl = self.settings.grant_ttl;
        self.grants
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
        if self.budgets.len() > MAX_TRACKED_PEERS {
            self.budgets.retain(|_, budget| !budget.is_full(now));
        }
    }

    /// Dial budgets kept.
    pub fn tracked_peers(&self) -> usize {
        self.budgets.len()
    }

    /// Legs of `call` hosted here.
    pub fn legs_of(&self, call: Uuid) -> usize {
        self.hosted.keys().filter(|k| k.call == call).count()
    }

    /// Grants waiting for their request.
    pub fn grants(&self) -> usize {
        self.grants.len()
    }
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;

//! Which peer should take a call this edge will not: a pure choice over the members' gossiped
//! health, so that a full, draining or out-of-region edge can answer `302` towards the best live
//! peer instead of refusing. Only peers the gossip calls alive, not draining, with room
//! (active calls below capacity) and in one of the number's regions qualify; the number's
//! regions come in order (home first), each a tier, and within a tier the least loaded peer
//! (active/capacity) wins, ties going to the lowest edge id so that every edge picks alike.
//! An empty region list means the number is answered in every region: one tier of all peers.
//!
//! Sans-IO: no clock, no socket; the SIP task hands in the latest members and its own id.

use std::cmp::Ordering;

use super::health::PeerHealth;
use super::membership::{MemberState, MemberView};

/// The best peer for a call to a number answered in `regions` (home first; empty: every
/// region), or `None` when no peer other than `me` qualifies.
pub(crate) fn choose_peer<'a>(
    me: &str,
    regions: &[&str],
    members: &'a [MemberView],
) -> Option<&'a PeerHealth> {
    members
        .iter()
        .filter(|m| m.state == MemberState::Alive && &*m.peer.id != me)
        .filter_map(|m| m.health.as_ref())
        .filter(|h| &*h.edge_id != me && !h.draining && h.active_calls < h.capacity)
        .filter_map(|h| tier(regions, &h.region).map(|t| (t, h)))
        .min_by(|(ta, a), (tb, b)| {
            ta.cmp(tb)
                .then_with(|| load_order(a, b))
                .then_with(|| a.edge_id.cmp(&b.edge_id))
        })
        .map(|(_, h)| h)
}

/// The tier of a peer in `region`: its place in the number's regions, or `None` when the
/// number is not answered there.
fn tier(regions: &[&str], region: &str) -> Option<usize> {
    if regions.is_empty() {
        return Some(0);
    }
    regions.iter().position(|r| *r == region)
}

/// Why this edge hands a call on rather than take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedirectCause {
    /// Every call slot of this edge is taken.
    Capacity,
    /// This edge is draining.
    Draining,
    /// The number's home region is elsewhere; this edge only answers it as a further region.
    OutOfRegion,
}

impl RedirectCause {
    /// The `cause` label of `freya_edge_sip_invites_redirected_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Capacity => "capacity",
            Self::Draining => "draining",
            Self::OutOfRegion => "out_of_region",
        }
    }
}

/// The regions, in order of preference, whose peers may take a call for a number with `home`
/// (its home region, `None`: every region) that this edge (in region `mine`) hands on for
/// `cause`. The snapshot names only the number's home; `mine` answers it too, since the number
/// is in this edge's snapshot. A call handed on because its home is elsewhere goes only home:
/// when no home peer has room, this edge keeps it.
pub(crate) fn redirect_regions<'a>(
    home: Option<&'a str>,
    mine: &'a str,
    cause: RedirectCause,
) -> Vec<&'a str> {
    match (home, cause) {
        (None, _) => Vec::new(),
        (Some(home), RedirectCause::OutOfRegion) => vec![home],
        (Some(home), _) if home == mine => vec![home],
        (Some(home), _) => vec![home, mine],
    }
}

/// Where a call that reaches this edge as a webhook (Twilio's voice webhook, which cannot be
/// redirected with a 302) should run its media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement<'a> {
    /// On this edge.
    Here,
    /// On this live peer.
    Peer(&'a PeerHealth),
    /// Nowhere: this edge cannot take it and no live peer can.
    Nowhere,
}

/// Where to run a call for a number with `home` (its home region, `None`: every region) that
/// reached this edge (`me`, in region `mine`): here when `not_here` is `None` (this edge is
/// ready, not draining, has room and is in the number's home region), else the best live peer
/// for `not_here`'s cause as a 302 would pick it; a call out of its home region with no home
/// peer to go to stays here, as with SIP.
pub(crate) fn place<'a>(
    me: &str,
    mine: &str,
    home: Option<&str>,
    not_here: Option<RedirectCause>,
    members: &'a [MemberView],
) -> Placement<'a> {
    let Some(cause) = not_here else {
        return Placement::Here;
    };
    let regions = redirect_regions(home, mine, cause);
    match choose_peer(me, &regions, members) {
        Some(peer) => Placement::Peer(peer),
        None if cause == RedirectCause::OutOfRegion => Placement::Here,
        None => Placement::Nowhere,
    }
}

/// The Contact of our 302 for a call to `user`: the peer's SIP address over the caller's
/// transport, marked with the loop guard's parameter so the peer never redirects it again.
pub(crate) fn redirect_contact(
    user: &str,
    peer: &PeerHealth,
    transport: crate::sip::Transport,
) -> String {
    // Only user-part characters that cannot start a parameter, a header or another URI part:
    // the dialled user comes from the caller.
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,/%".contains(*c))
        .collect();
    let at = if user.is_empty() { "" } else { "@" };
    format!(
        "sip:{user}{at}{}{};{}",
        peer.sip_addr,
        transport.uri_param(),
        crate::sip::endpoint::REDIRECTED_PARAM
    )
}

/// `a` before `b` when its share of capacity in use is smaller (compared exactly, no floats).
fn load_order(a: &PeerHealth, b: &PeerHealth) -> Ordering {
    let left = u64::from(a.active_calls) * u64::from(b.capacity);
    let right = u64::from(b.active_calls) * u64::from(a.capacity);
    left.cmp(&right)
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;

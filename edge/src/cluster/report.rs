//! The cluster as this edge shows it: the JSON of `GET /cluster` ([`ClusterReport`]), built
//! from the shell's latest [`ClusterSnapshot`] when asked.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::membership::MemberView;
use super::Peer;

/// The members as the shell last saw them (published after every change and every second).
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    pub me: Peer,
    pub members: Vec<MemberView>,
}

/// `GET /cluster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterReport {
    /// This edge's id.
    #[serde(rename = "self")]
    pub self_id: String,
    pub members: Vec<MemberReport>,
}

/// One member in `GET /cluster`; the health fields are absent until its first report arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: String,
    /// The member's run (start time in ms, bumped on a rejoin).
    pub generation: u64,
    pub gossip_addr: String,
    /// `alive`, `suspect` or `down`.
    pub state: String,
    pub region: Option<String>,
    pub sip_addr: Option<String>,
    pub http_addr: Option<String>,
    /// Where the member's QUIC mesh listens (absent when it runs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_addr: Option<String>,
    pub active_calls: Option<u32>,
    pub capacity: Option<u32>,
    pub cpu_permille: Option<u32>,
    pub draining: Option<bool>,
    pub version: Option<String>,
    /// How long ago this edge saw the member's state change.
    pub last_change_ms: u64,
}

impl ClusterReport {
    /// The report of `snapshot` at `now`.
    pub fn of(snapshot: &ClusterSnapshot, now: Instant) -> Self {
        let text = |s: &Arc<str>| s.to_string();
        Self {
            self_id: snapshot.me.id.to_string(),
            members: snapshot
                .members
                .iter()
                .map(|m| {
                    let h = m.health.as_ref();
                    MemberReport {
                        id: m.peer.id.to_string(),
                        generation: m.peer.generation,
                        gossip_addr: m.peer.addr.to_string(),
                        state: m.state.name().to_owned(),
                        region: h.map(|h| text(&h.region)),
                        sip_addr: h.map(|h| h.sip_addr.to_string()),
                        http_addr: h.map(|h| h.http_addr.to_string()),
                        mesh_addr: h.and_then(|h| h.mesh_addr).map(|a| a.to_string()),
                        active_calls: h.map(|h| h.active_calls),
                        capacity: h.map(|h| h.capacity),
                        cpu_permille: h.map(|h| h.cpu_permille),
                        draining: h.map(|h| h.draining),
                        version: h.map(|h| text(&h.version)),
                        last_change_ms: u64::try_from(
                            now.saturating_duration_since(m.since).as_millis(),
                        )
                        .unwrap_or(u64::MAX),
                    }
                })
                .collect(),
        }
    }
}

//! What the edges' OPTIONS pings say about each SIP trunk, as this control-plane process last
//! heard it (`ReportTrunkHealth`, `grpc/trunk_health.rs`): per provider, per edge, the state,
//! round trip, when it was checked and the last error. An edge's report replaces its previous
//! one, so a trunk it no longer pings drops out. Held in memory, bounded: after a restart the
//! edges' next reports (at least one per ping interval) fill it again. `GET /v1/providers`
//! shows it (`api/provider_health.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Most providers tracked.
const MAX_PROVIDERS: usize = 100_000;
/// Most edges' views kept per provider.
const MAX_EDGES_PER_PROVIDER: usize = 256;

/// One edge's view of one trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeTrunkView {
    pub edge_id: String,
    /// `up`, `down` or `unknown`.
    pub state: String,
    pub rtt_ms: Option<u32>,
    pub checked_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    /// When this process received the report (Unix ms).
    pub reported_at_ms: i64,
}

/// Every edge's view of every trunk; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrunkHealthBoard {
    inner: Arc<Mutex<HashMap<String, HashMap<String, EdgeTrunkView>>>>,
}

impl TrunkHealthBoard {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, EdgeTrunkView>>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces everything `edge_id` said before with `views`.
    pub(crate) fn replace(&self, edge_id: &str, views: Vec<(String, EdgeTrunkView)>) {
        let mut board = self.lock();
        for edges in board.values_mut() {
            edges.remove(edge_id);
        }
        board.retain(|_, edges| !edges.is_empty());
        for (provider_id, view) in views {
            if !board.contains_key(&provider_id) && board.len() >= MAX_PROVIDERS {
                continue;
            }
            let edges = board.entry(provider_id).or_default();
            if edges.len() < MAX_EDGES_PER_PROVIDER {
                edges.insert(edge_id.to_owned(), view);
            }
        }
    }

    /// Every edge's view of `provider_id`, by edge id.
    pub(crate) fn views_of(&self, provider_id: &str) -> Vec<EdgeTrunkView> {
        let mut views: Vec<EdgeTrunkView> = self
            .lock()
            .get(provider_id)
            .map(|edges| edges.values().cloned().collect())
            .unwrap_or_default();
        views.sort_by(|a, b| a.edge_id.cmp(&b.edge_id));
        views
    }
}

//! What the edges' cluster gossip says about each edge, as this control-plane process last heard
//! it: each edge's registered run (generation) and gossip address, and the latest state a peer
//! reported for it (`ReportCluster`). A peer's `down` about the edge's current run (or a later
//! one) shows the edge offline in `GET /v1/edges` and ends its open calls as `edge_lost` at once
//! (`grpc/cluster.rs`); a later `alive` or a new registration clears it. Held in memory: after a
//! restart of this process, or on another control-plane process, the heartbeat timeout
//! (`edges.offline_after_ms`) still applies on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Most peers' reports kept per edge: one per reporting edge, bounded against a runaway list.
const MAX_REPORTS_PER_EDGE: usize = 256;
/// Most edges tracked.
const MAX_EDGES: usize = 4_096;

/// A member state as peers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerView {
    Alive,
    Suspect,
    Down,
}

impl PeerView {
    /// Parses the wire's `state`; `None` for a state this version does not know.
    pub(crate) fn parse(state: &str) -> Option<Self> {
        match state {
            "alive" => Some(Self::Alive),
            "suspect" => Some(Self::Suspect),
            "down" => Some(Self::Down),
            _ => None,
        }
    }

    /// The name `GET /v1/edges` shows as `cluster_state`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
        }
    }
}

#[derive(Debug, Default)]
struct EdgeEntry {
    generation: u64,
    gossip_addr: String,
    /// Latest report per reporter: (generation it was about, state, order received).
    reports: HashMap<String, (u64, PeerView, u64)>,
}

impl EdgeEntry {
    /// The most recently received report about the current run or a later one.
    fn state(&self) -> Option<PeerView> {
        self.reports
            .values()
            .filter(|(generation, ..)| *generation >= self.generation)
            .max_by_key(|(.., order)| *order)
            .map(|(_, view, _)| *view)
    }
}

#[derive(Debug, Default)]
struct Board {
    edges: HashMap<String, EdgeEntry>,
    order: u64,
}

/// What a report did to an edge's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Transition {
    pub was_down: bool,
    pub is_down: bool,
}

/// Shared between the gRPC service and the API; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterBoard {
    inner: Arc<Mutex<Board>>,
}

impl ClusterBoard {
    fn board(&self) -> MutexGuard<'_, Board> {
        // Plain data behind the lock: a panic elsewhere cannot leave it half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An edge (re)registered: a new run forgets what peers said about the old one, and keeps
    /// what they already said about this one (gossip often hears a restarted edge before its
    /// registration reaches the control plane).
    pub(crate) fn registered(&self, edge_id: &str, generation: u64, gossip_addr: &str) {
        let mut board = self.board();
        if board.edges.len() >= MAX_EDGES && !board.edges.contains_key(edge_id) {
            return;
        }
        let entry = board.edges.entry(edge_id.to_owned()).or_default();
        if generation != entry.generation {
            entry.reports.retain(|_, (about, ..)| *about >= generation);
        }
        entry.generation = generation;
        entry.gossip_addr = gossip_addr.to_owned();
    }

    /// `reporter` sees `edge_id`'s run `generation` in state `view`; whether the edge is down
    /// after this report, and whether it was before.
    pub(crate) fn report(
        &self,
        reporter: &str,
        edge_id: &str,
        generation: u64,
        view: PeerView,
    ) -> Transition {
        let mut board = self.board();
        board.order += 1;
        let order = board.order;
        let Some(entry) = board.edges.get_mut(edge_id) else {
            // Never registered here (or with another control-plane process): nothing to show.
            return Transition::default();
        };
        let was_down = entry.state() == Some(PeerView::Down);
        let full =
            entry.reports.len() >= MAX_REPORTS_PER_EDGE && !entry.reports.contains_key(reporter);
        if generation >= entry.generation && !full {
            entry
                .reports
                .insert(reporter.to_owned(), (generation, view, order));
        }
        Transition {
            was_down,
            is_down: entry.state() == Some(PeerView::Down),
        }
    }

    /// What peers last said about `edge_id`'s current run.
    pub(crate) fn state_of(&self, edge_id: &str) -> Option<PeerView> {
        self.board().edges.get(edge_id).and_then(EdgeEntry::state)
    }

    /// Of `candidates` (edge id, gossip address), the addresses of the edges other than
    /// `except` that no peer has reported down, for a new edge to join the cluster through.
    pub(crate) fn gossip_addrs(
        &self,
        candidates: &[(String, String)],
        except: &str,
    ) -> Vec<String> {
        let board = self.board();
        candidates
            .iter()
            .filter(|(id, addr)| id != except && !addr.is_empty())
            .filter(|(id, _)| {
                board.edges.get(id.as_str()).and_then(EdgeEntry::state) != Some(PeerView::Down)
            })
            .map(|(_, addr)| addr.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_report_is_kept_until_a_new_run_or_alive() {
        let board = ClusterBoard::default();
        board.registered("b", 10, "127.0.0.1:1");
        let first = board.report("a", "b", 10, PeerView::Down);
        assert_eq!((first.was_down, first.is_down), (false, true));
        let second = board.report("c", "b", 10, PeerView::Down);
        assert_eq!(
            (second.was_down, second.is_down),
            (true, true),
            "already down"
        );
        assert_eq!(board.state_of("b"), Some(PeerView::Down));
        board.registered("b", 20, "127.0.0.1:1");
        assert_eq!(board.state_of("b"), None);
        assert!(
            !board.report("a", "b", 10, PeerView::Down).is_down,
            "about the old run"
        );
        assert!(!board.report("a", "b", 20, PeerView::Alive).is_down);
        assert_eq!(board.state_of("b"), Some(PeerView::Alive));
    }

    #[test]
    fn a_peer_report_of_the_new_run_survives_the_edge_registering_after_it() {
        let board = ClusterBoard::default();
        board.registered("b", 10, "127.0.0.1:1");
        board.report("a", "b", 10, PeerView::Down);
        // The restarted edge is heard by a peer before its registration arrives.
        board.report("a", "b", 20, PeerView::Alive);
        board.registered("b", 20, "127.0.0.1:1");
        assert_eq!(board.state_of("b"), Some(PeerView::Alive));
    }

    #[test]
    fn unknown_edges_are_not_tracked_from_reports() {
        let board = ClusterBoard::default();
        assert!(!board.report("a", "ghost", 1, PeerView::Down).is_down);
        assert_eq!(board.state_of("ghost"), None);
    }
}

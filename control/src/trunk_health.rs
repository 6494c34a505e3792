//! What the edges' OPTIONS pings say about each SIP trunk, as this control-plane process last
//! heard it (`ReportTrunkHealth`, `grpc/trunk_health.rs`): per provider, per edge, the state,
//! round trip, when it was checked and the last error. An edge's report replaces its previous
//! one, so a trunk it no longer pings drops out. Held in memory, bounded: after a restart the
//! edges' next reports (at least one per ping interval) fill it again. `GET /v1/providers`
//! shows it (`api/provider_health.rs`).
//!
//! It also holds the tests run on demand (`POST /v1/providers/{id}/test`,
//! `api/provider_test.rs`): the tests an edge has been asked for and not yet answered
//! ([`TrunkHealthBoard::expect_test`], completed by `ReportTrunkTest`), and each provider's
//! last test, which a Twilio account's health is taken from and which puts a trunk's tested
//! edge's view on the board at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

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

/// Most tests waiting for an edge's answer at once (each waits a few seconds at most).
const MAX_PENDING_TESTS: usize = 10_000;

/// The outcome of one on-demand test of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderCheck {
    pub ok: bool,
    /// When the test ended (Unix ms).
    pub checked_at_ms: i64,
    pub latency_ms: Option<u32>,
    /// What happened, in words; never a secret.
    pub detail: String,
    /// The edge that ran it (a trunk's test); `None` for a check made by the control plane.
    pub edge_id: Option<String>,
    /// A SIP or HTTP status, when one came back.
    pub status: Option<u16>,
}

/// A test an edge was asked for: who must answer, about what, and where the answer goes.
#[derive(Debug)]
struct PendingTest {
    edge_id: String,
    provider_id: String,
    answer: oneshot::Sender<ProviderCheck>,
}

#[derive(Debug, Default)]
struct Tests {
    pending: HashMap<String, PendingTest>,
    last: HashMap<String, ProviderCheck>,
}

/// Every edge's view of every trunk, and the on-demand tests; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrunkHealthBoard {
    inner: Arc<Mutex<HashMap<String, HashMap<String, EdgeTrunkView>>>>,
    tests: Arc<Mutex<Tests>>,
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

impl TrunkHealthBoard {
    fn lock_tests(&self) -> MutexGuard<'_, Tests> {
        self.tests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for `edge_id`'s answer to the test command `command_id` about `provider_id`;
    /// `None` when too many tests are waiting already.
    pub(crate) fn expect_test(
        &self,
        command_id: &str,
        edge_id: &str,
        provider_id: &str,
    ) -> Option<oneshot::Receiver<ProviderCheck>> {
        let mut tests = self.lock_tests();
        tests.pending.retain(|_, p| !p.answer.is_closed());
        if tests.pending.len() >= MAX_PENDING_TESTS {
            return None;
        }
        let (answer, receiver) = oneshot::channel();
        tests.pending.insert(
            command_id.to_owned(),
            PendingTest {
                edge_id: edge_id.to_owned(),
                provider_id: provider_id.to_owned(),
                answer,
            },
        );
        Some(receiver)
    }

    /// Hands `check` to whoever waits for the test `command_id`, if `edge_id` was asked for it
    /// about `provider_id`; false (and nothing changes) otherwise.
    pub(crate) fn finish_test(
        &self,
        command_id: &str,
        edge_id: &str,
        provider_id: &str,
        check: ProviderCheck,
    ) -> bool {
        let mut tests = self.lock_tests();
        let asked = tests
            .pending
            .get(command_id)
            .is_some_and(|p| p.edge_id == edge_id && p.provider_id == provider_id);
        if !asked {
            return false;
        }
        match tests.pending.remove(command_id) {
            Some(pending) => pending.answer.send(check).is_ok(),
            None => false,
        }
    }

    /// Forgets a test nobody waits for any more (its edge did not answer in time).
    pub(crate) fn forget_test(&self, command_id: &str) {
        self.lock_tests().pending.remove(command_id);
    }

    /// Keeps `check` as `provider_id`'s last test; a trunk's test also becomes its edge's view.
    pub(crate) fn record_test(&self, provider_id: &str, check: ProviderCheck, now_ms: i64) {
        if let Some(edge_id) = &check.edge_id {
            let view = EdgeTrunkView {
                edge_id: edge_id.clone(),
                state: if check.ok { "up" } else { "down" }.into(),
                rtt_ms: check.ok.then_some(check.latency_ms).flatten(),
                checked_at_ms: Some(check.checked_at_ms),
                last_error: (!check.ok).then(|| check.detail.clone()),
                last_status: check.status,
                reported_at_ms: now_ms,
            };
            let mut board = self.lock();
            if board.contains_key(provider_id) || board.len() < MAX_PROVIDERS {
                let edges = board.entry(provider_id.to_owned()).or_default();
                if edges.contains_key(edge_id) || edges.len() < MAX_EDGES_PER_PROVIDER {
                    edges.insert(edge_id.clone(), view);
                }
            }
        }
        let mut tests = self.lock_tests();
        if tests.last.contains_key(provider_id) || tests.last.len() < MAX_PROVIDERS {
            tests.last.insert(provider_id.to_owned(), check);
        }
    }

    /// `provider_id`'s last test, if any since this process started.
    pub(crate) fn last_test(&self, provider_id: &str) -> Option<ProviderCheck> {
        self.lock_tests().last.get(provider_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ok: bool) -> ProviderCheck {
        ProviderCheck {
            ok,
            checked_at_ms: 5,
            latency_ms: Some(3),
            detail: "OPTIONS answered 200".into(),
            edge_id: Some("edge-a".into()),
            status: Some(200),
        }
    }

    #[test]
    fn only_the_edge_asked_about_the_provider_asked_completes_a_test() {
        let board = TrunkHealthBoard::default();
        let mut answer = board.expect_test("cmd", "edge-a", "p1").expect("room");
        assert!(!board.finish_test("cmd", "edge-b", "p1", check(true)));
        assert!(!board.finish_test("cmd", "edge-a", "p2", check(true)));
        assert!(!board.finish_test("other", "edge-a", "p1", check(true)));
        assert!(answer.try_recv().is_err());
        assert!(board.finish_test("cmd", "edge-a", "p1", check(true)));
        assert_eq!(answer.try_recv().expect("answered"), check(true));
        // Answered once: a replay changes nothing.
        assert!(!board.finish_test("cmd", "edge-a", "p1", check(false)));
    }

    #[test]
    fn a_recorded_trunk_test_is_its_edges_view_and_the_last_test() {
        let board = TrunkHealthBoard::default();
        board.record_test("p1", check(false), 9);
        let views = board.views_of("p1");
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].state, "down");
        assert_eq!(views[0].reported_at_ms, 9);
        assert_eq!(board.last_test("p1"), Some(check(false)));
        assert_eq!(board.last_test("p2"), None);
    }
}

//! A provider's `health` in `GET /v1/providers` and `GET /v1/providers/{id}`: for a SIP trunk,
//! what the edges' OPTIONS pings say (`crate::trunk_health`), per edge and taken together — up
//! when any edge reaches it, down when the edges that pinged it all failed, unknown before any
//! report. A report older than [`STALE_AFTER_MS`] (its edge stopped reporting) is left out.
//! A Twilio account's health is its last test's (`POST /v1/providers/{id}/test`,
//! `provider_test.rs`), however old (`checked_at` says), and `unknown` before any test. Every
//! provider also shows that last test as `last_test`.

use serde::Serialize;

use crate::trunk_health::{EdgeTrunkView, ProviderCheck, TrunkHealthBoard};
use freya_shared::ids::{now_ms, rfc3339};

/// An edge's report counts this long after it arrived (edges report at least once per ping
/// interval, 30 s by default).
const STALE_AFTER_MS: i64 = 5 * 60 * 1000;

/// How one edge sees the provider.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct EdgeProviderHealth {
    pub edge: String,
    /// `up`, `down` or `unknown`.
    pub state: String,
    /// The last answered OPTIONS' round trip.
    pub rtt_ms: Option<u32>,
    /// When the edge last pinged (RFC 3339).
    pub checked_at: Option<String>,
    pub last_error: Option<String>,
    /// The status code of the last final answer.
    pub last_status: Option<u16>,
}

/// A provider's health, taken over every edge that reported it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderHealth {
    /// `up` (some edge reaches it), `down` (every reporting edge failed) or `unknown`.
    pub state: String,
    /// The best round trip among the edges that reach it.
    pub rtt_ms: Option<u32>,
    /// The latest ping of any edge (RFC 3339).
    pub checked_at: Option<String>,
    /// When not up: the most recent edge's reason.
    pub last_error: Option<String>,
    pub edges: Vec<EdgeProviderHealth>,
    /// The last test run on demand (since this control-plane process started).
    pub last_test: Option<ProviderTestSummary>,
}

/// A provider's last on-demand test, as `health` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ProviderTestSummary {
    pub ok: bool,
    /// When it ended (RFC 3339).
    pub checked_at: String,
    pub latency_ms: Option<u32>,
    pub detail: String,
    /// The edge that ran it (a SIP trunk's test).
    pub edge: Option<String>,
}

impl From<&ProviderCheck> for ProviderTestSummary {
    fn from(check: &ProviderCheck) -> Self {
        Self {
            ok: check.ok,
            checked_at: rfc3339(check.checked_at_ms),
            latency_ms: check.latency_ms,
            detail: check.detail.clone(),
            edge: check.edge_id.clone(),
        }
    }
}

impl ProviderHealth {
    /// Nothing known.
    pub(crate) fn unknown() -> Self {
        Self {
            state: "unknown".into(),
            rtt_ms: None,
            checked_at: None,
            last_error: None,
            edges: Vec::new(),
            last_test: None,
        }
    }

    /// A Twilio account's health: its last test's outcome.
    pub(crate) fn from_test(check: Option<&ProviderCheck>) -> Self {
        let Some(check) = check else {
            return Self::unknown();
        };
        Self {
            state: if check.ok { "up" } else { "down" }.into(),
            rtt_ms: check.ok.then_some(check.latency_ms).flatten(),
            checked_at: Some(rfc3339(check.checked_at_ms)),
            last_error: (!check.ok).then(|| check.detail.clone()),
            edges: Vec::new(),
            last_test: Some(check.into()),
        }
    }

    /// The health of `provider_id` from the board, as of `now_ms`.
    pub(crate) fn from_views(views: Vec<EdgeTrunkView>, now_ms: i64) -> Self {
        let fresh: Vec<EdgeTrunkView> = views
            .into_iter()
            .filter(|v| now_ms.saturating_sub(v.reported_at_ms) <= STALE_AFTER_MS)
            .collect();
        let state = if fresh.iter().any(|v| v.state == "up") {
            "up"
        } else if fresh.iter().any(|v| v.state == "down") {
            "down"
        } else {
            "unknown"
        };
        let rtt_ms = fresh
            .iter()
            .filter(|v| v.state == "up")
            .filter_map(|v| v.rtt_ms)
            .min();
        let latest = fresh.iter().filter_map(|v| v.checked_at_ms).max();
        let last_error = (state != "up")
            .then(|| {
                fresh
                    .iter()
                    .filter(|v| v.last_error.is_some())
                    .max_by_key(|v| v.checked_at_ms)
                    .and_then(|v| v.last_error.clone())
            })
            .flatten();
        Self {
            state: state.into(),
            rtt_ms,
            checked_at: latest.map(rfc3339),
            last_error,
            edges: fresh
                .into_iter()
                .map(|v| EdgeProviderHealth {
                    edge: v.edge_id,
                    state: v.state,
                    rtt_ms: v.rtt_ms,
                    checked_at: v.checked_at_ms.map(rfc3339),
                    last_error: v.last_error,
                    last_status: v.last_status,
                })
                .collect(),
            last_test: None,
        }
    }

    /// The health of `provider_id` as the board holds it now: a trunk's from the edges'
    /// views, an account's (`from_edges` false) from its last test.
    pub(crate) fn of(board: &TrunkHealthBoard, provider_id: &str, from_edges: bool) -> Self {
        let last = board.last_test(provider_id);
        if !from_edges {
            return Self::from_test(last.as_ref());
        }
        let mut health = Self::from_views(board.views_of(provider_id), now_ms());
        health.last_test = last.as_ref().map(Into::into);
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(edge: &str, state: &str, rtt: Option<u32>, error: Option<&str>) -> EdgeTrunkView {
        EdgeTrunkView {
            edge_id: edge.into(),
            state: state.into(),
            rtt_ms: rtt,
            checked_at_ms: Some(1_000),
            last_error: error.map(Into::into),
            last_status: None,
            reported_at_ms: 1_000,
        }
    }

    #[test]
    fn one_edge_reaching_the_trunk_makes_it_up_with_the_best_round_trip() {
        let h = ProviderHealth::from_views(
            vec![
                view("a", "down", None, Some("no answer")),
                view("b", "up", Some(30), None),
                view("c", "up", Some(12), None),
            ],
            2_000,
        );
        assert_eq!(h.state, "up");
        assert_eq!(h.rtt_ms, Some(12));
        assert_eq!(h.last_error, None);
        assert_eq!(h.edges.len(), 3);
    }

    #[test]
    fn every_edge_failing_makes_it_down_with_a_reason() {
        let h = ProviderHealth::from_views(vec![view("a", "down", None, Some("no answer"))], 2_000);
        assert_eq!(h.state, "down");
        assert_eq!(h.last_error.as_deref(), Some("no answer"));
    }

    #[test]
    fn a_stale_report_is_left_out() {
        let h = ProviderHealth::from_views(
            vec![view("a", "up", Some(5), None)],
            1_000 + STALE_AFTER_MS + 1,
        );
        assert_eq!(h.state, "unknown");
        assert!(h.edges.is_empty());
    }

    #[test]
    fn an_account_is_what_its_last_test_said() {
        assert_eq!(ProviderHealth::from_test(None).state, "unknown");
        let refused = ProviderCheck {
            ok: false,
            checked_at_ms: 1_000,
            latency_ms: Some(40),
            detail: "the key was refused (401)".into(),
            edge_id: None,
            status: Some(401),
        };
        let h = ProviderHealth::from_test(Some(&refused));
        assert_eq!(h.state, "down");
        assert_eq!(h.rtt_ms, None);
        assert_eq!(h.last_error.as_deref(), Some("the key was refused (401)"));
        assert!(h.last_test.is_some_and(|t| !t.ok));
    }
}

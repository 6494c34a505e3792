//! A provider's `health` in `GET /v1/providers` and `GET /v1/providers/{id}`: for a SIP trunk,
//! what the edges' OPTIONS pings say (`crate::trunk_health`), per edge and taken together — up
//! when any edge reaches it, down when the edges that pinged it all failed, unknown before any
//! report. A report older than [`STALE_AFTER_MS`] (its edge stopped reporting) is left out.
//! A Twilio account is `unknown` until edges report on it.

use serde::Serialize;

use crate::trunk_health::{EdgeTrunkView, TrunkHealthBoard};
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
        }
    }

    /// The health of `provider_id` as the board holds it now.
    pub(crate) fn of(board: &TrunkHealthBoard, provider_id: &str) -> Self {
        Self::from_views(board.views_of(provider_id), now_ms())
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
}

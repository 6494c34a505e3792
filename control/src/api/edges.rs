//! `/v1/edges`: the edges this control plane knows, with a status derived from their heartbeats
//! and from what their cluster peers report (`cluster.rs`).

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::Problem;
use super::AppState;
use crate::cluster::PeerView;
use freya_shared::ids::rfc3339;
use freya_shared::model::EdgeStatus;

/// An edge as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct EdgeView {
    id: String,
    region: String,
    sip_addr: String,
    /// `online`, `draining` or `offline`.
    #[schema(value_type = String)]
    status: EdgeStatus,
    active_calls: u32,
    capacity: u32,
    version: String,
    last_seen: String,
    /// What the edge's cluster peers last reported about it: `alive`, `suspect` or `down`;
    /// absent when no peer has (a single edge, or an edge without `cluster.bind`). `down` shows
    /// the edge `offline` at once, without waiting for its heartbeats to time out.
    cluster_state: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/edges",
    tag = "edges",
    summary = "The edges of the cluster and their health",

    responses((status = 200, description = "Edges", body = Vec<EdgeView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<EdgeView>>, Problem> {
    let edges = state.store.edges(state.offline_after_ms).await?;
    Ok(Json(
        edges
            .into_iter()
            .map(|e| {
                let cluster_state = state.cluster.state_of(&e.id);
                EdgeView {
                    status: if cluster_state == Some(PeerView::Down) {
                        EdgeStatus::Offline
                    } else {
                        e.status
                    },
                    cluster_state: cluster_state.map(|s| s.name().to_owned()),
                    id: e.id,
                    region: e.region,
                    sip_addr: e.sip_addr,
                    active_calls: e.active_calls,
                    capacity: e.capacity,
                    version: e.version,
                    last_seen: rfc3339(e.last_seen_ms),
                }
            })
            .collect(),
    ))
}

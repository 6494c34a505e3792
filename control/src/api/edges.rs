//! `/v1/edges`: the edges this control plane knows, with a status derived from their heartbeats.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::Problem;
use super::AppState;
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
            .map(|e| EdgeView {
                id: e.id,
                region: e.region,
                sip_addr: e.sip_addr,
                status: e.status,
                active_calls: e.active_calls,
                capacity: e.capacity,
                version: e.version,
                last_seen: rfc3339(e.last_seen_ms),
            })
            .collect(),
    ))
}

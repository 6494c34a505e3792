//! `/v1/edges`: the edges this control plane knows, with a status derived from their heartbeats
//! and from what their cluster peers report (`cluster.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::Problem;
use super::AppState;
use crate::cluster::PeerView;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{Drain, EdgeCommand};
use freya_shared::ids::{new_id, rfc3339};
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

/// The answer to a drain: the edge was told, and what it carried then.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DrainView {
    id: String,
    /// Always `draining`: the edge takes no new calls from now on.
    #[schema(value_type = String)]
    status: EdgeStatus,
    /// Calls in progress at the edge's last heartbeat; they continue until they end or the
    /// edge's `drain.deadline_seconds` passes.
    active_calls: u32,
}

#[utoipa::path(
    post,
    path = "/v1/edges/{id}/drain",
    tag = "edges",
    summary = "Drain an edge, then let it leave the cluster and exit (admin)",
    description = "What SIGTERM does to `freya edge`: the edge answers new INVITEs with a 302 to \
        a live peer, lets its calls finish (those left at its `drain.deadline_seconds` are ended \
        as `edge_shutdown`), leaves the cluster and exits 0. The edge must hold its command \
        stream to a control-plane process sharing this one's database (503 otherwise).",
    params(("id" = String, Path, description = "The edge's id")),
    responses(
        (status = 202, description = "The edge was told to drain", body = DrainView),
        (status = 404, description = "No such edge"),
        (status = 503, description = "The edge is not connected to any control-plane process")
    )
)]
pub(super) async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DrainView>), Problem> {
    let edges = state.store.edges(state.offline_after_ms).await?;
    let Some(edge) = edges.into_iter().find(|e| e.id == id) else {
        return Err(Problem::not_found());
    };
    let command = EdgeCommand {
        id: new_id(),
        command: Some(Command::Drain(Drain {
            draining: true,
            leave: true,
        })),
    };
    // Through whichever control-plane replica holds the edge's command stream.
    if let Err(e) = state.relay.deliver(&edge.id, command, None).await {
        return Err(match e {
            crate::grpc::RelayError::Store(e) => e.into(),
            other => Problem::unavailable(format!("{other}; send it SIGTERM")),
        });
    }
    state
        .store
        .audit_edge_drain(&caller.scope, &caller.actor, &edge.id, edge.active_calls)
        .await?;
    tracing::info!(edge = %edge.id, actor = %caller.actor, "edge told to drain and leave");
    Ok((
        StatusCode::ACCEPTED,
        Json(DrainView {
            id: edge.id,
            status: EdgeStatus::Draining,
            active_calls: edge.active_calls,
        }),
    ))
}

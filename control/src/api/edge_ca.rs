//! Rotating the cluster CA through the API (admin, each step in the trust audit): read the
//! trusted CAs, rotate (a new CA beside the old), tell an edge to renew now onto the new CA, and
//! retire the old CA. The steps and their reasons are in `trust/rotation.rs`; the runbook is in
//! deploy/README.md.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::Problem;
use super::AppState;
use crate::store::{request_source, TrustEvent};
use crate::trust::rotation::{self, CaState, RotationActor};
use crate::trust::TrustError;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{EdgeCommand, RenewNow};
use freya_shared::ids::new_id;

fn problem(error: TrustError) -> Problem {
    match error {
        TrustError::Store(e) => e.into(),
        other => {
            tracing::error!(error = %other, "a CA rotation step failed");
            Problem::internal("the CA could not be made or loaded")
        }
    }
}

/// A step of a rotation that changes the trusted CAs.
#[derive(Debug, Clone, Copy)]
enum Step {
    Rotate,
    Retire,
}

/// Takes `step` on behalf of `caller`; the trusted CAs after it.
async fn take_step(
    state: &AppState,
    caller: &Caller,
    step: Step,
) -> Result<Json<CaState>, Problem> {
    let by = RotationActor {
        actor: &caller.actor,
        source_ip: request_source(),
    };
    let done = match step {
        Step::Rotate => rotation::rotate(&state.store, &state.ca, &by).await,
        Step::Retire => rotation::retire(&state.store, &state.ca, &by).await,
    };
    done.map(Json).map_err(problem)
}

#[utoipa::path(
    get,
    path = "/v1/edges/ca",
    tag = "edges",
    summary = "The cluster's trusted CAs: one, or two while a rotation overlaps (admin)",
    responses((status = 200, description = "The trusted CAs, oldest first", body = CaState))
)]
pub(super) async fn show(State(state): State<AppState>, _caller: Caller) -> Json<CaState> {
    Json(rotation::state(&state.ca))
}

#[utoipa::path(
    post,
    path = "/v1/edges/ca/rotate",
    tag = "edges",
    summary = "Make a new cluster CA, trusted beside the old one until it is retired (admin)",
    description = "From now on new edge certificates come from the new CA; edges receive both \
        CAs as their trust bundle when they renew (`POST /v1/edges/{id}/renew` renews one at \
        once); control-plane servers keep presenting the old CA, so join tokens still pin it. \
        409 while a rotation is already under way.",
    responses(
        (status = 200, description = "Rotated", body = CaState),
        (status = 409, description = "A rotation is already under way")
    )
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CaState>, Problem> {
    take_step(&state, &caller, Step::Rotate).await
}

#[utoipa::path(
    post,
    path = "/v1/edges/ca/retire",
    tag = "edges",
    summary = "Retire the old cluster CA: its certificates are refused from now on (admin)",
    description = "Call once every edge has renewed onto the new CA (the trust audit shows each \
        `edge.renew` with the CA it used). Control-plane servers then present the new CA and \
        join tokens pin it; tokens made before pin the retired CA and no longer work. 409 when \
        no rotation is under way.",
    responses(
        (status = 200, description = "Retired", body = CaState),
        (status = 409, description = "No rotation is under way")
    )
)]
pub(super) async fn retire(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CaState>, Problem> {
    take_step(&state, &caller, Step::Retire).await
}

/// What a renewal request did.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RenewRequested {
    edge_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/edges/{id}/renew",
    tag = "edges",
    summary = "Tell an edge to renew its certificate now, onto the newest CA (admin)",
    description = "The edge must hold its command stream to a control-plane process sharing \
        this one's database (503 otherwise). The renewal itself shows in the trust audit.",
    params(("id" = String, Path, description = "The edge's id")),
    responses(
        (status = 202, description = "The edge was told to renew", body = RenewRequested),
        (status = 404, description = "No edge has that id"),
        (status = 503, description = "The edge is not connected to any control-plane process")
    )
)]
pub(super) async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    Path(edge_id): Path<String>,
) -> Result<(StatusCode, Json<RenewRequested>), Problem> {
    let edges = state.store.edges(state.offline_after_ms).await?;
    if !edges.iter().any(|e| e.id == edge_id) {
        return Err(Problem::not_found());
    }
    let command = EdgeCommand {
        id: new_id(),
        command: Some(Command::RenewNow(RenewNow {})),
    };
    // Through whichever control-plane replica holds the edge's command stream.
    state.relay.deliver(&edge_id, command, None).await?;
    state
        .store
        .record_trust_event(TrustEvent {
            action: "edge.renew_requested",
            outcome: "ok",
            edge_id: Some(&edge_id),
            source_ip: request_source(),
            detail: serde_json::json!({"actor": caller.actor}),
            ..TrustEvent::default()
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RenewRequested { edge_id })))
}

//! The cluster's trust through the API: an admin makes a join token for a new edge (or a fleet)
//! (shown once; only its secret's hash is kept), revokes an edge's certificates, deletes an edge
//! (which revokes them too), and reads the trust audit (enrolments, renewals, refusals,
//! revocations). A revocation bites at once: this process cuts the edge's connections and every
//! command stream carries the new list to the other edges (`trust/revoked.rs`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::json::StrictJson;
use super::problem::Problem;
use super::AppState;
use std::time::Duration;

use crate::store::{request_source, TrustAuditRecord, TrustEvent};
use crate::trust::join::{make_shared_join_token, TokenMaker};
use freya_shared::ids::rfc3339;
use freya_shared::model::FieldError;

/// Shortest and longest life of a join token, in seconds.
const TOKEN_TTL_RANGE: std::ops::RangeInclusive<u32> = 60..=7 * 24 * 3600;
/// Most edges one token may enrol.
const MAX_TOKEN_USES: u32 = 1_000;
/// A token's life when the request does not say.
const DEFAULT_TOKEN_TTL_SECONDS: u32 = 3_600;

/// `POST /v1/edges/join-tokens`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewJoinTokenBody {
    /// How long the token may be used, 60 s to 7 days (default 1 h).
    #[serde(default)]
    expires_in_seconds: Option<u32>,
    /// How many edges may enrol with it, 1 to 1000 (default 1). More than one is for a fleet
    /// started from one secret (a Kubernetes DaemonSet); such a token never enrols an edge id
    /// that holds a live certificate.
    #[serde(default)]
    uses: Option<u32>,
}

/// The one response that holds a join token.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CreatedJoinToken {
    /// The token's id (not secret), as the trust audit names it.
    id: String,
    /// Give this to `freya edge` as `[control] join_token`; it is not shown again.
    token: String,
    expires_at: String,
    /// How many edges may enrol with it.
    uses: u32,
    /// SHA-256 of the cluster CA's certificate, which the token pins.
    ca_fingerprint: String,
}

#[utoipa::path(
    post,
    path = "/v1/edges/join-tokens",
    tag = "edges",
    summary = "Create a join token for one new edge (or `uses` edges); shown this once (admin)",
    request_body = NewJoinTokenBody,
    responses((status = 201, description = "Created", body = CreatedJoinToken))
)]
pub(super) async fn create_join_token(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(body): StrictJson<NewJoinTokenBody>,
) -> Result<(StatusCode, Json<CreatedJoinToken>), Problem> {
    let ttl = body.expires_in_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECONDS);
    if !TOKEN_TTL_RANGE.contains(&ttl) {
        return Err(Problem::invalid(vec![FieldError::new(
            "expires_in_seconds",
            "must be 60 to 604800 (7 days)",
        )]));
    }
    let uses = body.uses.unwrap_or(1);
    if !(1..=MAX_TOKEN_USES).contains(&uses) {
        return Err(Problem::invalid(vec![FieldError::new(
            "uses",
            format!("must be 1 to {MAX_TOKEN_USES}"),
        )]));
    }
    let (token, expires_at_ms) = make_shared_join_token(
        &state.store,
        &state.ca,
        &TokenMaker {
            workspace_id: &caller.scope.workspace_id,
            actor: &caller.actor,
            source_ip: request_source(),
        },
        Duration::from_secs(u64::from(ttl)),
        uses,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedJoinToken {
            id: token.id.clone(),
            token: token.to_text(),
            expires_at: rfc3339(expires_at_ms),
            uses,
            ca_fingerprint: token.ca_fingerprint,
        }),
    ))
}

/// What a revocation did.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Revoked {
    edge_id: String,
    /// Certificates of the edge, not yet expired, revoked by this request.
    revoked_certificates: u64,
}

#[utoipa::path(
    post,
    path = "/v1/edges/{id}/revoke",
    tag = "edges",
    summary = "Revoke every certificate of an edge: its connections are refused (admin)",
    params(("id" = String, Path, description = "The edge's id")),
    responses((status = 200, description = "Revoked", body = Revoked))
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(edge_id): Path<String>,
) -> Result<Json<Revoked>, Problem> {
    let count = revoke_certificates(&state, &edge_id).await?;
    let detail = serde_json::json!({"revoked_certificates": count});
    audit_edge_action(&state, &caller, "edge.revoke", &edge_id, detail).await?;
    tracing::warn!(edge = %edge_id, count, "revoked an edge's certificates");
    Ok(Json(Revoked {
        edge_id,
        revoked_certificates: count,
    }))
}

/// What deleting an edge did.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeletedEdge {
    edge_id: String,
    /// Whether the edge was in the edge list (it may have enrolled and never registered).
    removed: bool,
    /// Certificates of the edge, not yet expired, revoked by this request.
    revoked_certificates: u64,
}

#[utoipa::path(
    delete,
    path = "/v1/edges/{id}",
    tag = "edges",
    summary = "Delete an edge: revoke its certificates, then remove it from the edge list (admin)",
    params(("id" = String, Path, description = "The edge's id")),
    responses(
        (status = 200, description = "Deleted and revoked", body = DeletedEdge),
        (status = 404, description = "No such edge and no certificate issued to it")
    )
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(edge_id): Path<String>,
) -> Result<Json<DeletedEdge>, Problem> {
    let known = state.store.edge_certificate_count(&edge_id).await? > 0;
    // Revoked first: a failure after this leaves an edge that can no longer connect, never a
    // deleted edge whose certificate still works.
    let count = revoke_certificates(&state, &edge_id).await?;
    let removed = state.store.delete_edge(&edge_id).await?;
    if !known && !removed {
        return Err(Problem::not_found());
    }
    let detail = serde_json::json!({"revoked_certificates": count, "removed": removed});
    audit_edge_action(&state, &caller, "edge.delete", &edge_id, detail).await?;
    tracing::warn!(edge = %edge_id, count, removed, "deleted an edge and revoked its certificates");
    Ok(Json(DeletedEdge {
        edge_id,
        removed,
        revoked_certificates: count,
    }))
}

/// Revokes every certificate of `edge_id` and reloads the revoked list, so that this process
/// cuts the edge's connections at once; how many were revoked.
async fn revoke_certificates(state: &AppState, edge_id: &str) -> Result<u64, Problem> {
    let count = state.store.revoke_edge_certificates(edge_id).await?;
    state.revoked.refresh(&state.store).await?;
    Ok(count)
}

/// Records an admin's `action` on `edge_id` in the trust audit: `detail` (an object), with
/// who did it and from which workspace.
async fn audit_edge_action(
    state: &AppState,
    caller: &Caller,
    action: &str,
    edge_id: &str,
    mut detail: serde_json::Value,
) -> Result<(), Problem> {
    detail["actor"] = serde_json::json!(caller.actor);
    detail["workspace_id"] = serde_json::json!(caller.scope.workspace_id);
    state
        .store
        .record_trust_event(TrustEvent {
            action,
            outcome: "ok",
            edge_id: Some(edge_id),
            source_ip: request_source(),
            detail,
            ..TrustEvent::default()
        })
        .await?;
    Ok(())
}

/// `GET /v1/edges/trust-audit?limit=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Entries to return, newest first (1-1000, default 100).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/edges/trust-audit",
    tag = "edges",
    summary = "The cluster's trust audit: join tokens, enrolments, renewals, refusals (admin)",
    params(AuditQuery),
    responses((status = 200, description = "Entries, newest first", body = Vec<TrustAuditRecord>))
)]
pub(super) async fn audit(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<TrustAuditRecord>>, Problem> {
    Ok(Json(
        state.store.trust_audit(query.limit.unwrap_or(100)).await?,
    ))
}

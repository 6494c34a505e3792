//! `GET /v1/audit-log`: who changed what in the workspace and when, newest first, paged with
//! an opaque cursor. Admins and owners read it. An update's entry lists what it changed, by
//! field, old and new — and a secret only as `"changed"` (see `store::audit`).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::problem::Problem;
use super::query::{decode_cursor, encode_cursor, page_limit, StrictQuery};
use super::{AppState, List};
use crate::store::AuditRecord;
use freya_shared::ids::rfc3339;

/// An audit entry as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditView {
    id: String,
    actor: String,
    action: String,
    resource_type: String,
    resource_id: String,
    /// What happened. For an update (`*.updated`): `changes`, each changed field by its path in
    /// the resource's JSON (`llm.model`, `tools[0].url`) as `{"old": .., "new": ..}`, or
    /// `"changed"` for a secret (`api_key`, `tool_secret`, `secret`, `password`, `auth_token`),
    /// whose value is never kept.
    detail: serde_json::Value,
    at: String,
    /// The client address the change came from (`null` for the system's own changes).
    source_ip: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(a: AuditRecord) -> Self {
        Self {
            id: a.id,
            actor: a.actor,
            action: a.action,
            resource_type: a.resource_type,
            resource_id: a.resource_id,
            detail: a.detail,
            at: rfc3339(a.at_ms),
            source_ip: a.source_ip,
        }
    }
}

/// The parameters of `GET /v1/audit-log`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/audit-log",
    tag = "audit-log",
    summary = "Who changed what, newest first (admin)",
    params(AuditQuery),
    responses((status = 200, description = "A page of entries", body = List<AuditView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<AuditQuery>,
) -> Result<Json<List<AuditView>>, Problem> {
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let (entries, next) = state
        .store
        .audit_page(&caller.scope, before, page_limit(q.limit)?)
        .await?;
    Ok(Json(List {
        data: entries.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|(at, id)| encode_cursor(at, &id)),
    }))
}

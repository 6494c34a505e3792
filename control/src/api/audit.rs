//! `GET /v1/audit-log`: who changed what in the workspace and when, newest first, paged with
//! an opaque cursor, optionally narrowed to one action (or its start, `agent.`), resource type,
//! resource or actor — in the query, so a filter reaches entries of any age. Admins and owners
//! read it. An update's entry lists what it changed, by field, old and new — and a secret only
//! as `"changed"` (see `store::audit`).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::problem::Problem;
use super::query::{bad_parameter, decode_cursor, encode_cursor, page_limit, StrictQuery};
use super::{AppState, List};
use crate::store::{AuditFilter, AuditRecord};

/// The longest filter value taken: longer than any action, resource type, id or actor.
const MAX_FILTER_CHARS: usize = 200;
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
    /// Entries whose action starts with this: `agent.` (everything done to agents) or
    /// `agent.updated`.
    action: Option<String>,
    /// Entries about this kind of resource: `agent`, `workflow`, `provider`, `api_key`, ...
    resource_type: Option<String>,
    /// Entries about this one resource.
    resource_id: Option<String>,
    /// Entries by this actor: `user:<id>` or `api_key:<id>`.
    actor: Option<String>,
}

impl AuditQuery {
    /// The filter the query names; an empty value names none, one past
    /// [`MAX_FILTER_CHARS`] is a 400 naming it.
    fn filter(&self) -> Result<AuditFilter, Problem> {
        let value = |name: &str, v: &Option<String>| -> Result<Option<String>, Problem> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) if v.chars().count() > MAX_FILTER_CHARS => Err(bad_parameter(
                    name,
                    &format!("at most {MAX_FILTER_CHARS} characters"),
                )),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        Ok(AuditFilter {
            // Actions are lower case; lowering the prefix makes both engines' `LIKE` agree.
            action_prefix: value("action", &self.action)?.map(|a| a.to_lowercase()),
            resource_type: value("resource_type", &self.resource_type)?,
            resource_id: value("resource_id", &self.resource_id)?,
            actor: value("actor", &self.actor)?,
        })
    }
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
    let filter = q.filter()?;
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let (entries, next) = state
        .store
        .audit_page(&caller.scope, &filter, before, page_limit(q.limit)?)
        .await?;
    Ok(Json(List {
        data: entries.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|(at, id)| encode_cursor(at, &id)),
    }))
}

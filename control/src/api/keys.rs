//! `/v1/workspaces/{id}/api-keys`: admins issue keys (the secret is in the response once and
//! never again), list them by prefix and revoke them. No caller issues or revokes a key of a
//! role above its own (403): an admin can neither mint an owner key nor revoke one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::json::StrictJson;
use super::problem::Problem;
use super::resource_id::ResourceIds;
use super::{AppState, List};
use crate::store::{ApiKeyInfo, Role};
use freya_shared::ids::rfc3339;
use freya_shared::model::FieldError;

/// `POST /v1/workspaces/{id}/api-keys`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewKey {
    name: String,
    role: Role,
}

/// The one response that holds a key's secret.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CreatedKey {
    id: String,
    key: String,
    prefix: String,
    name: String,
    role: Role,
}

/// A key as listed.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct KeyView {
    id: String,
    name: String,
    prefix: String,
    role: Role,
    created_at: String,
    /// When the key last authenticated a request, to the minute.
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<ApiKeyInfo> for KeyView {
    fn from(k: ApiKeyInfo) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_at: rfc3339(k.created_at_ms),
            last_used_at: k.last_used_at_ms.map(rfc3339),
            revoked_at: k.revoked_at_ms.map(rfc3339),
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/api-keys",
    tag = "api-keys",
    summary = "Create an API key; its secret is shown this once (admin)",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    request_body = NewKey,
    responses((status = 201, description = "Created", body = CreatedKey))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(body): StrictJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), Problem> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::invalid(vec![FieldError::new(
            "name",
            "must be 1-100 characters",
        )]));
    }
    if body.role > caller.role {
        return Err(Problem::forbidden(format!(
            "a `{}` cannot issue a `{}` key",
            caller.role.as_str(),
            body.role.as_str()
        )));
    }
    let key = state
        .store
        .issue_api_key(&caller.scope, &caller.actor, &name, body.role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: key.id,
            key: key.key,
            prefix: key.prefix,
            name,
            role: body.role,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/api-keys",
    tag = "api-keys",
    summary = "The workspace's API keys (admin)",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    responses((status = 200, description = "Keys", body = List<KeyView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<KeyView>>, Problem> {
    let keys = state.store.api_keys(&caller.scope).await?;
    Ok(Json(List::of(keys)))
}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/api-keys/{key_id}",
    tag = "api-keys",
    summary = "Revoke an API key at once (admin)",
    params(("workspace_id" = String, Path, description = "The workspace's id"), ("key_id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"))
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ResourceIds(_, key_id): ResourceIds,
) -> Result<StatusCode, Problem> {
    state
        .store
        .revoke_api_key(&caller.scope, &caller.actor, &key_id, caller.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

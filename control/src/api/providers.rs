//! `/v1/providers`: the workspace's SIP trunks, for admins and owners. A password goes in and
//! never comes back out: reads show `"password": "********"` when one is stored. `PATCH` is a
//! merge patch that keeps the stored password unless the body gives a new one (`"password":
//! null` removes it; the mask itself, sent back unchanged, keeps it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::json::{merge_patch, strict_from_value, JsonObject, StrictJson};
use super::openapi::SipTrunkSpecDoc;
use super::problem::Problem;
use super::resource_id::ResourceId;
use super::{AppState, List};
use crate::store::{PasswordChange, Provider, Role};
use freya_shared::ids::rfc3339;
use freya_shared::model::SipTrunkSpec;

/// What a stored password reads as.
pub const PASSWORD_MASK: &str = "********";

/// A provider as the API shows it: the trunk's spec with its password masked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    id: String,
    workspace_id: String,
    kind: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::SipTrunkSpecDoc)]
    spec: SipTrunkSpec,
    created_at: String,
    updated_at: String,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        let mut spec = p.spec;
        spec.password = p.has_password.then(|| PASSWORD_MASK.to_owned());
        Self {
            id: p.id,
            workspace_id: p.workspace_id,
            kind: p.kind,
            spec,
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
        }
    }
}

fn validated(spec: SipTrunkSpec) -> Result<SipTrunkSpec, Problem> {
    let errors = spec.validate();
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(Problem::invalid(errors))
    }
}

#[utoipa::path(
    post,
    path = "/v1/providers",
    tag = "providers",
    summary = "Create a provider (admin)",
    request_body = SipTrunkSpecDoc,
    responses((status = 201, description = "Created", body = ProviderView))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(spec): StrictJson<SipTrunkSpec>,
) -> Result<(StatusCode, Json<ProviderView>), Problem> {
    caller.require(Role::Admin)?;
    let spec = validated(spec)?;
    let provider = state
        .store
        .create_provider(&caller.scope, &caller.actor, &spec)
        .await?;
    Ok((StatusCode::CREATED, Json(provider.into())))
}

#[utoipa::path(
    get,
    path = "/v1/providers",
    tag = "providers",
    summary = "The workspace's providers",

    responses((status = 200, description = "All of them", body = List<ProviderView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<ProviderView>>, Problem> {
    caller.require(Role::Admin)?;
    let providers = state.store.providers(&caller.scope).await?;
    Ok(Json(List::of(
        providers.into_iter().map(Into::into).collect(),
    )))
}

#[utoipa::path(
    get,
    path = "/v1/providers/{id}",
    tag = "providers",
    summary = "One provider",
    params(("id" = String, Path, description = "The provider's id")),
    responses((status = 200, description = "The provider", body = ProviderView))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<Json<ProviderView>, Problem> {
    caller.require(Role::Admin)?;
    Ok(Json(state.store.provider(&caller.scope, &id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/providers/{id}",
    tag = "providers",
    summary = "Change a provider with a JSON merge patch (admin)",
    params(("id" = String, Path, description = "The provider's id")),
    request_body(content = SipTrunkSpecDoc, description = "Any subset of the fields (RFC 7396 merge patch; null removes an optional field)"),
    responses((status = 200, description = "Changed", body = ProviderView))
)]
pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
    JsonObject(mut patch): JsonObject,
) -> Result<Json<ProviderView>, Problem> {
    caller.require(Role::Admin)?;
    let current = state.store.provider(&caller.scope, &id).await?;
    let password = match patch.as_object_mut().and_then(|o| o.remove("password")) {
        None => PasswordChange::Keep,
        Some(serde_json::Value::Null) => PasswordChange::Clear,
        Some(serde_json::Value::String(p)) if p == PASSWORD_MASK => PasswordChange::Keep,
        Some(serde_json::Value::String(p)) => PasswordChange::Set(p),
        Some(_) => {
            return Err(Problem::invalid(vec![
                freya_shared::model::FieldError::new("password", "must be a string or null"),
            ]))
        }
    };
    let mut document = serde_json::to_value(&current.spec).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?;
    merge_patch(&mut document, patch);
    let mut spec: SipTrunkSpec = strict_from_value(document)?;
    // Validate the trunk as it will be, password included (a password needs a username).
    spec.password = match &password {
        PasswordChange::Keep if current.has_password => Some(PASSWORD_MASK.into()),
        PasswordChange::Set(p) => Some(p.clone()),
        _ => None,
    };
    let spec = validated(spec)?;
    let provider = state
        .store
        .update_provider(&caller.scope, &caller.actor, &id, &spec, &password)
        .await?;
    Ok(Json(provider.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/providers/{id}",
    tag = "providers",
    summary = "Delete a provider (admin)",
    params(("id" = String, Path, description = "The provider's id")),
    responses((status = 204, description = "Deleted"))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<StatusCode, Problem> {
    caller.require(Role::Admin)?;
    state
        .store
        .delete_provider(&caller.scope, &caller.actor, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

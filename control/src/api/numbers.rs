//! `/v1/phone-numbers`: create, list, read and patch the numbers of the caller's workspace, the
//! agent or workflow each routes to, and the regions that answer it (home `region`, further
//! `regions`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::json::{merge_patch, strict_from_value, JsonObject, StrictJson};
use super::openapi::PhoneNumberSpecDoc;
use super::problem::Problem;
use super::resource_id::ResourceId;
use super::{AppState, List};
use crate::store::{PhoneNumber, Role};
use freya_shared::ids::rfc3339;
use freya_shared::model::PhoneNumberSpec;

/// A phone number as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PhoneNumberView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::PhoneNumberSpecDoc)]
    spec: PhoneNumberSpec,
    /// Present when another number written before numbers were normalised has the same normal
    /// form: no edge answers either until one is changed or deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<PhoneNumber> for PhoneNumberView {
    fn from(n: PhoneNumber) -> Self {
        Self {
            id: n.id,
            workspace_id: n.workspace_id,
            conflict: n.claimed_twice.then(|| {
                "another number has the same normal form; neither is answered until one is \
                 changed or deleted"
                    .to_owned()
            }),
            spec: n.spec,
            created_at: rfc3339(n.created_at_ms),
            updated_at: rfc3339(n.updated_at_ms),
        }
    }
}

/// The spec in normal form (one spelling per number, as edges route it), or a 422.
fn validated(spec: PhoneNumberSpec) -> Result<PhoneNumberSpec, Problem> {
    let errors = spec.validate();
    if errors.is_empty() {
        Ok(spec.normalized())
    } else {
        Err(Problem::invalid(errors))
    }
}

#[utoipa::path(
    post,
    path = "/v1/phone-numbers",
    tag = "phone-numbers",
    summary = "Create a phone number (editor)",
    request_body = PhoneNumberSpecDoc,
    responses((status = 201, description = "Created", body = PhoneNumberView))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(spec): StrictJson<PhoneNumberSpec>,
) -> Result<(StatusCode, Json<PhoneNumberView>), Problem> {
    caller.require(Role::Editor)?;
    let spec = validated(spec)?;
    let number = state
        .store
        .create_number(&caller.scope, &caller.actor, &spec)
        .await?;
    Ok((StatusCode::CREATED, Json(number.into())))
}

#[utoipa::path(
    get,
    path = "/v1/phone-numbers",
    tag = "phone-numbers",
    summary = "The workspace's phone numbers",

    responses((status = 200, description = "All of them", body = List<PhoneNumberView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<PhoneNumberView>>, Problem> {
    let numbers = state.store.numbers(&caller.scope).await?;
    Ok(Json(List::of(
        numbers.into_iter().map(Into::into).collect(),
    )))
}

#[utoipa::path(
    get,
    path = "/v1/phone-numbers/{id}",
    tag = "phone-numbers",
    summary = "One phone number",
    params(("id" = String, Path, description = "The phone number's id")),
    responses((status = 200, description = "The phone number", body = PhoneNumberView))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<Json<PhoneNumberView>, Problem> {
    Ok(Json(state.store.number(&caller.scope, &id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/phone-numbers/{id}",
    tag = "phone-numbers",
    summary = "Change a phone number with a JSON merge patch (editor)",
    params(("id" = String, Path, description = "The phone number's id")),
    request_body(content = PhoneNumberSpecDoc, description = "Any subset of the fields (RFC 7396 merge patch; null removes an optional field)"),
    responses((status = 200, description = "Changed", body = PhoneNumberView))
)]
pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
    JsonObject(patch): JsonObject,
) -> Result<Json<PhoneNumberView>, Problem> {
    caller.require(Role::Editor)?;
    let current = state.store.number(&caller.scope, &id).await?;
    let mut document = serde_json::to_value(&current.spec).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?;
    merge_patch(&mut document, patch);
    let spec = validated(strict_from_value(document)?)?;
    let number = state
        .store
        .update_number(&caller.scope, &caller.actor, &id, &spec)
        .await?;
    Ok(Json(number.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/phone-numbers/{id}",
    tag = "phone-numbers",
    summary = "Delete a phone number (editor)",
    params(("id" = String, Path, description = "The phone number's id")),
    responses((status = 204, description = "Deleted"))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<StatusCode, Problem> {
    caller.require(Role::Editor)?;
    state
        .store
        .delete_number(&caller.scope, &caller.actor, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `/v1/providers`: the workspace's SIP trunks (`"kind": "sip_trunk"`, the default) and Twilio
//! accounts (`"kind": "twilio"`), for admins and owners. A secret — a trunk's `password`, an
//! account's `auth_token` — goes in and never comes back out: reads show `"********"` when one
//! is stored. `PATCH` is a merge patch that keeps the stored secret unless the body gives a new
//! one (`null` removes it; the mask itself, sent back unchanged, keeps it); a provider's kind
//! cannot change. A PATCH that changes where the stored secret is sent — a trunk's `host`,
//! `port` or `outbound_proxy`, an account's `api_base_url` — must give the secret again (a 422 naming it otherwise),
//! so that nobody who never saw the secret can have it sent to a host of their choosing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::json::{merge_patch, strict_from_value, JsonObject};
use super::openapi::ProviderSpecDoc;
use super::problem::Problem;
use super::resource_id::ResourceId;
use super::{AppState, List};
use crate::store::{Provider, Role, SecretChange};
use freya_shared::ids::rfc3339;
use freya_shared::model::{FieldError, ProviderSpec};

/// What a stored secret reads as.
pub const PASSWORD_MASK: &str = "********";

/// A provider as the API shows it: its spec, tagged with `kind`, its secret masked.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::ProviderSpecDoc)]
    spec: ProviderSpec,
    created_at: String,
    updated_at: String,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        let mut spec = p.spec;
        spec.set_secret(p.has_secret.then(|| PASSWORD_MASK.to_owned()));
        Self {
            id: p.id,
            workspace_id: p.workspace_id,
            spec,
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
        }
    }
}

fn validated(spec: ProviderSpec) -> Result<ProviderSpec, Problem> {
    let errors = spec.validate();
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(Problem::invalid(errors))
    }
}

/// The kind a body names (`sip_trunk` when it names none), taken out of the body.
fn take_kind(body: &mut serde_json::Value) -> Result<String, Problem> {
    let kind = body.as_object_mut().and_then(|o| o.remove("kind"));
    match kind {
        None | Some(serde_json::Value::Null) => Ok("sip_trunk".into()),
        Some(serde_json::Value::String(k)) if k == "sip_trunk" || k == "twilio" => Ok(k),
        Some(_) => Err(Problem::invalid(vec![FieldError::new(
            "kind",
            "must be `sip_trunk` or `twilio`",
        )])),
    }
}

/// `body` (without `kind`) parsed strictly as a provider of `kind`.
fn spec_of_kind(kind: &str, body: serde_json::Value) -> Result<ProviderSpec, Problem> {
    Ok(match kind {
        "twilio" => ProviderSpec::Twilio(strict_from_value(body)?),
        _ => ProviderSpec::SipTrunk(strict_from_value(body)?),
    })
}

/// The field of `current` whose change in `patched` sends the secret somewhere else, if any.
fn secret_destination_change(
    current: &ProviderSpec,
    patched: &ProviderSpec,
) -> Option<&'static str> {
    match (current, patched) {
        (ProviderSpec::SipTrunk(old), ProviderSpec::SipTrunk(new)) => {
            if old.host != new.host {
                Some("host")
            } else if old.port != new.port {
                Some("port")
            } else if old.outbound_proxy != new.outbound_proxy {
                // Challenged INVITEs (digest responses) go through the proxy.
                Some("outbound_proxy")
            } else {
                None
            }
        }
        (ProviderSpec::Twilio(old), ProviderSpec::Twilio(new)) => {
            (old.api_base_url != new.api_base_url).then_some("api_base_url")
        }
        _ => None,
    }
}

#[utoipa::path(
    post,
    path = "/v1/providers",
    tag = "providers",
    summary = "Create a provider: a SIP trunk or a Twilio account (admin)",
    request_body = ProviderSpecDoc,
    responses((status = 201, description = "Created", body = ProviderView))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(mut body): JsonObject,
) -> Result<(StatusCode, Json<ProviderView>), Problem> {
    caller.require(Role::Admin)?;
    let kind = take_kind(&mut body)?;
    let spec = validated(spec_of_kind(&kind, body)?)?;
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
    request_body(content = ProviderSpecDoc, description = "Any subset of the fields of the provider's kind (RFC 7396 merge patch; null removes an optional field); `kind` cannot change"),
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
    let kind = current.spec.kind();
    match patch.as_object_mut().and_then(|o| o.remove("kind")) {
        None => {}
        Some(serde_json::Value::String(k)) if k == kind => {}
        Some(_) => {
            return Err(Problem::invalid(vec![FieldError::new(
                "kind",
                format!("cannot change (this provider is `{kind}`); create a new provider instead"),
            )]))
        }
    }
    let secret_field = current.spec.secret_field();
    let secret = match patch.as_object_mut().and_then(|o| o.remove(secret_field)) {
        None => SecretChange::Keep,
        Some(serde_json::Value::Null) => SecretChange::Clear,
        Some(serde_json::Value::String(p)) if p == PASSWORD_MASK => SecretChange::Keep,
        Some(serde_json::Value::String(p)) => SecretChange::Set(p),
        Some(_) => {
            return Err(Problem::invalid(vec![FieldError::new(
                secret_field,
                "must be a string or null",
            )]))
        }
    };
    let mut document = serde_json::to_value(&current.spec).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?;
    if let Some(fields) = document.as_object_mut() {
        fields.remove("kind");
    }
    merge_patch(&mut document, patch);
    let mut spec = spec_of_kind(kind, document)?;
    if matches!(secret, SecretChange::Keep) && current.has_secret {
        if let Some(moved) = secret_destination_change(&current.spec, &spec) {
            return Err(Problem::invalid(vec![FieldError::new(
                secret_field,
                format!("must be given again when `{moved}` changes"),
            )]));
        }
    }
    // Validate the provider as it will be, secret included (a password needs a username; an
    // account needs its token).
    spec.set_secret(match &secret {
        SecretChange::Keep if current.has_secret => Some(PASSWORD_MASK.into()),
        SecretChange::Set(p) => Some(p.clone()),
        _ => None,
    });
    let spec = validated(spec)?;
    let provider = state
        .store
        .update_provider(&caller.scope, &caller.actor, &id, &spec, &secret)
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

//! `/v1/providers`: the workspace's SIP trunks (`"kind": "sip_trunk"`, the default) and Twilio
//! accounts (`"kind": "twilio"`). Every member reads them, so that editors and viewers see which
//! trunks carry their calls and how healthy they are; only admins and owners create, change or
//! delete them. A secret — a trunk's `password`, an account's `auth_token` — goes in and never
//! comes back out, to anyone: reads show `"********"` when one is stored. `PATCH` is a merge patch that keeps the stored secret unless the body gives a new
//! one (`null` removes it; the mask itself, sent back unchanged, keeps it); a provider's kind
//! cannot change. A PATCH that changes where the stored secret is sent — a trunk's `host`,
//! `port`, `outbound_proxy` or `registration.registrar`, an account's `api_base_url` — must give the secret again (a 422 naming it otherwise),
//! so that nobody who never saw the secret can have it sent to a host of their choosing.
//! A trunk set to register shows `registration: {"state", "expires_at", "last_error"}` as the
//! online edges last reported it in their heartbeats (`Store::provider_registrations`).

use axum::http::StatusCode;
use serde::Serialize;

use super::auth::Caller;
use super::crud::{checked, crud_routes, store_writes, Resource};
use super::json::{merge_patch, strict_from_value};
use super::openapi::ProviderSpecDoc;
use super::problem::Problem;
use super::provider_health::ProviderHealth;
use super::{AppState, List};
use crate::store::{PagePosition, Provider, SecretChange, StoreError};
use freya_shared::ids::rfc3339;
use freya_shared::model::{FieldError, ProviderSpec};

/// What a stored secret reads as.
pub(super) const PASSWORD_MASK: &str = "********";

/// A provider as the API shows it: its spec, tagged with `kind`, its secret masked.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ProviderView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::ProviderSpecDoc)]
    spec: ProviderSpec,
    created_at: String,
    updated_at: String,
    /// The registration with the registrar, for a trunk set to register that an online edge
    /// registers; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    registration: Option<RegistrationView>,
    /// What the edges' OPTIONS pings say about a SIP trunk (`provider_health.rs`).
    health: ProviderHealth,
}

/// A trunk's registration (RFC 3261 section 10) as the edges report it, so an operator sees
/// whether calls to the registered contact can reach Freya.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RegistrationView {
    /// `registering`, `registered`, `failed` (retried with back-off) or `stopped` (the
    /// registrar refused for good, e.g. 403).
    state: String,
    /// When the binding lapses unless refreshed (RFC 3339); absent when not registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// Why the last attempt failed (the registrar's answer, a timeout).
    last_error: Option<String>,
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
            registration: p.registration.map(|r| RegistrationView {
                state: r.state,
                expires_at: r
                    .expires_at_ms
                    .map(|ms| rfc3339(i64::try_from(ms).unwrap_or(i64::MAX))),
                last_error: r.last_error,
            }),
            health: ProviderHealth::unknown(),
        }
    }
}

/// `providers` with the registration each trunk's edges report.
async fn with_registrations(
    state: &AppState,
    mut providers: Vec<Provider>,
) -> Result<Vec<Provider>, StoreError> {
    let wants =
        |p: &Provider| matches!(&p.spec, ProviderSpec::SipTrunk(t) if t.registration.is_some());
    if !providers.iter().any(wants) {
        return Ok(providers);
    }
    let mut reports = state
        .store
        .provider_registrations(state.offline_after_ms)
        .await?;
    for provider in providers.iter_mut().filter(|p| wants(p)) {
        provider.registration = reports.remove(&provider.id);
    }
    Ok(providers)
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
            } else if registrar(old) != registrar(new) {
                // REGISTERs answer the registrar's challenges with the password's digest.
                Some("registration.registrar")
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

/// Where a trunk's REGISTERs go, when it registers elsewhere than its `host`.
fn registrar(trunk: &freya_shared::model::SipTrunkSpec) -> Option<&str> {
    trunk.registration.as_ref()?.registrar.as_deref()
}

/// Providers as a [`Resource`]: a body's `kind` picks the spec; the secret is kept apart from
/// the spec (see the module's documentation).
pub(super) struct Providers;

impl Resource for Providers {
    type Spec = ProviderSpec;
    type Stored = Provider;
    type View = ProviderView;
    type Change = (ProviderSpec, SecretChange);

    fn view(state: &AppState, stored: Provider) -> ProviderView {
        let mut view = ProviderView::from(stored);
        let from_edges = matches!(view.spec, ProviderSpec::SipTrunk(_));
        view.health = ProviderHealth::of(&state.trunk_health, &view.id, from_edges);
        view
    }

    fn parsed(mut body: serde_json::Value) -> Result<ProviderSpec, Problem> {
        if !body.is_object() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "Malformed JSON",
                "the body must be a JSON object",
            ));
        }
        let kind = take_kind(&mut body)?;
        spec_of_kind(&kind, body)
    }

    async fn validated(
        _: &AppState,
        _: &Caller,
        spec: ProviderSpec,
    ) -> Result<ProviderSpec, Problem> {
        let errors = spec.validate();
        checked(spec, errors)
    }

    async fn patched(
        state: &AppState,
        caller: &Caller,
        current: Provider,
        mut patch: serde_json::Value,
    ) -> Result<(ProviderSpec, SecretChange), Problem> {
        let kind = current.spec.kind();
        match patch.as_object_mut().and_then(|o| o.remove("kind")) {
            None => {}
            Some(serde_json::Value::String(k)) if k == kind => {}
            Some(_) => {
                return Err(Problem::invalid(vec![FieldError::new(
                    "kind",
                    format!(
                        "cannot change (this provider is `{kind}`); create a new provider instead"
                    ),
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
        // Validate the provider as it will be, secret included (a password needs a username;
        // an account needs its token).
        spec.set_secret(match &secret {
            SecretChange::Keep if current.has_secret => Some(PASSWORD_MASK.into()),
            SecretChange::Set(p) => Some(p.clone()),
            _ => None,
        });
        Ok((Self::validated(state, caller, spec).await?, secret))
    }

    async fn fetch(state: &AppState, caller: &Caller, id: &str) -> Result<Provider, StoreError> {
        let provider = state.store.scoped_get(&caller.scope, id).await?;
        let mut one = with_registrations(state, vec![provider]).await?;
        one.pop().ok_or(StoreError::NotFound)
    }

    async fn page(
        state: &AppState,
        caller: &Caller,
        after: Option<&PagePosition>,
        limit: i64,
    ) -> Result<(Vec<Provider>, bool), StoreError> {
        let (page, more) = state.store.scoped_list(&caller.scope, after, limit).await?;
        Ok((with_registrations(state, page).await?, more))
    }

    store_writes!(insert: ProviderSpec => Provider, create_provider);

    async fn update(
        state: &AppState,
        caller: &Caller,
        id: &str,
        (spec, secret): (ProviderSpec, SecretChange),
    ) -> Result<Provider, StoreError> {
        state
            .store
            .update_provider(&caller.scope, &caller.actor, id, &spec, &secret)
            .await
    }

    store_writes!(remove: delete_provider);
}

crud_routes! {
    resource: Providers,
    view: ProviderView,
    spec_doc: ProviderSpecDoc,
    path: "/v1/providers",
    item_path: "/v1/providers/{id}",
    tag: "providers",
    create: "Create a provider: a SIP trunk or a Twilio account (admin)",
    list: "The workspace's providers",
    listed: "A page of providers",
    get: "One provider",
    got: "The provider",
    id: "The provider's id",
    patch: "Change a provider with a JSON merge patch (admin)",
    patch_body: "Any subset of the fields of the provider's kind (RFC 7396 merge patch; null removes an optional field); `kind` cannot change",
    delete: "Delete a provider (admin)",
}

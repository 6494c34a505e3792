//! `/v1/webhooks`: subscriptions to call events, for admins and owners — `{url, events[],
//! secret}`; the secret signs every delivery (see `crate::webhooks`) and is never shown again.
//! Each subscription keeps a delivery log (`GET /v1/webhooks/{id}/deliveries`), and any delivery
//! can be sent again (`POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver`).

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::crud::{crud_routes, store_writes, Resource};
use super::json::{merge_patch, strict_from_value};
use super::problem::Problem;
use super::query::{bad_parameter, page_limit, StrictQuery};
use super::resource_id::{ResourceId, ResourceIds};
use super::{AppState, List};
use crate::store::{NewWebhook, Webhook, WebhookDelivery, WEBHOOK_EVENTS};
use freya_edge::egress::is_public;
use freya_shared::ids::{is_uuid, rfc3339};
use freya_shared::model::FieldError;

/// The body of `POST /v1/webhooks`, and of a `PATCH` after merging.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookSpec {
    /// Where deliveries are POSTed (`https://...`).
    pub url: String,
    /// Which events to send: names from [`WEBHOOK_EVENTS`], or `*` for all.
    pub events: Vec<String>,
    /// The HMAC key deliveries are signed with; 16 to 256 characters. Required on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A subscription as the API shows it (never its secret).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WebhookView {
    id: String,
    workspace_id: String,
    url: String,
    events: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            workspace_id: w.workspace_id,
            url: w.url,
            events: w.events,
            created_at: rfc3339(w.created_at_ms),
            updated_at: rfc3339(w.updated_at_ms),
        }
    }
}

/// One entry of a delivery log.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeliveryView {
    id: String,
    webhook_id: String,
    event_id: String,
    event: String,
    /// `pending`, `delivering`, `delivered` or `failed` (given up).
    status: String,
    attempts: i64,
    next_attempt_at: Option<String>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(d: WebhookDelivery) -> Self {
        let waiting = d.status == "pending";
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event: d.event_kind,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: waiting.then(|| rfc3339(d.next_attempt_at_ms)),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at_ms),
            delivered_at: d.delivered_at_ms.map(rfc3339),
        }
    }
}

/// Whether `host` (as a URL spells it: IPv6 in brackets) names this machine or a private network.
fn is_private_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return !is_public(ip);
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local")
}

/// Every problem with `spec`, by field; `creating` demands a secret.
fn check(spec: &WebhookSpec, creating: bool, allow_private: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match reqwest::Url::parse(&spec.url) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            errors.push(FieldError::new("url", "must be an http:// or https:// URL"));
        }
        Ok(url) => match url.host_str() {
            None => errors.push(FieldError::new("url", "must name a host")),
            Some(host) if !allow_private && is_private_host(host) => {
                errors.push(FieldError::new(
                    "url",
                    "must not target loopback or private addresses \
                     (webhooks.allow_private_targets is off)",
                ));
            }
            Some(_) if !url.username().is_empty() || url.password().is_some() => {
                errors.push(FieldError::new("url", "must not carry credentials"));
            }
            Some(_) => {}
        },
        Err(e) => errors.push(FieldError::new("url", format!("not a URL: {e}"))),
    }
    if spec.url.len() > 2_048 {
        errors.push(FieldError::new("url", "must be at most 2048 characters"));
    }
    if spec.events.is_empty() {
        errors.push(FieldError::new("events", "must name at least one event"));
    }
    for (i, event) in spec.events.iter().enumerate() {
        if event != "*" && !WEBHOOK_EVENTS.contains(&event.as_str()) {
            errors.push(FieldError::new(
                format!("events[{i}]"),
                format!("`{event}` is not one of *, {}", WEBHOOK_EVENTS.join(", ")),
            ));
        }
    }
    match &spec.secret {
        None if creating => errors.push(FieldError::new("secret", "is required")),
        Some(s) if !(16..=256).contains(&s.chars().count()) => {
            errors.push(FieldError::new("secret", "must be 16 to 256 characters"));
        }
        _ => {}
    }
    errors
}

fn validated(spec: WebhookSpec, creating: bool, state: &AppState) -> Result<WebhookSpec, Problem> {
    let errors = check(&spec, creating, state.allow_private_webhook_targets);
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(Problem::invalid(errors))
    }
}

fn new_webhook(spec: WebhookSpec) -> NewWebhook {
    NewWebhook {
        url: spec.url,
        events: spec.events,
        secret: spec.secret,
    }
}

/// Subscriptions as a [`Resource`]: the secret is required on create and never read back; a
/// patch that leaves it out keeps the stored one.
pub(super) struct Webhooks;

impl Resource for Webhooks {
    type Spec = WebhookSpec;
    type Stored = Webhook;
    type View = WebhookView;
    type Change = WebhookSpec;

    async fn validated(
        state: &AppState,
        _: &Caller,
        spec: WebhookSpec,
    ) -> Result<WebhookSpec, Problem> {
        validated(spec, true, state)
    }

    async fn patched(
        state: &AppState,
        _: &Caller,
        current: Webhook,
        patch: serde_json::Value,
    ) -> Result<WebhookSpec, Problem> {
        // The stored secret is not in the document: absent from the patch, it is kept.
        let mut document = serde_json::json!({"url": current.url, "events": current.events});
        merge_patch(&mut document, patch);
        validated(strict_from_value(document)?, false, state)
    }

    store_writes!(WebhookSpec => Webhook, create_webhook, update_webhook, delete_webhook, new_webhook);
}

crud_routes! {
    resource: Webhooks,
    view: WebhookView,
    spec_doc: WebhookSpec,
    path: "/v1/webhooks",
    item_path: "/v1/webhooks/{id}",
    tag: "webhooks",
    create: "Subscribe a URL to events (admin)",
    list: "The workspace's subscriptions (admin)",
    listed: "A page of subscriptions",
    get: "One subscription (admin)",
    got: "The subscription",
    id: "The subscription's id",
    patch: "Change a subscription with a merge patch; the secret is kept unless given (admin)",
    patch_body: "Any subset of the fields",
    delete: "Delete a subscription and its deliveries (admin)",
}

/// The parameters of `GET /v1/webhooks/{id}/deliveries`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveryQuery {
    cursor: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "The subscription's delivery log, newest first (admin)",
    params(("id" = String, Path, description = "The subscription's id"), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries", body = List<DeliveryView>))
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
    StrictQuery(q): StrictQuery<DeliveryQuery>,
) -> Result<Json<List<DeliveryView>>, Problem> {
    if q.cursor.as_deref().is_some_and(|c| !is_uuid(c)) {
        return Err(bad_parameter("cursor", "not a cursor from a previous page"));
    }
    let (page, next) = state
        .store
        .webhook_deliveries(
            &caller.scope,
            &id,
            q.cursor.as_deref(),
            page_limit(q.limit)?,
        )
        .await?;
    Ok(Json(List {
        data: page.into_iter().map(Into::into).collect(),
        next_cursor: next,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks",
    summary = "Send a delivery again, now (admin)",
    params(("id" = String, Path, description = "The subscription's id"), ("delivery_id" = String, Path, description = "The delivery's id")),
    responses((status = 202, description = "Queued again", body = DeliveryView))
)]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    ResourceIds(id, delivery_id): ResourceIds,
) -> Result<(StatusCode, Json<DeliveryView>), Problem> {
    let delivery = state
        .store
        .redeliver(&caller.scope, &caller.actor, &id, &delivery_id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> WebhookSpec {
        WebhookSpec {
            url: url.into(),
            events: vec!["call.ended".into()],
            secret: Some("0123456789abcdef".into()),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert_eq!(fields(check(&spec(url), true, false)), ["url"], "{url}");
            assert!(check(&spec(url), true, true).is_empty(), "{url}");
        }
        assert!(check(&spec("https://hooks.example.com/freya"), true, false).is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = WebhookSpec {
            url: "ftp://example.com".into(),
            events: vec!["call.ended".into(), "call.exploded".into()],
            secret: Some("short".into()),
        };
        assert_eq!(
            fields(check(&bad, true, false)),
            ["url", "events[1]", "secret"]
        );
        let no_secret = WebhookSpec {
            secret: None,
            ..spec("https://example.com")
        };
        assert_eq!(fields(check(&no_secret, true, false)), ["secret"]);
        assert!(check(&no_secret, false, false).is_empty());
    }
}

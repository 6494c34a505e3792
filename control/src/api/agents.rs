//! `/v1/agents`: create, list, read and patch the agents of the caller's workspace. The agent's
//! secrets (the `api_key` of its `stt`/`llm`/`tts` providers, its `tool_secret`) read back as
//! `********`; a PATCH that leaves them out, or sends the mask back, keeps the stored ones —
//! except that a PATCH changing where a provider's stored `api_key` is sent (its `base_url` or
//! `provider`) must give that key again, or a caller who can edit the agent but never saw the
//! key could have it sent to a host of their choosing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::json::{merge_patch, strict_from_value, JsonObject, StrictJson};
use super::openapi::AgentSpecDoc;
use super::problem::Problem;
use super::resource_id::ResourceId;
use super::{AppState, List};
use crate::store::{Agent, Role};
use freya_shared::ids::rfc3339;
use freya_shared::model::{AgentSpec, FieldError};

/// An agent as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::AgentSpecDoc)]
    spec: AgentSpec,
    created_at: String,
    updated_at: String,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id,
            workspace_id: a.workspace_id,
            spec: masked(a.spec),
            created_at: rfc3339(a.created_at_ms),
            updated_at: rfc3339(a.updated_at_ms),
        }
    }
}

/// What a stored secret reads as.
const SECRET_MASK: &str = "********";

/// `spec` with its secrets replaced by the mask.
fn masked(mut spec: AgentSpec) -> AgentSpec {
    for provider in [
        &mut spec.stt,
        &mut spec.llm,
        &mut spec.llm_fallback,
        &mut spec.tts,
    ]
    .into_iter()
    .flatten()
    {
        if provider.api_key.is_some() {
            provider.api_key = Some(SECRET_MASK.into());
        }
    }
    if spec.tool_secret.is_some() {
        spec.tool_secret = Some(SECRET_MASK.into());
    }
    spec
}

/// `spec` (patched) with every secret that was sent back as the mask restored from `current`.
fn unmasked(mut spec: AgentSpec, current: &AgentSpec) -> AgentSpec {
    for (patched, stored) in [
        (&mut spec.stt, &current.stt),
        (&mut spec.llm, &current.llm),
        (&mut spec.llm_fallback, &current.llm_fallback),
        (&mut spec.tts, &current.tts),
    ] {
        if let Some(p) = patched {
            if p.api_key.as_deref() == Some(SECRET_MASK) {
                p.api_key = stored.as_ref().and_then(|s| s.api_key.clone());
            }
        }
    }
    if spec.tool_secret.as_deref() == Some(SECRET_MASK) {
        spec.tool_secret = current.tool_secret.clone();
    }
    spec
}

/// One error for each provider section of `spec` (patched and unmasked) that would send the key
/// stored in `current` somewhere else — another `base_url` or `provider` — without `patch`
/// giving the key again.
fn keys_sent_elsewhere(
    patch: &serde_json::Value,
    spec: &AgentSpec,
    current: &AgentSpec,
) -> Vec<FieldError> {
    let sections = [
        ("stt", &spec.stt, &current.stt),
        ("llm", &spec.llm, &current.llm),
        ("llm_fallback", &spec.llm_fallback, &current.llm_fallback),
        ("tts", &spec.tts, &current.tts),
    ];
    let mut errors = Vec::new();
    for (name, patched, stored) in sections {
        let (Some(patched), Some(stored)) = (patched, stored) else {
            continue;
        };
        let given = patch[name]["api_key"]
            .as_str()
            .is_some_and(|key| key != SECRET_MASK);
        if given || stored.api_key.is_none() || patched.api_key != stored.api_key {
            continue;
        }
        let moved = if patched.base_url != stored.base_url {
            "base_url"
        } else if patched.provider != stored.provider {
            "provider"
        } else {
            continue;
        };
        errors.push(FieldError::new(
            format!("{name}.api_key"),
            format!("must be given again when `{name}.{moved}` changes"),
        ));
    }
    errors
}

fn validated(spec: AgentSpec) -> Result<AgentSpec, Problem> {
    let errors = spec.validate();
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(Problem::invalid(errors))
    }
}

#[utoipa::path(
    post,
    path = "/v1/agents",
    tag = "agents",
    summary = "Create a agent (editor)",
    request_body = AgentSpecDoc,
    responses((status = 201, description = "Created", body = AgentView))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(spec): StrictJson<AgentSpec>,
) -> Result<(StatusCode, Json<AgentView>), Problem> {
    caller.require(Role::Editor)?;
    let spec = validated(spec)?;
    let agent = state
        .store
        .create_agent(&caller.scope, &caller.actor, &spec)
        .await?;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    summary = "The workspace's agents",

    responses((status = 200, description = "All of them", body = List<AgentView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<AgentView>>, Problem> {
    let agents = state.store.agents(&caller.scope).await?;
    Ok(Json(List::of(agents.into_iter().map(Into::into).collect())))
}

#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    tag = "agents",
    summary = "One agent",
    params(("id" = String, Path, description = "The agent's id")),
    responses((status = 200, description = "The agent", body = AgentView))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<Json<AgentView>, Problem> {
    Ok(Json(state.store.agent(&caller.scope, &id).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/agents/{id}",
    tag = "agents",
    summary = "Change a agent with a JSON merge patch (editor)",
    params(("id" = String, Path, description = "The agent's id")),
    request_body(content = AgentSpecDoc, description = "Any subset of the fields (RFC 7396 merge patch; null removes an optional field)"),
    responses((status = 200, description = "Changed", body = AgentView))
)]
pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
    JsonObject(patch): JsonObject,
) -> Result<Json<AgentView>, Problem> {
    caller.require(Role::Editor)?;
    let current = state.store.agent(&caller.scope, &id).await?;
    let mut document = serde_json::to_value(&current.spec).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?;
    let sent = patch.clone();
    merge_patch(&mut document, patch);
    let spec = unmasked(strict_from_value(document)?, &current.spec);
    let moved = keys_sent_elsewhere(&sent, &spec, &current.spec);
    if !moved.is_empty() {
        return Err(Problem::invalid(moved));
    }
    let spec = validated(spec)?;
    let agent = state
        .store
        .update_agent(&caller.scope, &caller.actor, &id, &spec)
        .await?;
    Ok(Json(agent.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/agents/{id}",
    tag = "agents",
    summary = "Delete a agent (editor)",
    params(("id" = String, Path, description = "The agent's id")),
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
        .delete_agent(&caller.scope, &caller.actor, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

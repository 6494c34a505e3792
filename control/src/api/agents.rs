//! `/v1/agents`: create, list, read and patch the agents of the caller's workspace.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::json::{merge_patch, strict_from_value, JsonObject, StrictJson};
use super::problem::Problem;
use super::{AppState, List};
use crate::store::{Agent, Role};
use freya_shared::ids::{is_uuid, rfc3339};
use freya_shared::model::AgentSpec;

/// An agent as the API shows it.
#[derive(Serialize)]
pub struct AgentView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    spec: AgentSpec,
    created_at: String,
    updated_at: String,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id,
            workspace_id: a.workspace_id,
            spec: a.spec,
            created_at: rfc3339(a.created_at_ms),
            updated_at: rfc3339(a.updated_at_ms),
        }
    }
}

fn validated(spec: AgentSpec) -> Result<AgentSpec, Problem> {
    let errors = spec.validate();
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(Problem::invalid(errors))
    }
}

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

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<AgentView>>, Problem> {
    let agents = state.store.agents(&caller.scope).await?;
    Ok(Json(List::of(agents.into_iter().map(Into::into).collect())))
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, Problem> {
    if !is_uuid(&id) {
        return Err(Problem::not_found());
    }
    Ok(Json(state.store.agent(&caller.scope, &id).await?.into()))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(patch): JsonObject,
) -> Result<Json<AgentView>, Problem> {
    caller.require(Role::Editor)?;
    if !is_uuid(&id) {
        return Err(Problem::not_found());
    }
    let current = state.store.agent(&caller.scope, &id).await?;
    let mut document = serde_json::to_value(&current.spec).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            e.to_string(),
        )
    })?;
    merge_patch(&mut document, patch);
    let spec = validated(strict_from_value(document)?)?;
    let agent = state
        .store
        .update_agent(&caller.scope, &caller.actor, &id, &spec)
        .await?;
    Ok(Json(agent.into()))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(Role::Editor)?;
    if !is_uuid(&id) {
        return Err(Problem::not_found());
    }
    state
        .store
        .delete_agent(&caller.scope, &caller.actor, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `/v1/workspaces`: a person creates workspaces (becoming their owner) and lists their own;
//! members of a workspace read it, admins rename it and manage its members, owners delete it.
//! Nobody adds, changes or removes a member above their own role or grants a role above it
//! (so only an owner makes or unmakes an owner), and the last owner stays.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Person};
use super::json::StrictJson;
use super::problem::Problem;
use super::resource_id::ResourceIds;
use super::{AppState, List};
use crate::store::{Member, Retention, Role, Workspace, MAX_RETENTION_DAYS};
use freya_shared::ids::rfc3339;
use freya_shared::model::FieldError;

/// A workspace as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WorkspaceView {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    created_at: String,
    updated_at: String,
    /// How long its call data is kept.
    retention: RetentionView,
}

/// A workspace's retention windows in days; `null` keeps that data forever. Enforced by the
/// control plane's retention task every few minutes: recordings and call records count from
/// the call's end, transcripts (every event carrying speech, tool arguments, digits or
/// workflow values) from the event.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RetentionView {
    recordings_days: Option<i64>,
    transcripts_days: Option<i64>,
    calls_days: Option<i64>,
}

impl From<Retention> for RetentionView {
    fn from(r: Retention) -> Self {
        Self {
            recordings_days: r.recordings_days,
            transcripts_days: r.transcripts_days,
            calls_days: r.calls_days,
        }
    }
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        Self {
            id: w.id,
            name: w.name,
            role: w.role,
            created_at: rfc3339(w.created_at_ms),
            updated_at: rfc3339(w.updated_at_ms),
            retention: w.retention.into(),
        }
    }
}

/// A member as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct MemberView {
    user_id: String,
    email: String,
    name: String,
    role: Role,
    added_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            added_at: rfc3339(m.created_at_ms),
        }
    }
}

/// `POST /v1/workspaces` and `PATCH /v1/workspaces/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct WorkspaceBody {
    name: String,
}

/// `PATCH /v1/workspaces/{id}`: a merge patch; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkspacePatch {
    name: Option<String>,
    /// Any of `recordings_days`, `transcripts_days`, `calls_days`: whole days from 1 to 36500,
    /// or `null` to keep forever; windows not named stay as they are.
    #[schema(value_type = Option<Object>)]
    retention: Option<serde_json::Value>,
}

/// `current` with the windows `patch` names changed, or every problem, by field.
fn patched_retention(
    mut current: Retention,
    patch: &serde_json::Value,
) -> Result<Retention, Vec<FieldError>> {
    let Some(fields) = patch.as_object() else {
        return Err(vec![FieldError::new(
            "retention",
            "must be an object of `recordings_days`, `transcripts_days`, `calls_days`",
        )]);
    };
    let mut errors = Vec::new();
    for (key, value) in fields {
        let slot = match key.as_str() {
            "recordings_days" => &mut current.recordings_days,
            "transcripts_days" => &mut current.transcripts_days,
            "calls_days" => &mut current.calls_days,
            _ => {
                errors.push(FieldError::new(
                    format!("retention.{key}"),
                    "unknown field: use recordings_days, transcripts_days or calls_days",
                ));
                continue;
            }
        };
        match value {
            serde_json::Value::Null => *slot = None,
            v => match v.as_i64().filter(|d| (1..=MAX_RETENTION_DAYS).contains(d)) {
                Some(days) => *slot = Some(days),
                None => errors.push(FieldError::new(
                    format!("retention.{key}"),
                    format!(
                        "must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null to keep forever"
                    ),
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok(current)
    } else {
        Err(errors)
    }
}

/// `POST /v1/workspaces/{id}/members`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewMember {
    email: String,
    role: Role,
}

/// `PATCH /v1/workspaces/{id}/members/{user_id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct MemberPatch {
    role: Role,
}

fn valid_name(name: String) -> Result<String, Problem> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 {
        return Err(Problem::invalid(vec![FieldError::new(
            "name",
            "must be 1-100 characters",
        )]));
    }
    Ok(trimmed.to_owned())
}

#[utoipa::path(
    post,
    path = "/v1/workspaces",
    tag = "workspaces",
    summary = "Create a workspace (the caller becomes its owner)",
    request_body = WorkspaceBody,
    responses((status = 201, description = "Created", body = WorkspaceView))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    person: Person,
    StrictJson(body): StrictJson<WorkspaceBody>,
) -> Result<(StatusCode, Json<WorkspaceView>), Problem> {
    let name = valid_name(body.name)?;
    let workspace = state
        .store
        .create_owned_workspace(&person.user_id, &person.actor(), &name)
        .await?;
    Ok((StatusCode::CREATED, Json(workspace.into())))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces",
    tag = "workspaces",
    summary = "The caller's workspaces",

    responses((status = 200, description = "Workspaces", body = List<WorkspaceView>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    person: Person,
) -> Result<Json<List<WorkspaceView>>, Problem> {
    let workspaces = state.store.workspaces_of(&person.user_id).await?;
    Ok(Json(List::of(workspaces)))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    summary = "One workspace",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    responses((status = 200, description = "The workspace", body = WorkspaceView))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkspaceView>, Problem> {
    let mut workspace = state.store.workspace(&caller.scope).await?;
    workspace.role = Some(caller.role);
    Ok(Json(workspace.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    summary = "Rename a workspace or change its retention windows (admin)",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    request_body = WorkspacePatch,
    responses((status = 200, description = "Changed", body = WorkspaceView))
)]
pub(super) async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(body): StrictJson<WorkspacePatch>,
) -> Result<Json<WorkspaceView>, Problem> {
    let name = body.name.map(valid_name).transpose()?;
    if let Some(patch) = &body.retention {
        let current = state.store.workspace(&caller.scope).await?.retention;
        let retention = patched_retention(current, patch).map_err(Problem::invalid)?;
        state
            .store
            .set_workspace_retention(&caller.scope, &caller.actor, retention)
            .await?;
    }
    let mut workspace = match name {
        Some(name) => {
            state
                .store
                .rename_workspace(&caller.scope, &caller.actor, &name)
                .await?
        }
        None => state.store.workspace(&caller.scope).await?,
    };
    workspace.role = Some(caller.role);
    Ok(Json(workspace.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    summary = "Delete a workspace and everything in it (owner)",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    responses((status = 204, description = "Deleted"))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, Problem> {
    state
        .store
        .delete_workspace(&caller.scope, &caller.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/members",
    tag = "members",
    summary = "The workspace's members",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    responses((status = 200, description = "Members", body = List<MemberView>))
)]
pub(super) async fn members(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<MemberView>>, Problem> {
    let members = state.store.members(&caller.scope).await?;
    Ok(Json(List::of(members)))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/members",
    tag = "members",
    summary = "Add a user by email with a role (admin)",
    params(("workspace_id" = String, Path, description = "The workspace's id")),
    request_body = NewMember,
    responses((status = 201, description = "Added", body = MemberView))
)]
pub(super) async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(body): StrictJson<NewMember>,
) -> Result<(StatusCode, Json<MemberView>), Problem> {
    if body.role > caller.role {
        return Err(Problem::forbidden(format!(
            "a `{}` cannot grant the `{}` role",
            caller.role.as_str(),
            body.role.as_str()
        )));
    }
    let member = state
        .store
        .add_member_by_email(&caller.scope, &caller.actor, body.email.trim(), body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(member.into())))
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace_id}/members/{user_id}",
    tag = "members",
    summary = "Change a member's role (admin; owner for owners)",
    params(("workspace_id" = String, Path, description = "The workspace's id"), ("user_id" = String, Path, description = "The member's user id")),
    request_body = MemberPatch,
    responses((status = 200, description = "Changed", body = MemberView))
)]
pub(super) async fn change_member(
    State(state): State<AppState>,
    caller: Caller,
    ResourceIds(_, user_id): ResourceIds,
    StrictJson(body): StrictJson<MemberPatch>,
) -> Result<Json<MemberView>, Problem> {
    let member = state
        .store
        .change_member_role(
            &caller.scope,
            &caller.actor,
            &user_id,
            body.role,
            caller.role,
        )
        .await?;
    Ok(Json(member.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/members/{user_id}",
    tag = "members",
    summary = "Remove a member (admin; owner for owners)",
    params(("workspace_id" = String, Path, description = "The workspace's id"), ("user_id" = String, Path, description = "The member's user id")),
    responses((status = 204, description = "Removed"))
)]
pub(super) async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ResourceIds(_, user_id): ResourceIds,
) -> Result<StatusCode, Problem> {
    state
        .store
        .remove_member(&caller.scope, &caller.actor, &user_id, caller.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

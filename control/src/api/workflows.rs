//! `/v1/workflows`: call flows of the caller's workspace. A workflow is a draft (created,
//! listed, read, merge-patched, deleted) validated whole on every write — every problem at once,
//! each naming its node and field — against the workspace's agents; `publish` freezes the draft
//! as the next immutable version, which is what phone numbers route to. `validate` checks a
//! definition without storing it. Viewers read and validate; editors change and publish.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::crud::{crud_routes, merged, store_writes, Resource};
use super::json::StrictJson;
use super::openapi::{ValidationResultDoc, WorkflowDoc};
use super::problem::Problem;
use super::resource_id::ResourceId;
use super::{AppState, List};
use crate::store::{StoredWorkflow, WorkflowVersion};
use freya_shared::ids::{is_uuid, rfc3339};
use freya_shared::workflow::{validate, ValidationContext, Workflow};

/// A workflow (its draft) as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WorkflowView {
    id: String,
    workspace_id: String,
    #[serde(flatten)]
    #[schema(value_type = super::openapi::WorkflowDoc)]
    definition: Workflow,
    /// The latest published version; `null` until the first publication.
    latest_version: Option<u32>,
    created_at: String,
    updated_at: String,
}

impl From<StoredWorkflow> for WorkflowView {
    fn from(w: StoredWorkflow) -> Self {
        Self {
            id: w.id,
            workspace_id: w.workspace_id,
            definition: w.definition,
            latest_version: (w.latest_version > 0).then_some(w.latest_version),
            created_at: rfc3339(w.created_at_ms),
            updated_at: rfc3339(w.updated_at_ms),
        }
    }
}

/// A published version as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WorkflowVersionView {
    workflow_id: String,
    version: u32,
    /// The definition exactly as it was published.
    #[schema(value_type = super::openapi::WorkflowDoc)]
    definition: Workflow,
    published_by: String,
    published_at: String,
}

impl From<WorkflowVersion> for WorkflowVersionView {
    fn from(v: WorkflowVersion) -> Self {
        Self {
            workflow_id: v.workflow_id,
            version: v.version,
            definition: v.definition,
            published_by: v.published_by,
            published_at: rfc3339(v.published_at_ms),
        }
    }
}

/// The answer of a successful validation.
#[derive(Serialize)]
pub(super) struct Valid {
    valid: bool,
}

/// `definition` checked whole against the workspace's agents: every problem, as one 422.
async fn validated(
    state: &AppState,
    caller: &Caller,
    definition: Workflow,
) -> Result<Workflow, Problem> {
    let agents = state.store.agent_ids(&caller.scope).await?;
    match validate(&definition, &ValidationContext::with_agents(agents)) {
        Ok(_) => Ok(definition),
        Err(errors) => Err(Problem::invalid_workflow(errors)),
    }
}

/// Workflows (their drafts) as a [`Resource`]: validated whole against the workspace's agents
/// on every write.
pub(super) struct Workflows;

impl Resource for Workflows {
    type Spec = Workflow;
    type Stored = StoredWorkflow;
    type View = WorkflowView;
    type Change = Workflow;

    async fn validated(
        state: &AppState,
        caller: &Caller,
        definition: Workflow,
    ) -> Result<Workflow, Problem> {
        validated(state, caller, definition).await
    }

    async fn patched(
        state: &AppState,
        caller: &Caller,
        current: StoredWorkflow,
        patch: serde_json::Value,
    ) -> Result<Workflow, Problem> {
        validated(state, caller, merged(&current.definition, patch)?).await
    }

    store_writes!(Workflow => StoredWorkflow, create_workflow, update_workflow, delete_workflow);
}

crud_routes! {
    resource: Workflows,
    view: WorkflowView,
    spec_doc: WorkflowDoc,
    path: "/v1/workflows",
    item_path: "/v1/workflows/{id}",
    tag: "workflows",
    create: "Create a draft workflow (editor)",
    list: "The workspace's workflows, oldest first",
    listed: "A page of workflows",
    get: "One workflow (its draft)",
    got: "The workflow",
    id: "The workflow's id",
    patch: "Change a draft with a JSON merge patch (editor)",
    patch_body: "Any subset of the fields (RFC 7396 merge patch: `nodes` is replaced whole)",
    delete: "Delete a workflow and its versions (editor); refused while a number routes to it",
}

#[utoipa::path(
    post,
    path = "/v1/workflows/validate",
    tag = "workflows",
    summary = "Check a workflow without storing it: every problem at once",
    request_body = WorkflowDoc,
    responses(
        (status = 200, description = "Valid", body = ValidationResultDoc),
        (status = 422, description = "Invalid: `errors: [{node, field, message}]`", body = super::openapi::ProblemDoc)
    )
)]
pub(super) async fn check(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(definition): StrictJson<Workflow>,
) -> Result<Json<Valid>, Problem> {
    validated(&state, &caller, definition).await?;
    Ok(Json(Valid { valid: true }))
}

#[utoipa::path(
    post,
    path = "/v1/workflows/{id}/publish",
    tag = "workflows",
    summary = "Publish the draft as the next immutable version (editor)",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 201, description = "Published", body = WorkflowVersionView))
)]
pub(super) async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<(StatusCode, Json<WorkflowVersionView>), Problem> {
    let draft = state.store.workflow(&caller.scope, &id).await?;
    // Agents may have gone since the draft was saved: check again before freezing it.
    let definition = validated(&state, &caller, draft.definition).await?;
    let version = state
        .store
        .publish_workflow(&caller.scope, &caller.actor, &id, &definition)
        .await?;
    Ok((StatusCode::CREATED, Json(version.into())))
}

#[utoipa::path(
    get,
    path = "/v1/workflows/{id}/versions",
    tag = "workflows",
    summary = "A workflow's published versions, newest first",
    params(("id" = String, Path, description = "The workflow's id")),
    responses((status = 200, description = "All of them", body = List<WorkflowVersionView>))
)]
pub(super) async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    ResourceId(id): ResourceId,
) -> Result<Json<List<WorkflowVersionView>>, Problem> {
    let versions = state.store.workflow_versions(&caller.scope, &id).await?;
    Ok(Json(List::of(versions)))
}

#[utoipa::path(
    get,
    path = "/v1/workflows/{id}/versions/{version}",
    tag = "workflows",
    summary = "One published version",
    params(
        ("id" = String, Path, description = "The workflow's id"),
        ("version" = u32, Path, description = "The version number (1, 2, ...)")
    ),
    responses((status = 200, description = "The version", body = WorkflowVersionView))
)]
pub(super) async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<WorkflowVersionView>, Problem> {
    if !is_uuid(&id) {
        return Err(Problem::not_found());
    }
    let version: u32 = version.parse().map_err(|_| Problem::not_found())?;
    Ok(Json(
        state
            .store
            .workflow_version(&caller.scope, &id, version)
            .await?
            .into(),
    ))
}

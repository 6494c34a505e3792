//! Erasure of call data on request (data-protection requests from callers):
//! `DELETE /v1/calls/{id}` erases one call, `POST /v1/erasures` every call of one caller number
//! in the workspace. What goes and what stays is in `store/erasure.rs`; here the input is
//! checked, and the recording files the store detached are deleted after its commit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::json::StrictJson;
use super::problem::Problem;
use super::resource_id::CallId;
use super::AppState;
use crate::retention::delete_recording_files;
use crate::store::{CallErasure, StoreError};
use freya_shared::ids::now_ms;
use freya_shared::model::{normalize_dialable, FieldError};

#[utoipa::path(
    delete,
    path = "/v1/calls/{id}",
    tag = "calls",
    summary = "Erase a call's transcript, events and recording, keeping a tombstone (admin)",
    description = "The call row stays with its times and outcome, `erased_at` set and the \
        caller's number cleared; the erasure is audited as `call.erased`. A live call is a 409: \
        hang it up first. Erasing an erased call again changes nothing.",
    params(("id" = String, Path, description = "The call's id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such call in this workspace"),
        (status = 409, description = "The call is live"),
    )
)]
pub(super) async fn erase_call(
    State(state): State<AppState>,
    caller: Caller,
    CallId(id): CallId,
) -> Result<Response, Problem> {
    match state
        .store
        .erase_call(&caller.scope, &caller.actor, &id, now_ms())
        .await
    {
        Ok(CallErasure::Erased(Some(recording))) => {
            let files = [(caller.scope.workspace_id.clone(), recording.recording_id)];
            delete_recording_files(&state.recordings_dir, &files).await;
        }
        Ok(CallErasure::Erased(None) | CallErasure::AlreadyErased) => {}
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(e) => return Err(e.into()),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/erasures`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ErasureRequest {
    /// The caller's number, in any spelling that normalises (`+1 (555) 123-4567`), or a SIP
    /// user name: every call with this remote party is erased.
    caller_number: String,
}

/// What an erasure request did.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErasureReport {
    /// The number as it was matched (its normal form).
    caller_number: String,
    calls_erased: u64,
    recordings_deleted: u64,
    /// Calls of that caller still live, left alone: send the request again once they ended.
    calls_live: u64,
}

#[utoipa::path(
    post,
    path = "/v1/erasures",
    tag = "calls",
    summary = "Erase every call of one caller number in the workspace (admin)",
    description = "Each call is erased as `DELETE /v1/calls/{id}` would; audited per call and \
        once as `erasure.completed` with the counts.",
    request_body = ErasureRequest,
    responses((status = 200, description = "What was erased", body = ErasureReport))
)]
pub(super) async fn erase_caller(
    State(state): State<AppState>,
    caller: Caller,
    StrictJson(body): StrictJson<ErasureRequest>,
) -> Result<Json<ErasureReport>, Problem> {
    let number = normalize_dialable(&body.caller_number)
        .map_err(|e| Problem::invalid(vec![FieldError::new("caller_number", e.to_string())]))?;
    let report = state
        .store
        .erase_caller(&caller.scope, &caller.actor, &number, now_ms())
        .await?;
    delete_recording_files(&state.recordings_dir, &report.recordings).await;
    Ok(Json(ErasureReport {
        caller_number: number,
        calls_erased: report.calls_erased,
        recordings_deleted: u64::try_from(report.recordings.len()).unwrap_or(u64::MAX),
        calls_live: report.calls_live,
    }))
}

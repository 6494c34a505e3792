//! `/v1/calls/{id}/recording`: a call's recording as a WAV file, streamed from disk with byte
//! ranges honoured (`Accept-Ranges: bytes`; a `Range` request answers 206 with `Content-Range`,
//! or 416 when it cannot be satisfied), so players can seek and downloads can resume. Scoped
//! like every call route: another workspace's call, or a call without a recording, is a 404.
//! Admins may delete a recording (the row first, audited, then the file). A recording sealed at
//! rest is decrypted as it streams (`sealed_recording.rs`); a plaintext WAV from an earlier
//! version is served from disk as it is.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower_http::services::ServeFile;

use super::auth::Caller;
use super::calls::plausible_call_id;
use super::problem::Problem;
use super::resource_id::CallId;
use super::{sealed_recording, AppState};
use crate::grpc::recordings::recording_path;
use crate::store::{CallRecordingInfo, StoreError, WorkspaceScope};

/// A call's recording as `GET /v1/calls/{id}` shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RecordingView {
    /// Where to download it (`GET`, range requests honoured).
    url: String,
    bytes: i64,
    duration_ms: i64,
    /// `wav`: 16-bit PCM, 8 kHz, two channels (the caller left, the agent right).
    format: String,
}

impl RecordingView {
    /// The view of `recording`, the recording of call `call_id`.
    pub(super) fn of(call_id: &str, recording: CallRecordingInfo) -> Self {
        Self {
            url: format!("/v1/calls/{}/recording", encode_path_segment(call_id)),
            bytes: recording.bytes,
            duration_ms: recording.duration_ms,
            format: recording.format,
        }
    }
}

/// Percent-encodes what a path segment may not hold as is (SIP Call-IDs carry `@`, `/`, ...).
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@!$&'()*+,;=:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn no_recording() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "this call has no recording",
    )
}

/// The recording of the scoped workspace's call `id`, or the 404 to answer.
async fn recording_of(
    state: &AppState,
    scope: &WorkspaceScope,
    id: &str,
) -> Result<CallRecordingInfo, Problem> {
    if !plausible_call_id(id) {
        return Err(Problem::not_found());
    }
    match state.store.call_recording(scope, id).await {
        Ok(Some(recording)) => Ok(recording),
        Ok(None) => Err(no_recording()),
        Err(StoreError::NotFound) => Err(Problem::not_found()),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    path = "/v1/calls/{id}/recording",
    tag = "calls",
    summary = "Download a call's recording (WAV; byte ranges honoured)",
    params(
        ("id" = String, Path, description = "The call's id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
    ),
    responses(
        (status = 200, description = "The whole recording", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The requested byte range, with `Content-Range`", content_type = "audio/wav", body = Vec<u8>),
        (status = 416, description = "The range lies outside the file (`Content-Range: bytes */LENGTH`)"),
    )
)]
pub(super) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    let recording = recording_of(&state, &caller.scope, &id).await?;
    let path = recording_path(
        &state.recordings_dir,
        &caller.scope.workspace_id,
        &recording.recording_id,
    );
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        tracing::error!(call = %id, path = %path.display(), "a stored recording's file is missing");
        return Err(no_recording());
    }
    if sealed_recording::is_sealed(&path).await.unwrap_or(false) {
        let sealer = state.store.sealer().map_err(Problem::from)?;
        return sealed_recording::serve(sealer, &recording.recording_id, &path, request.headers())
            .await;
    }
    match ServeFile::new(&path).try_call(request).await {
        Ok(response) => Ok(response.map(Body::new)),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot read a recording");
            Err(Problem::unavailable(
                "the recording cannot be read right now",
            ))
        }
    }
}

#[utoipa::path(
    delete,
    path = "/v1/calls/{id}/recording",
    tag = "calls",
    summary = "Delete a call's recording (admin)",
    params(("id" = String, Path, description = "The call's id")),
    responses((status = 204, description = "Deleted"))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    CallId(id): CallId,
) -> Result<Response, Problem> {
    let recording = match state
        .store
        .detach_recording(&caller.scope, &caller.actor, &id)
        .await
    {
        Ok(recording) => recording,
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(e) => return Err(e.into()),
    };
    let path = recording_path(
        &state.recordings_dir,
        &caller.scope.workspace_id,
        &recording.recording_id,
    );
    if let Err(e) = tokio::fs::remove_file(&path).await {
        // The row is gone, so nobody can reach the file; an operator can remove it.
        tracing::error!(error = %e, path = %path.display(), "cannot delete a recording's file");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

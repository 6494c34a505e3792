//! Call recordings as the store knows them: which recording (if any) a call has, with its
//! format, length, duration and checksum, kept on the call's row. The audio itself lives in
//! files under `recordings.dir` (see `grpc::recordings`); the row is written only after the
//! file is safely on disk, so a recording the API shows always has its file.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::scoped::{scoped_row_in, ScopedTable};
use super::{retry, Store, StoreError, WorkspaceScope};

/// A call's stored recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecordingInfo {
    /// The edge's id for it, and the file's name under the workspace's folder.
    pub recording_id: String,
    pub format: String,
    pub bytes: i64,
    pub duration_ms: i64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// What the store says about the call an upload names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingTarget {
    /// No such call (yet: its events may still be on their way).
    UnknownCall,
    /// The call belongs to another workspace than the upload claims.
    OtherWorkspace,
    /// The call, and the recording it already has.
    Call(Option<CallRecordingInfo>),
    /// The call was erased (`DELETE /v1/calls/{id}`): a recording arriving late is discarded.
    Erased,
}

/// Calls as their recordings are read.
const RECORDINGS: ScopedTable = ScopedTable {
    table: "calls",
    columns: RECORDING_COLUMNS,
    order: None,
};

pub(crate) const RECORDING_COLUMNS: &str =
    "recording_id, recording_format, recording_bytes, recording_duration_ms, recording_sha256";

/// The recording columns of a `calls` row, `None` when the call has no recording.
pub(crate) fn recording_from_row(r: &AnyRow) -> Result<Option<CallRecordingInfo>, StoreError> {
    let Some(recording_id) = r.try_get::<Option<String>, _>("recording_id")? else {
        return Ok(None);
    };
    Ok(Some(CallRecordingInfo {
        recording_id,
        format: r
            .try_get::<Option<String>, _>("recording_format")?
            .unwrap_or_default(),
        bytes: r
            .try_get::<Option<i64>, _>("recording_bytes")?
            .unwrap_or_default(),
        duration_ms: r
            .try_get::<Option<i64>, _>("recording_duration_ms")?
            .unwrap_or_default(),
        sha256: r
            .try_get::<Option<String>, _>("recording_sha256")?
            .unwrap_or_default(),
    }))
}

impl Store {
    /// Whether call `call_id` exists in `workspace_id`, and its recording. Used by the edge
    /// service, which is trusted with every workspace but checks the edge's claim.
    pub async fn recording_target(
        &self,
        call_id: &str,
        workspace_id: &str,
    ) -> Result<RecordingTarget, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT workspace_id, erased_at_ms, {RECORDING_COLUMNS} FROM calls WHERE id = $1"
        ))
        .bind(call_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(RecordingTarget::UnknownCall);
        };
        let owner: String = row.try_get("workspace_id")?;
        if owner != workspace_id {
            return Ok(RecordingTarget::OtherWorkspace);
        }
        if row.try_get::<Option<i64>, _>("erased_at_ms")?.is_some() {
            return Ok(RecordingTarget::Erased);
        }
        Ok(RecordingTarget::Call(recording_from_row(&row)?))
    }

    /// Notes `recording` on call `call_id` of `workspace_id` (its file is already stored).
    pub async fn attach_recording(
        &self,
        call_id: &str,
        workspace_id: &str,
        recording: &CallRecordingInfo,
    ) -> Result<(), StoreError> {
        let updated = retry(&self.health, || async {
            Ok(sqlx::query(
                "UPDATE calls SET recording_id = $1, recording_format = $2, recording_bytes = $3, \
                 recording_duration_ms = $4, recording_sha256 = $5 WHERE id = $6 AND workspace_id = $7 \
                 AND erased_at_ms IS NULL",
            )
            .bind(&recording.recording_id)
            .bind(&recording.format)
            .bind(recording.bytes)
            .bind(recording.duration_ms)
            .bind(&recording.sha256)
            .bind(call_id)
            .bind(workspace_id)
            .execute(self.pool())
            .await?
            .rows_affected())
        })
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The recording of one call of the scoped workspace: `NotFound` when there is no such
    /// call, `None` when it has no recording.
    pub async fn call_recording(
        &self,
        scope: &WorkspaceScope,
        call_id: &str,
    ) -> Result<Option<CallRecordingInfo>, StoreError> {
        recording_from_row(&self.scoped_row(&RECORDINGS, scope, call_id).await?)
    }

    /// Forgets a call's recording (audited as `call.recording_deleted`) and returns what it
    /// was, so the caller can delete the file; `NotFound` when there was none.
    pub async fn detach_recording(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        call_id: &str,
    ) -> Result<CallRecordingInfo, StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let row = scoped_row_in(&mut *tx, &RECORDINGS, scope, call_id).await?;
            let recording = recording_from_row(&row)?.ok_or(StoreError::NotFound)?;
            sqlx::query(
                "UPDATE calls SET recording_id = NULL, recording_format = NULL, recording_bytes = NULL, \
                 recording_duration_ms = NULL, recording_sha256 = NULL WHERE workspace_id = $1 AND id = $2",
            )
            .bind(&scope.workspace_id)
            .bind(call_id)
            .execute(&mut *tx)
            .await?;
            Change::of(scope, actor, "call", call_id)
                .commit(tx, "call.recording_deleted", serde_json::json!({
                        "recording_id": recording.recording_id,
                        "bytes": recording.bytes,
                    }))
                .await?;
            Ok(recording)
        })
        .await
    }
}

//! Erasing a call's personal data on request (`DELETE /v1/calls/{id}`, and every call of one
//! caller through `POST /v1/erasures`): its events (transcript, tool arguments, digits heard,
//! workflow variables — everything an edge said about it), the webhook deliveries carrying them,
//! and its recording's row go; the call row stays as a tombstone with its times, outcome and
//! usage counters, `erased_at_ms` set and the remote party's number and SIP Call-ID cleared.
//! Each erasure is audited as `call.erased`.
//!
//! An erasure claims its call with one conditional `UPDATE ... WHERE erased_at_ms IS NULL`, so
//! two requests (or two replicas) racing on one call erase it once and count it once; the
//! recording the claim detached is returned so the caller deletes its file after the commit.

use sqlx::Row;

use super::change::Change;
use super::recordings::{recording_from_row, RECORDING_COLUMNS};
use super::{retry, Store, StoreError, WorkspaceScope};

/// What erasing one call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallErasure {
    /// This request erased it; the recording it had (its file is the caller's to delete).
    Erased(Option<super::CallRecordingInfo>),
    /// It had been erased before: nothing left to do.
    AlreadyErased,
}

/// What erasing every call of one caller did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerErasure {
    /// Calls this request erased.
    pub calls_erased: u64,
    /// Their recordings, whose files the caller deletes: `(workspace_id, recording_id)`.
    pub recordings: Vec<(String, String)>,
    /// Calls of that caller still live, left alone (erase again once they have ended).
    pub calls_live: u64,
}

/// Deletes the webhook deliveries and events of `call_id`; how many events went.
pub(super) async fn delete_call_events(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    workspace_id: &str,
    call_id: &str,
) -> Result<u64, StoreError> {
    sqlx::query(
        "DELETE FROM webhook_deliveries WHERE workspace_id = $1 AND event_id IN \
         (SELECT id FROM call_events WHERE workspace_id = $1 AND call_id = $2)",
    )
    .bind(workspace_id)
    .bind(call_id)
    .execute(&mut **tx)
    .await?;
    Ok(
        sqlx::query("DELETE FROM call_events WHERE workspace_id = $1 AND call_id = $2")
            .bind(workspace_id)
            .bind(call_id)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

impl Store {
    /// Erases call `call_id` of the scoped workspace at `now_ms` (see the module doc):
    /// `NotFound` when there is no such call, `Conflict` while it is live.
    pub async fn erase_call(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        call_id: &str,
        now_ms: i64,
    ) -> Result<CallErasure, StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            // The claim: takes the row's lock on PostgreSQL/CockroachDB before anything is read.
            let claimed = sqlx::query(
                "UPDATE calls SET erased_at_ms = $1 WHERE workspace_id = $2 AND id = $3 \
                 AND erased_at_ms IS NULL AND ended_at_ms IS NOT NULL",
            )
            .bind(now_ms)
            .bind(&scope.workspace_id)
            .bind(call_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                let row = sqlx::query(
                    "SELECT ended_at_ms, erased_at_ms FROM calls WHERE workspace_id = $1 AND id = $2",
                )
                .bind(&scope.workspace_id)
                .bind(call_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                if row.try_get::<Option<i64>, _>("erased_at_ms")?.is_some() {
                    return Ok(CallErasure::AlreadyErased);
                }
                return Err(StoreError::Conflict(
                    "the call is live: hang it up, then erase it".into(),
                ));
            }
            let row = sqlx::query(&format!(
                "SELECT {RECORDING_COLUMNS} FROM calls WHERE workspace_id = $1 AND id = $2"
            ))
            .bind(&scope.workspace_id)
            .bind(call_id)
            .fetch_one(&mut *tx)
            .await?;
            let recording = recording_from_row(&row)?;
            sqlx::query(
                "UPDATE calls SET recording_id = NULL, recording_format = NULL, \
                 recording_bytes = NULL, recording_duration_ms = NULL, recording_sha256 = NULL, \
                 sip_call_id = NULL, \
                 from_number = CASE WHEN direction = 'outbound' THEN from_number ELSE NULL END, \
                 to_number = CASE WHEN direction = 'outbound' THEN NULL ELSE to_number END \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(&scope.workspace_id)
            .bind(call_id)
            .execute(&mut *tx)
            .await?;
            let events = delete_call_events(&mut tx, &scope.workspace_id, call_id).await?;
            Change::of(scope, actor, "call", call_id)
                .commit(
                    tx,
                    "call.erased",
                    serde_json::json!({
                        "events_deleted": events,
                        "recording_deleted": recording.is_some(),
                    }),
                )
                .await?;
            Ok(CallErasure::Erased(recording))
        })
        .await
    }

    /// Erases every ended call of the scoped workspace whose remote party is `number` (already
    /// in normal form): the caller of an inbound call, the callee of an outbound one. Audited
    /// per call, and once as `erasure.completed` with the counts (not the number).
    pub async fn erase_caller(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        number: &str,
        now_ms: i64,
    ) -> Result<CallerErasure, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ended_at_ms FROM calls WHERE workspace_id = $1 AND erased_at_ms IS NULL \
             AND ((direction = 'outbound' AND to_number = $2) \
             OR (direction <> 'outbound' AND from_number = $2))",
        )
        .bind(&scope.workspace_id)
        .bind(number)
        .fetch_all(self.pool())
        .await?;
        let mut report = CallerErasure::default();
        for row in rows {
            let id: String = row.try_get("id")?;
            match self.erase_call(scope, actor, &id, now_ms).await {
                Ok(CallErasure::Erased(recording)) => {
                    report.calls_erased += 1;
                    if let Some(r) = recording {
                        report
                            .recordings
                            .push((scope.workspace_id.clone(), r.recording_id));
                    }
                }
                // Another request got there first, or the call vanished by retention.
                Ok(CallErasure::AlreadyErased) | Err(StoreError::NotFound) => {}
                Err(StoreError::Conflict(_)) => report.calls_live += 1,
                Err(e) => return Err(e),
            }
        }
        let erasure_id = freya_shared::ids::new_id();
        let tx = self.pool().begin().await?;
        Change::of(scope, actor, "erasure", &erasure_id)
            .commit(
                tx,
                "erasure.completed",
                serde_json::json!({
                    "calls_erased": report.calls_erased,
                    "recordings_deleted": report.recordings.len(),
                    "calls_live": report.calls_live,
                }),
            )
            .await?;
        Ok(report)
    }
}

//! Retention windows per workspace and the sweep that enforces them. A workspace keeps
//! recordings, transcripts (every event that carries speech, tool arguments, digits or workflow
//! values) and call records for a number of days each, or forever (`None`). One sweep, given
//! `now_ms`, deletes at most `batch` items of each kind per workspace and reports what it did;
//! the task in `crate::retention` runs it every few minutes on every replica.
//!
//! Safe on several replicas without locks: every delete is conditional and counted by the rows
//! it really affected (`DELETE ... WHERE id IN (...)`, or `UPDATE ... WHERE recording_id = $x`),
//! so two sweeps over the same rows delete each once, count each once, and only the sweep whose
//! statement detached a recording deletes its file.

use serde::Serialize;
use sqlx::Row;

use super::change::{Cell, Change};
use super::erasure::delete_call_events;
use super::{retry, Store, StoreError, WorkspaceScope};

/// Longest window accepted, in days (a century): beyond it, keep forever with `null`.
pub const MAX_RETENTION_DAYS: i64 = 36_500;

const DAY_MS: i64 = 86_400_000;

/// Event kinds that carry what was said or typed: what transcript retention deletes.
pub const CONTENT_EVENT_KINDS: [&str; 9] = [
    "call.transcript",
    "call.tool",
    "call.tool_failed",
    "call.workflow_step",
    "call.workflow_error",
    "call.dtmf",
    "call.dtmf_sent",
    "call.dtmf_failed",
    "call.barge_in",
];

/// How long a workspace keeps each kind of call data, in days; `None` keeps it forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub recordings_days: Option<i64>,
    pub transcripts_days: Option<i64>,
    pub calls_days: Option<i64>,
}

impl Retention {
    pub(super) fn from_row(r: &sqlx::any::AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            recordings_days: r.try_get("retention_recordings_days")?,
            transcripts_days: r.try_get("retention_transcripts_days")?,
            calls_days: r.try_get("retention_calls_days")?,
        })
    }
}

/// The columns [`Retention::from_row`] reads.
pub(super) const RETENTION_COLUMNS: &str =
    "retention_recordings_days, retention_transcripts_days, retention_calls_days";

/// What one sweep did, over every workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionSweep {
    /// Recordings detached from their calls.
    pub recordings_deleted: u64,
    /// Content events deleted.
    pub transcript_events_deleted: u64,
    /// Call records deleted, with all their events.
    pub calls_deleted: u64,
    /// The files of the recordings this sweep detached: `(workspace_id, recording_id)`, for
    /// the caller to delete.
    pub recording_files: Vec<(String, String)>,
}

/// The time before which data kept for `days` is due, at `now_ms`.
fn cutoff(now_ms: i64, days: i64) -> i64 {
    now_ms.saturating_sub(days.saturating_mul(DAY_MS))
}

/// `$first, $first+1, ...` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Sets the scoped workspace's retention windows (audited as `workspace.retention_changed`).
    pub async fn set_workspace_retention(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        retention: Retention,
    ) -> Result<(), StoreError> {
        self.update_workspace_row(
            scope,
            actor,
            &[
                (
                    "retention_recordings_days = ?",
                    Cell::MaybeInt(retention.recordings_days),
                ),
                (
                    "retention_transcripts_days = ?",
                    Cell::MaybeInt(retention.transcripts_days),
                ),
                (
                    "retention_calls_days = ?",
                    Cell::MaybeInt(retention.calls_days),
                ),
            ],
            "workspace.retention_changed",
            serde_json::to_value(retention).unwrap_or_default(),
        )
        .await
    }

    /// One retention sweep at `now_ms` over every workspace with a window, at most `batch`
    /// items of each kind per workspace. Audited per workspace (`retention.applied`, actor
    /// `system:retention`) when it deleted anything.
    pub async fn sweep_retention(
        &self,
        now_ms: i64,
        batch: u32,
    ) -> Result<RetentionSweep, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, {RETENTION_COLUMNS} FROM workspaces WHERE \
             retention_recordings_days IS NOT NULL OR retention_transcripts_days IS NOT NULL \
             OR retention_calls_days IS NOT NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        let mut sweep = RetentionSweep::default();
        for row in rows {
            let scope = WorkspaceScope {
                workspace_id: row.try_get("id")?,
            };
            let retention = Retention::from_row(&row)?;
            let mut done = RetentionSweep::default();
            if let Some(days) = retention.recordings_days {
                self.expire_ended_calls(
                    &scope,
                    cutoff(now_ms, days),
                    batch,
                    Due::Recorded,
                    &mut done,
                )
                .await?;
            }
            if let Some(days) = retention.transcripts_days {
                done.transcript_events_deleted += self
                    .expire_transcripts(&scope, cutoff(now_ms, days), batch)
                    .await?;
            }
            if let Some(days) = retention.calls_days {
                self.expire_ended_calls(&scope, cutoff(now_ms, days), batch, Due::Any, &mut done)
                    .await?;
            }
            if done != RetentionSweep::default() {
                let tx = self.pool().begin().await?;
                Change::of(&scope, "system:retention", "workspace", &scope.workspace_id)
                    .commit(
                        tx,
                        "retention.applied",
                        serde_json::json!({
                            "recordings_deleted": done.recordings_deleted,
                            "transcript_events_deleted": done.transcript_events_deleted,
                            "calls_deleted": done.calls_deleted,
                        }),
                    )
                    .await?;
            }
            sweep.recordings_deleted += done.recordings_deleted;
            sweep.transcript_events_deleted += done.transcript_events_deleted;
            sweep.calls_deleted += done.calls_deleted;
            sweep.recording_files.extend(done.recording_files);
        }
        Ok(sweep)
    }

    /// Walks the calls of the workspace that ended before `before_ms` (at most `batch`, the
    /// oldest first): detaches their recordings ([`Due::Recorded`]) or deletes them with every
    /// event ([`Due::Any`]), and counts in `done` what went.
    async fn expire_ended_calls(
        &self,
        scope: &WorkspaceScope,
        before_ms: i64,
        batch: u32,
        due: Due,
        done: &mut RetentionSweep,
    ) -> Result<(), StoreError> {
        let recorded = match due {
            Due::Recorded => "AND recording_id IS NOT NULL ",
            Due::Any => "",
        };
        let sql = format!(
            "SELECT id, recording_id FROM calls WHERE workspace_id = $1 {recorded}\
             AND ended_at_ms < $2 ORDER BY ended_at_ms LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(&scope.workspace_id)
            .bind(before_ms)
            .bind(i64::from(batch))
            .fetch_all(self.pool())
            .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let recording = match due {
                Due::Recorded => {
                    let recording_id: String = row.try_get("recording_id")?;
                    self.expire_recording(scope, &id, &recording_id)
                        .await?
                        .then_some(recording_id)
                }
                Due::Any => match self.delete_ended_call(scope, &id).await? {
                    None => continue,
                    Some(recording) => {
                        done.calls_deleted += 1;
                        recording
                    }
                },
            };
            if let Some(recording_id) = recording {
                done.recordings_deleted += 1;
                done.recording_files
                    .push((scope.workspace_id.clone(), recording_id));
            }
        }
        Ok(())
    }

    /// Detaches recording `recording_id` from call `id`; whether this sweep was the one to.
    async fn expire_recording(
        &self,
        scope: &WorkspaceScope,
        id: &str,
        recording_id: &str,
    ) -> Result<bool, StoreError> {
        let detached = retry(&self.health, || async {
            Ok(sqlx::query(
                "UPDATE calls SET recording_id = NULL, recording_format = NULL, \
                 recording_bytes = NULL, recording_duration_ms = NULL, recording_sha256 = NULL \
                 WHERE workspace_id = $1 AND id = $2 AND recording_id = $3",
            )
            .bind(&scope.workspace_id)
            .bind(id)
            .bind(recording_id)
            .execute(self.pool())
            .await?
            .rows_affected())
        })
        .await?;
        Ok(detached == 1)
    }

    /// Deletes call `id` with every event; `None` when another sweep was first, else the
    /// recording it had, if any.
    async fn delete_ended_call(
        &self,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            // The row first: it takes the lock, and says whether this sweep is the one.
            let recording: Option<Option<String>> = sqlx::query_scalar(
                "DELETE FROM calls WHERE workspace_id = $1 AND id = $2 RETURNING recording_id",
            )
            .bind(&scope.workspace_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if recording.is_some() {
                delete_call_events(&mut tx, &scope.workspace_id, id).await?;
            }
            tx.commit().await?;
            Ok(recording)
        })
        .await
    }

    /// Deletes content events older than `before_ms` (and webhook deliveries of them); how many
    /// events went.
    async fn expire_transcripts(
        &self,
        scope: &WorkspaceScope,
        before_ms: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let kinds = placeholders(4, CONTENT_EVENT_KINDS.len());
        let ids: Vec<String> = {
            let sql = format!(
                "SELECT id FROM call_events WHERE workspace_id = $1 AND at_ms < $2 \
                 AND kind IN ({kinds}) ORDER BY at_ms LIMIT $3"
            );
            let mut query = sqlx::query_scalar(&sql)
                .bind(&scope.workspace_id)
                .bind(before_ms)
                .bind(i64::from(batch));
            for kind in CONTENT_EVENT_KINDS {
                query = query.bind(kind);
            }
            query.fetch_all(self.pool()).await?
        };
        if ids.is_empty() {
            return Ok(0);
        }
        let list = placeholders(2, ids.len());
        let deliveries_sql = format!(
            "DELETE FROM webhook_deliveries WHERE workspace_id = $1 AND event_id IN ({list})"
        );
        let events_sql =
            format!("DELETE FROM call_events WHERE workspace_id = $1 AND id IN ({list})");
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let mut deliveries = sqlx::query(&deliveries_sql).bind(&scope.workspace_id);
            let mut events = sqlx::query(&events_sql).bind(&scope.workspace_id);
            for id in &ids {
                deliveries = deliveries.bind(id);
                events = events.bind(id);
            }
            deliveries.execute(&mut *tx).await?;
            let deleted = events.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }
}

/// Which ended calls an expiry walks: those with a recording (to detach it) or all of them.
#[derive(Clone, Copy)]
enum Due {
    Recorded,
    Any,
}

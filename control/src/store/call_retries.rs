//! An outbound call an edge could not place, placed once more on another edge. When an edge's
//! `call.failed` says the fault was its own (`placement: edge`: full, draining, shutting down,
//! its trunks failing), the call's row records the edge in `edge_attempts`; the first such
//! failure also *claims* the call's one retry, in the transaction that stores the event: the
//! call goes back to `queued` instead of failing, its `call.failed` queues no webhook, the call
//! starts waiting to be handed to another edge (`call_placements.rs`, by whichever replica can
//! reach that edge), and the storing process is handed a [`RetryClaim`] to act on at once
//! (`grpc/retry.rs`). The claim is a
//! conditional update (`WHERE edge_attempts IS NULL`), so however many control-plane replicas
//! store failures of the call, one claims it; a later failure (the retry's) ends the call as
//! usual, with every edge tried on its row. The callee's answer (a 486, a 603) is never one.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::StoreError;
use freya_shared::model::call_payloads::CallFailed;
use freya_shared::model::{CallEvent, FailReason, Placement};

/// One edge that could not place an outbound call, and why (its `call.failed` reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeAttempt {
    pub edge_id: String,
    pub reason: String,
}

/// A call this process claimed to place again on another edge: the store promises no other
/// process holds the same claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryClaim {
    pub call_id: String,
    pub workspace_id: String,
    /// The edge that could not place it (never asked again).
    pub from_edge: String,
    /// Its `call.failed` reason.
    pub reason: String,
    pub from_number: String,
    pub to_number: String,
    pub agent_id: String,
}

/// What a newly stored `call.failed` does to its call.
pub(super) enum FailedOutcome {
    /// The call fails (and its webhook is queued).
    Ends,
    /// The call waits for its retry: neither ended nor announced.
    Retry(RetryClaim),
    /// A failure of an edge the call has already left (a late replay): kept as an event only.
    Stale,
}

/// Reads `edge_attempts` as stored (NULL: none).
pub(super) fn attempts_from_column(text: Option<String>) -> Result<Vec<EdgeAttempt>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => super::parse_json("call edge attempts", &text),
    }
}

fn attempts_to_column(attempts: &[EdgeAttempt]) -> Result<String, StoreError> {
    serde_json::to_string(attempts).map_err(|e| StoreError::Corrupt {
        what: "call edge attempts",
        message: e.to_string(),
    })
}

/// Records a `call.failed` from `edge_id` on its outbound call's row: whether the call ends,
/// waits for its retry (claimed here), or had already moved on.
pub(super) async fn on_failed(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    edge_id: &str,
    event: &CallEvent,
    failed: &CallFailed,
) -> Result<FailedOutcome, StoreError> {
    if failed.placement != Some(Placement::Edge) {
        return Ok(FailedOutcome::Ends);
    }
    let row = sqlx::query(
        "SELECT direction, edge_id, edge_attempts, answered_at_ms, ended_at_ms, from_number, \
         to_number, agent_id FROM calls WHERE id = $1 AND workspace_id = $2",
    )
    .bind(&event.call_id)
    .bind(&event.workspace_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(FailedOutcome::Ends);
    };
    let direction: String = row.try_get("direction")?;
    let answered: Option<i64> = row.try_get("answered_at_ms")?;
    let ended: Option<i64> = row.try_get("ended_at_ms")?;
    if direction != "outbound" || answered.is_some() || ended.is_some() {
        return Ok(FailedOutcome::Ends);
    }
    let carrier: Option<String> = row.try_get("edge_id")?;
    if carrier.as_deref() != Some(edge_id) {
        tracing::info!(call = %event.call_id, edge = %edge_id, "a failure from an edge the call has left; kept as an event");
        return Ok(FailedOutcome::Stale);
    }
    let before: Option<String> = row.try_get("edge_attempts")?;
    let first = before.is_none();
    let mut attempts = attempts_from_column(before.clone())?;
    if attempts.iter().any(|a| a.edge_id == edge_id) {
        // This edge failed the call before (another report of the same failure, say): its
        // first report holds the claim.
        return Ok(FailedOutcome::Stale);
    }
    let reason = failed
        .reason
        .as_ref()
        .map_or("unknown", FailReason::as_str)
        .to_owned();
    attempts.push(EdgeAttempt {
        edge_id: edge_id.to_owned(),
        reason: reason.clone(),
    });
    let column = attempts_to_column(&attempts)?;
    if !first {
        // The retry failed too: recorded, and the call ends (never a third edge).
        sqlx::query("UPDATE calls SET edge_attempts = $1 WHERE id = $2 AND edge_attempts = $3")
            .bind(&column)
            .bind(&event.call_id)
            .bind(before)
            .execute(&mut **tx)
            .await?;
        return Ok(FailedOutcome::Ends);
    }
    let claimed = sqlx::query(
        "UPDATE calls SET edge_attempts = $1, status = 'queued', placing_since_ms = $2, \
         placing_holder = NULL, placing_until_ms = NULL \
         WHERE id = $3 AND edge_attempts IS NULL AND ended_at_ms IS NULL",
    )
    .bind(&column)
    .bind(freya_shared::ids::now_ms())
    .bind(&event.call_id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        return Ok(FailedOutcome::Stale);
    }
    let text = |name: &str| -> Result<String, StoreError> {
        Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
    };
    Ok(FailedOutcome::Retry(RetryClaim {
        call_id: event.call_id.clone(),
        workspace_id: event.workspace_id.clone(),
        from_edge: edge_id.to_owned(),
        reason,
        from_number: text("from_number")?,
        to_number: text("to_number")?,
        agent_id: text("agent_id")?,
    }))
}

/// Whether a `call.started` is the second of its call (the retry's edge dialling): the
/// customer was told of the call once already.
pub(super) async fn started_before(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
) -> Result<bool, StoreError> {
    let retried: Option<Option<String>> =
        sqlx::query_scalar("SELECT edge_attempts FROM calls WHERE id = $1 AND workspace_id = $2")
            .bind(&event.call_id)
            .bind(&event.workspace_id)
            .fetch_optional(&mut **tx)
            .await?;
    if retried.flatten().is_none() {
        return Ok(false);
    }
    let earlier: Option<String> = sqlx::query_scalar(
        "SELECT id FROM call_events WHERE call_id = $1 AND workspace_id = $2 \
         AND kind = 'call.started' AND id <> $3 LIMIT 1",
    )
    .bind(&event.call_id)
    .bind(&event.workspace_id)
    .bind(&event.id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(earlier.is_some())
}

//! Ending the calls of an edge that stopped heartbeating. An edge killed outright (SIGKILL, a
//! lost host) never reports its calls' ends, and without this they would stay `in_progress`
//! forever. Once an edge has been silent for `edges.offline_after_ms`, each of its open calls is
//! ended with reason `edge_lost` at the edge's last heartbeat — the last moment anyone knew the
//! call was alive — through the same event path as an edge's own `call.ended`, so usage is
//! folded and webhooks are queued in the same transaction.
//!
//! The same end comes sooner when the edge's cluster peers report it down
//! ([`Store::end_calls_of_edge`], at the moment of the report); both write the same event id.
//!
//! The synthetic event's id is derived from the call's, so several control-plane processes
//! doing this at once store it once. If the edge comes back with the same id and its spool
//! carries the call's real end, that later `call.ended` is stored too and the record takes its
//! time and reason (and subscribers get a second `call.ended`, with the true reason).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};
use freya_shared::ids::now_ms;
use freya_shared::model::call_payloads::CallEnded;
use freya_shared::model::{CallEvent, CallEventData, EndReason};

/// The reason recorded on a call whose edge went silent.
pub const EDGE_LOST: &str = "edge_lost";

impl Store {
    /// Ends, as `edge_lost`, every open call of every edge silent for longer than
    /// `offline_after_ms`; returns how many calls it ended.
    pub async fn end_calls_of_lost_edges(
        &self,
        offline_after_ms: i64,
    ) -> Result<usize, StoreError> {
        let silent_since = now_ms().saturating_sub(offline_after_ms);
        let rows = sqlx::query(
            "SELECT c.id, c.workspace_id, c.edge_id, c.answered_at_ms, e.last_seen_ms \
             FROM calls c JOIN edges e ON e.id = c.edge_id \
             WHERE c.ended_at_ms IS NULL AND e.last_seen_ms < $1 ORDER BY c.edge_id, c.id",
        )
        .bind(silent_since)
        .fetch_all(self.pool())
        .await?;
        let mut ended = 0;
        let mut by_edge: Vec<(String, Vec<CallEvent>)> = Vec::new();
        for row in &rows {
            let edge_id: String = row.try_get("edge_id")?;
            let event = edge_lost_event(row, &edge_id, row.try_get("last_seen_ms")?)?;
            match by_edge.last_mut() {
                Some((edge, events)) if *edge == edge_id => events.push(event),
                _ => by_edge.push((edge_id, vec![event])),
            }
        }
        for (edge_id, events) in by_edge {
            let stored = self.record_call_events(&edge_id, &events).await?;
            let count = stored.iter().filter(|&&new| new).count();
            if count > 0 {
                tracing::warn!(edge = %edge_id, calls = count, "edge stopped heartbeating; its open calls ended as edge_lost");
            }
            ended += count;
        }
        Ok(ended)
    }

    /// Ends, as `edge_lost` at `at_ms`, every open call of `edge_id` (its peers declared it
    /// down); returns how many calls it ended. A call already ended this way is not ended twice.
    pub async fn end_calls_of_edge(&self, edge_id: &str, at_ms: i64) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, answered_at_ms FROM calls \
             WHERE ended_at_ms IS NULL AND edge_id = $1 ORDER BY id",
        )
        .bind(edge_id)
        .fetch_all(self.pool())
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            events.push(edge_lost_event(row, edge_id, at_ms)?);
        }
        if events.is_empty() {
            return Ok(0);
        }
        let stored = self.record_call_events(edge_id, &events).await?;
        let count = stored.iter().filter(|&&new| new).count();
        if count > 0 {
            tracing::warn!(edge = %edge_id, calls = count, "edge declared down by its peers; its open calls ended as edge_lost");
        }
        Ok(count)
    }
}

/// The `call.ended` (`edge_lost`, at `at_ms`) of the open call in `row` (its `id`,
/// `workspace_id` and `answered_at_ms`), carried by `edge_id`. Its id is derived from the
/// call's, so a call already ended this way is not ended twice.
fn edge_lost_event(row: &AnyRow, edge_id: &str, at_ms: i64) -> Result<CallEvent, StoreError> {
    let call_id: String = row.try_get("id")?;
    let answered: Option<i64> = row.try_get("answered_at_ms")?;
    let ended = CallEnded {
        answered: Some(answered.is_some()),
        edge_id: Some(edge_id.to_owned()),
        ..CallEnded::because(EndReason::EdgeLost)
    };
    let mut event = CallEvent::new(
        call_id.clone(),
        row.try_get::<String, _>("workspace_id")?,
        CallEventData::Ended(ended),
    );
    event.id = format!("{call_id}.{EDGE_LOST}");
    event.at_ms = at_ms;
    Ok(event)
}

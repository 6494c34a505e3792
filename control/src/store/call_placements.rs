//! Outbound calls waiting to be handed to an edge, kept in their rows (`placing_*`, migration
//! 0023) so that any control-plane replica can hand them over: an edge takes commands only from
//! the replica its command stream is open to, and the replica that claimed a call's retry may
//! hold no stream to the edge the retry should go to, or may die before sending.
//!
//! A waiting call is handed over under a lease: a guarded `UPDATE` (free, run out, or already
//! ours), as `timer_leases.rs` does for timed work. A replica killed while holding it leaves the
//! call to another once `placing_until_ms` has passed. Handing over is at least once, made
//! once in practice: a replica that takes over a call whose chosen edge has already spoken of
//! it (an event stored from that edge) only clears the wait, never sends the command again;
//! and an edge asked twice to place one call id places it once (the edge's `recent_ids.rs`).
//!
//! A first placement (`POST /v1/calls`) whose edge's stream is on another replica waits the
//! same way, with no failed attempts; the request takes it back while nobody leases it if no
//! replica hands it over in time, and offers it to its next edge.

use sqlx::Row;

use super::call_retries::{attempts_from_column, EdgeAttempt};
use super::{Store, StoreError, WorkspaceScope};

/// An outbound call waiting to be handed to an edge, as its row reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingPlacement {
    pub call_id: String,
    pub workspace_id: String,
    /// The call's edge: the one it goes to once chosen, else the last that could not place it.
    pub edge_id: String,
    /// The edges that could not place it, in order (never asked again).
    pub attempts: Vec<EdgeAttempt>,
    pub from_number: String,
    pub to_number: String,
    pub agent_id: String,
    /// When it started waiting.
    pub since_ms: i64,
}

impl WaitingPlacement {
    /// Whether the edge it goes to is chosen: its edge is not one that failed it.
    pub fn edge_chosen(&self) -> bool {
        !self.attempts.iter().any(|a| a.edge_id == self.edge_id)
    }

    /// The reason of the first edge that could not place it.
    pub fn first_reason(&self) -> &str {
        self.attempts
            .first()
            .map_or("unknown", |a| a.reason.as_str())
    }

    /// The edge that failed it first.
    pub fn first_edge(&self) -> &str {
        self.attempts
            .first()
            .map_or(self.edge_id.as_str(), |a| a.edge_id.as_str())
    }

    /// The call's workspace, as a scope for the store's scoped queries.
    pub fn scope(&self) -> WorkspaceScope {
        WorkspaceScope {
            workspace_id: self.workspace_id.clone(),
        }
    }
}

impl Store {
    /// Up to `limit` waiting calls whose lease is free at `now` (none, run out, or given back),
    /// oldest first.
    pub async fn waiting_placements(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<WaitingPlacement>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, edge_id, edge_attempts, from_number, to_number, agent_id, \
             placing_since_ms FROM calls WHERE placing_since_ms IS NOT NULL \
             AND ended_at_ms IS NULL AND (placing_until_ms IS NULL OR placing_until_ms < $1) \
             ORDER BY placing_since_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let text = |name: &str| -> Result<String, StoreError> {
                    Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
                };
                Ok(WaitingPlacement {
                    call_id: row.try_get("id")?,
                    workspace_id: row.try_get("workspace_id")?,
                    edge_id: text("edge_id")?,
                    attempts: attempts_from_column(row.try_get("edge_attempts")?)?,
                    from_number: text("from_number")?,
                    to_number: text("to_number")?,
                    agent_id: text("agent_id")?,
                    since_ms: row.try_get("placing_since_ms")?,
                })
            })
            .collect()
    }

    /// Takes or renews the lease on handing `call_id` over, for `holder` until
    /// `now + lease_ms`; true when `holder` holds it now. A call no longer waiting (handed over,
    /// or ended) is never leased.
    pub async fn lease_placement(
        &self,
        call_id: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE calls SET placing_holder = $1, placing_until_ms = $2 \
             WHERE id = $3 AND placing_since_ms IS NOT NULL AND ended_at_ms IS NULL \
             AND (placing_holder = $1 OR placing_until_ms IS NULL OR placing_until_ms < $4)",
        )
        .bind(holder)
        .bind(now.saturating_add(lease_ms))
        .bind(call_id)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives the lease back (this process cannot hand the call over: the edge's stream is on
    /// another replica), so whichever replica can takes it at its next pass.
    pub async fn release_placement(&self, call_id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET placing_holder = NULL, placing_until_ms = NULL \
             WHERE id = $1 AND placing_holder = $2",
        )
        .bind(call_id)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The call was handed over: it waits no more. Only the lease's holder may say so.
    pub async fn placement_handed_over(
        &self,
        call_id: &str,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET placing_since_ms = NULL, placing_holder = NULL, \
             placing_until_ms = NULL WHERE id = $1 AND placing_holder = $2",
        )
        .bind(call_id)
        .bind(holder)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Leaves a new outbound call waiting for its edge (its row's `edge_id`, chosen by the
    /// request): `POST /v1/calls` on a replica that holds no stream of that edge, so the replica
    /// that does hands it over as it hands retries over.
    pub async fn wait_for_first_placement(
        &self,
        call_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET placing_since_ms = $1, placing_holder = NULL, \
             placing_until_ms = NULL WHERE id = $2 AND edge_attempts IS NULL",
        )
        .bind(now)
        .bind(call_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether `call_id` still waits to be handed to an edge.
    pub async fn placement_waiting(&self, call_id: &str) -> Result<bool, StoreError> {
        let since: Option<Option<i64>> =
            sqlx::query_scalar("SELECT placing_since_ms FROM calls WHERE id = $1")
                .bind(call_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(since.flatten().is_some())
    }

    /// Takes a first placement back while no replica holds its lease (none could reach the
    /// edge in time), so the request may offer the call to another edge; true when taken back.
    /// A call leased at this moment is being sent and stays with its edge.
    pub async fn withdraw_first_placement(
        &self,
        call_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let withdrawn = sqlx::query(
            "UPDATE calls SET placing_since_ms = NULL, placing_holder = NULL, \
             placing_until_ms = NULL WHERE id = $1 AND placing_since_ms IS NOT NULL \
             AND edge_attempts IS NULL AND (placing_until_ms IS NULL OR placing_until_ms < $2)",
        )
        .bind(call_id)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(withdrawn == 1)
    }

    /// Whether `edge_id` has spoken of `call_id` (any event stored from it but the control
    /// plane's own `call.retried`): then it had the command, and sending it again would dial
    /// the callee twice.
    pub async fn edge_has_the_call(
        &self,
        call_id: &str,
        edge_id: &str,
    ) -> Result<bool, StoreError> {
        let seen: Option<String> = sqlx::query_scalar(
            "SELECT id FROM call_events WHERE call_id = $1 AND edge_id = $2 \
             AND kind <> 'call.retried' LIMIT 1",
        )
        .bind(call_id)
        .bind(edge_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(seen.is_some())
    }
}

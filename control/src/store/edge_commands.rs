//! The edge command outbox (`edge_commands`, migration 0025): a command for an edge whose
//! command stream is open to another control-plane replica waits in a row until the replica
//! holding that stream sends it (`grpc/relay.rs`).
//!
//! A row is sent under a lease, as waiting placements are (`call_placements.rs`): a guarded
//! `UPDATE` (free, run out, or already ours), so two replicas never both take it, and a replica
//! killed between taking it and marking it sent leaves it to another after the lease. Sending
//! is therefore at least once; every command an edge takes is harmless twice (a second drain
//! changes nothing) or carried out once by the edge (a second placement of a call id, and a
//! leg command or hang-up under a command id it has seen, are ignored: `recent_ids.rs`). A row whose call has ended is closed as `moot`, never sent; one not
//! sent by its expiry never is. The outbox is bounded per edge ([`Store::queue_edge_command`])
//! and closed rows are deleted in batches ([`Store::sweep_edge_commands`]).
//!
//! A command that asks for an answer (a `TestTrunk`) gets it back the same way (migration
//! 0026): the edge answers the replica holding its stream, which keeps the answer in the row
//! ([`Store::answer_edge_command`], once, from that edge only, at most [`MAX_ANSWER_BYTES`]),
//! and the request waiting on another replica reads it ([`Store::edge_command_answer`]).

use sqlx::Row;

use super::{Store, StoreError};

/// Largest answer (encoded) a row keeps: an answer is a few short fields, each cut to size by
/// the replica receiving it, so anything larger is not one and is refused.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// How a closed row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// The holder of the edge's stream sent it.
    Sent,
    /// Its call had ended before any replica sent it: nothing to do.
    Moot,
    /// No replica sent it before it expired.
    Expired,
    /// The request that queued it stopped waiting before any replica took it.
    Withdrawn,
}

impl CommandOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Moot => "moot",
            Self::Expired => "expired",
            Self::Withdrawn => "withdrawn",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Sent, Self::Moot, Self::Expired, Self::Withdrawn]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// A command to queue for an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEdgeCommand {
    pub id: String,
    pub edge_id: String,
    /// What it asks (`hangup`, `legs`, `drain`, ...), for the logs and the operator.
    pub kind: String,
    /// The call it acts on, if any: once that call has ended, the command is moot.
    pub call_id: Option<String>,
    /// The encoded `EdgeCommand`.
    pub command: Vec<u8>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A queued command the outbox holds for one of the edges connected here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEdgeCommand {
    pub id: String,
    pub edge_id: String,
    pub kind: String,
    /// The encoded `EdgeCommand`.
    pub command: Vec<u8>,
    /// Whether the call it acts on has ended.
    pub call_ended: bool,
}

/// Why a command could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The edge already has this many commands waiting: no replica is taking them.
    #[error("edge {edge_id} already has {open} commands waiting")]
    Full { edge_id: String, open: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Queues `command` unless its edge already has `max_open` commands waiting.
    pub async fn queue_edge_command(
        &self,
        command: &NewEdgeCommand,
        max_open: i64,
    ) -> Result<(), QueueError> {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM edge_commands WHERE edge_id = $1 AND done_ms IS NULL",
        )
        .bind(&command.edge_id)
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from)?;
        if open >= max_open {
            return Err(QueueError::Full {
                edge_id: command.edge_id.clone(),
                open,
            });
        }
        sqlx::query(
            "INSERT INTO edge_commands (id, edge_id, kind, call_id, command, created_ms, \
             expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&command.id)
        .bind(&command.edge_id)
        .bind(&command.kind)
        .bind(command.call_id.as_deref())
        .bind(hex::encode(&command.command))
        .bind(command.created_ms)
        .bind(command.expires_ms)
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }

    /// Up to `limit` open, unexpired commands for `edge_ids` whose lease is free at `now`,
    /// oldest first.
    pub async fn queued_edge_commands(
        &self,
        edge_ids: &[String],
        now: i64,
        limit: i64,
    ) -> Result<Vec<QueuedEdgeCommand>, StoreError> {
        if edge_ids.is_empty() {
            return Ok(Vec::new());
        }
        let edges = (0..edge_ids.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT o.id, o.edge_id, o.kind, o.command, \
             (SELECT c.ended_at_ms FROM calls c WHERE c.id = o.call_id) AS call_ended_ms \
             FROM edge_commands o WHERE o.done_ms IS NULL AND o.expires_ms > $1 \
             AND (o.until_ms IS NULL OR o.until_ms < $1) AND o.edge_id IN ({edges}) \
             ORDER BY o.created_ms LIMIT $2"
        );
        let mut query = sqlx::query(&sql).bind(now).bind(limit);
        for edge_id in edge_ids {
            query = query.bind(edge_id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut queued = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let text: String = row.try_get("command")?;
            // Written by this module only; a row that does not decode is closed as expired.
            let Ok(command) = hex::decode(text) else {
                tracing::warn!(command = %id, "an edge command that does not decode; dropped");
                self.close_edge_command(&id, None, CommandOutcome::Expired, now)
                    .await?;
                continue;
            };
            queued.push(QueuedEdgeCommand {
                id,
                edge_id: row.try_get("edge_id")?,
                kind: row.try_get("kind")?,
                command,
                call_ended: row.try_get::<Option<i64>, _>("call_ended_ms")?.is_some(),
            });
        }
        Ok(queued)
    }

    /// Takes or renews the lease on sending command `id`, for `holder` until `now + lease_ms`;
    /// true when `holder` holds it now. A closed or expired command is never leased.
    pub async fn lease_edge_command(
        &self,
        id: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE edge_commands SET holder = $1, until_ms = $2 \
             WHERE id = $3 AND done_ms IS NULL AND expires_ms > $4 \
             AND (holder = $1 OR until_ms IS NULL OR until_ms < $4)",
        )
        .bind(holder)
        .bind(now.saturating_add(lease_ms))
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives the lease back (the edge's stream went away meanwhile), so whichever replica holds
    /// the stream now takes it at its next pass.
    pub async fn release_edge_command(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE edge_commands SET holder = NULL, until_ms = NULL \
             WHERE id = $1 AND holder = $2 AND done_ms IS NULL",
        )
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Closes command `id` with `outcome`: by its lease's holder when `holder` is named, else
    /// only while no live lease is on it (a request withdrawing what nobody took). True when
    /// this call closed it.
    pub async fn close_edge_command(
        &self,
        id: &str,
        holder: Option<&str>,
        outcome: CommandOutcome,
        now: i64,
    ) -> Result<bool, StoreError> {
        let closed = match holder {
            Some(holder) => {
                sqlx::query(
                    "UPDATE edge_commands SET done_ms = $1, outcome = $2 \
                     WHERE id = $3 AND done_ms IS NULL AND holder = $4",
                )
                .bind(now)
                .bind(outcome.as_str())
                .bind(id)
                .bind(holder)
                .execute(self.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE edge_commands SET done_ms = $1, outcome = $2 \
                     WHERE id = $3 AND done_ms IS NULL AND (until_ms IS NULL OR until_ms < $1)",
                )
                .bind(now)
                .bind(outcome.as_str())
                .bind(id)
                .execute(self.pool())
                .await?
            }
        };
        Ok(closed.rows_affected() == 1)
    }

    /// How command `id` ended, `None` while it is open (or gone).
    pub async fn edge_command_outcome(
        &self,
        id: &str,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let outcome: Option<Option<String>> =
            sqlx::query_scalar("SELECT outcome FROM edge_commands WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(outcome.flatten().as_deref().and_then(CommandOutcome::parse))
    }

    /// Keeps `answer`, which `edge_id` gave to its command `id` of `kind`, for the request
    /// waiting for it: true when `edge_id` was sent (or is being sent) such a command and had
    /// not answered it yet. An answer over [`MAX_ANSWER_BYTES`] is refused.
    pub async fn answer_edge_command(
        &self,
        id: &str,
        edge_id: &str,
        kind: &str,
        answer: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        if answer.len() > MAX_ANSWER_BYTES {
            return Err(StoreError::Conflict(format!(
                "an answer of {} bytes; at most {MAX_ANSWER_BYTES} are kept",
                answer.len()
            )));
        }
        // The edge may answer before its sender has marked the row sent: open rows count.
        let kept = sqlx::query(
            "UPDATE edge_commands SET answer = $1, answered_ms = $2 \
             WHERE id = $3 AND edge_id = $4 AND kind = $5 AND answered_ms IS NULL \
             AND (outcome IS NULL OR outcome = 'sent')",
        )
        .bind(hex::encode(answer))
        .bind(now)
        .bind(id)
        .bind(edge_id)
        .bind(kind)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(kept == 1)
    }

    /// The answer the edge gave to command `id`, once it has.
    pub async fn edge_command_answer(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let answer: Option<Option<String>> =
            sqlx::query_scalar("SELECT answer FROM edge_commands WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        match answer.flatten() {
            None => Ok(None),
            Some(text) => hex::decode(text)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    what: "edge command answer",
                    message: e.to_string(),
                }),
        }
    }

    /// Closes open commands expired at `now`, then deletes up to `batch` commands closed
    /// before `closed_before`; how many rows each step changed.
    pub async fn sweep_edge_commands(
        &self,
        now: i64,
        closed_before: i64,
        batch: i64,
    ) -> Result<(u64, u64), StoreError> {
        let expired = sqlx::query(
            "UPDATE edge_commands SET done_ms = $1, outcome = 'expired' \
             WHERE done_ms IS NULL AND expires_ms <= $1 AND (until_ms IS NULL OR until_ms < $1)",
        )
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        let deleted = sqlx::query(
            "DELETE FROM edge_commands WHERE id IN (SELECT id FROM edge_commands \
             WHERE done_ms IS NOT NULL AND done_ms < $1 ORDER BY done_ms LIMIT $2)",
        )
        .bind(closed_before)
        .bind(batch)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok((expired, deleted))
    }
}

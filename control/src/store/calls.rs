//! Calls as the API reads and starts them: a filtered list paged by an opaque cursor over
//! `(started_at_ms, id)` — stable while new calls arrive — one call by id, the row an outbound
//! call starts as, and the `Idempotency-Key` records that make `POST /v1/calls` safe to retry.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::columns::from_columns;
use super::scoped::ScopedTable;
use super::{retry, CallRecord, Store, StoreError, WorkspaceScope};
use freya_shared::ids::now_ms;

/// Which calls a list shows; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Matches either party.
    pub number: Option<String>,
    pub agent_id: Option<String>,
    pub status: Option<String>,
    pub direction: Option<String>,
    /// Only calls strictly after this `(started_at_ms, id)` in the list's order (newest first).
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// One page of calls and where the next one starts.
#[derive(Debug, Clone)]
pub struct CallPage {
    pub calls: Vec<CallRecord>,
    pub next: Option<(i64, String)>,
}

/// An outbound call about to be handed to an edge.
#[derive(Debug, Clone)]
pub struct NewOutboundCall {
    pub id: String,
    pub edge_id: String,
    pub from_number: String,
    pub to_number: String,
    pub agent_id: String,
}

/// What a stored idempotency key says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is new and now reserved for this request.
    Claimed,
    /// The same request already completed with this response.
    Replay { status: u16, body: String },
    /// The key was used with a different body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// Calls as one is read by id.
const CALLS: ScopedTable = ScopedTable {
    table: "calls",
    columns: CALL_COLUMNS,
    order: None,
};

/// The usage columns `call_usage::usage_from_row` reads, then the edges that failed the call.
const CALL_COLUMNS: &str =
    "id, edge_id, region, direction, from_number, to_number, agent_id, status, \
     started_at_ms, ringing_at_ms, answered_at_ms, ended_at_ms, end_reason, sip_call_id, \
     trace_id, erased_at_ms, recording_id, recording_format, recording_bytes, recording_duration_ms, recording_sha256, \
     agent_turns, caller_speech_ms, agent_characters, agent_characters_played, \
     agent_characters_synthesized, edge_attempts";

pub(crate) fn call_from_row(r: &AnyRow) -> Result<CallRecord, StoreError> {
    Ok(from_columns!(r => CallRecord {
        id, edge_id, region, direction, from_number, to_number, agent_id, status, started_at_ms,
        ringing_at_ms, answered_at_ms, ended_at_ms, end_reason, sip_call_id, trace_id,
        erased_at_ms;
        recording: super::recordings::recording_from_row(r)?,
        edge_attempts: super::call_retries::attempts_from_column(r.try_get("edge_attempts")?)?,
        usage: super::call_usage::usage_from_row(r)?,
    }))
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Store {
    /// A page of the scoped workspace's calls matching `filter`, newest first.
    pub async fn call_page(
        &self,
        scope: &WorkspaceScope,
        filter: &CallFilter,
    ) -> Result<CallPage, StoreError> {
        let mut sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE workspace_id = $1");
        let mut args = vec![Arg::Text(scope.workspace_id.clone())];
        let mut narrow = |condition: &str, arg: Arg, args: &mut Vec<Arg>| {
            args.push(arg);
            sql.push_str(" AND ");
            sql.push_str(&condition.replace('?', &format!("${}", args.len())));
        };
        if let Some(from) = filter.from_ms {
            narrow("started_at_ms >= ?", Arg::Int(from), &mut args);
        }
        if let Some(to) = filter.to_ms {
            narrow("started_at_ms < ?", Arg::Int(to), &mut args);
        }
        if let Some(number) = &filter.number {
            narrow(
                "(from_number = ? OR to_number = ?)",
                Arg::Text(number.clone()),
                &mut args,
            );
        }
        if let Some(agent) = &filter.agent_id {
            narrow("agent_id = ?", Arg::Text(agent.clone()), &mut args);
        }
        if let Some(status) = &filter.status {
            narrow("status = ?", Arg::Text(status.clone()), &mut args);
        }
        if let Some(direction) = &filter.direction {
            narrow("direction = ?", Arg::Text(direction.clone()), &mut args);
        }
        if let Some((at, id)) = &filter.after {
            narrow("started_at_ms <= ?", Arg::Int(*at), &mut args);
            let at_n = args.len();
            narrow(
                &format!("(started_at_ms < ${at_n} OR id < ?)"),
                Arg::Text(id.clone()),
                &mut args,
            );
        }
        let limit = filter.limit.clamp(1, 500);
        sql.push_str(&format!(
            " ORDER BY started_at_ms DESC, id DESC LIMIT {}",
            limit + 1
        ));
        let mut query = sqlx::query(&sql);
        for arg in args {
            query = match arg {
                Arg::Text(t) => query.bind(t),
                Arg::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(self.read_pool()).await?;
        let mut calls = rows
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if calls.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            calls.pop();
            calls.last().map(|c| (c.started_at_ms, c.id.clone()))
        } else {
            None
        };
        Ok(CallPage { calls, next })
    }

    /// One call of the scoped workspace.
    pub async fn call(&self, scope: &WorkspaceScope, id: &str) -> Result<CallRecord, StoreError> {
        call_from_row(&self.scoped_row(&CALLS, scope, id).await?)
    }

    /// Records an outbound call as queued on its edge, before the edge is asked to place it.
    pub async fn create_outbound_call(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        call: &NewOutboundCall,
    ) -> Result<CallRecord, StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            sqlx::query(
                "INSERT INTO calls (id, workspace_id, edge_id, region, direction, from_number, \
                 to_number, agent_id, status, started_at_ms) VALUES ($1, $2, $3, \
                 (SELECT region FROM edges WHERE id = $3), 'outbound', $4, $5, $6, 'queued', $7)",
            )
            .bind(&call.id)
            .bind(&scope.workspace_id)
            .bind(&call.edge_id)
            .bind(&call.from_number)
            .bind(&call.to_number)
            .bind(&call.agent_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            Change::of(scope, actor, "call", &call.id)
                .commit(
                    tx,
                    "call.placed",
                    serde_json::json!({"to": call.to_number, "edge_id": call.edge_id}),
                )
                .await?;
            Ok(())
        })
        .await?;
        self.call(scope, &call.id).await
    }

    /// Hands a queued call to another edge (the first could not be reached).
    pub async fn move_call_to_edge(
        &self,
        scope: &WorkspaceScope,
        id: &str,
        edge_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET edge_id = $1, region = (SELECT region FROM edges WHERE id = $1) \
             WHERE workspace_id = $2 AND id = $3",
        )
        .bind(edge_id)
        .bind(&scope.workspace_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a queued outbound call failed when no edge took it.
    pub async fn fail_call(
        &self,
        scope: &WorkspaceScope,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calls SET status = 'failed', ended_at_ms = $1, end_reason = $2 \
             WHERE workspace_id = $3 AND id = $4 AND ended_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(&scope.workspace_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Reserves `key` for a request whose body hashes to `request_hash`, or says what became of
    /// the earlier request with that key.
    pub async fn claim_idempotency_key(
        &self,
        scope: &WorkspaceScope,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (workspace_id, idempotency_key, request_hash, status_code, \
             response, created_at_ms) VALUES ($1, $2, $3, 0, '', $4) \
             ON CONFLICT (workspace_id, idempotency_key) DO NOTHING",
        )
        .bind(&scope.workspace_id)
        .bind(key)
        .bind(request_hash)
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(IdempotencyClaim::Claimed);
        }
        let row = sqlx::query(
            "SELECT request_hash, status_code, response FROM idempotency_keys \
             WHERE workspace_id = $1 AND idempotency_key = $2",
        )
        .bind(&scope.workspace_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            // Released between our insert and our read: the earlier request failed; try ours.
            return Box::pin(self.claim_idempotency_key(scope, key, request_hash)).await;
        };
        let stored_hash: String = row.try_get("request_hash")?;
        let status: i64 = row.try_get("status_code")?;
        Ok(if stored_hash != request_hash {
            IdempotencyClaim::Mismatch
        } else if status == 0 {
            IdempotencyClaim::InProgress
        } else {
            IdempotencyClaim::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body: row.try_get("response")?,
            }
        })
    }

    /// Stores the response of the request that claimed `key`.
    pub async fn complete_idempotency_key(
        &self,
        scope: &WorkspaceScope,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET status_code = $1, response = $2 \
             WHERE workspace_id = $3 AND idempotency_key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(&scope.workspace_id)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets a claim whose request failed before doing anything, so a retry may run.
    pub async fn release_idempotency_key(
        &self,
        scope: &WorkspaceScope,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE workspace_id = $1 AND idempotency_key = $2 \
             AND status_code = 0",
        )
        .bind(&scope.workspace_id)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

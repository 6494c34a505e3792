//! Call events from edges, stored exactly once: the event id is the primary key, a repeated
//! delivery (an edge replaying its spool after a reconnect) changes nothing, and the call record
//! is updated — and webhook deliveries are queued — only by the delivery that inserted the event.

use serde::Serialize;
use sqlx::Row;

use super::call_privacy::call_redactor;
use super::columns::from_columns;
use super::{retry, Store, StoreError, WorkspaceScope};
use freya_shared::ids::now_ms;
use freya_shared::model::{CallEvent, CallEventData, EndReason, FailReason, PrivacySpec};
use freya_shared::redact::Redactor;

/// The event kind that carries one reply's latencies.
const TURN_LATENCY_EVENT: &str = "call.turn_latency";

/// A stored call event, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: String,
    pub call_id: String,
    pub kind: String,
    pub at_ms: i64,
    pub payload: serde_json::Value,
}

/// A call's summary row, kept up to date from its events.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub id: String,
    /// The edge carrying (or that carried) the call.
    pub edge_id: Option<String>,
    /// That edge's region when it took the call; `None` when the edge never registered.
    pub region: Option<String>,
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub agent_id: Option<String>,
    pub status: String,
    pub started_at_ms: i64,
    /// When it began ringing (its `call.ringing`); `None` when it never rang.
    pub ringing_at_ms: Option<i64>,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    /// The SIP Call-ID of the call's dialog on its edge, for an inbound SIP call: the caller's
    /// choice, so only an attribute, never the key.
    pub sip_call_id: Option<String>,
    /// The call's OpenTelemetry trace id, as its edge reported it.
    pub trace_id: Option<String>,
    /// When its data was erased on request (`store/erasure.rs`); the row is a tombstone since.
    pub erased_at_ms: Option<i64>,
    /// The call's recording, once an edge has uploaded it.
    pub recording: Option<super::CallRecordingInfo>,
    /// The edges that could not place this outbound call, in order (`call_retries.rs`).
    pub edge_attempts: Vec<super::EdgeAttempt>,
    /// What the call used, as far as its events have said.
    pub usage: super::CallUsageRecord,
}

impl Store {
    /// Stores `event` from `edge_id` unless it is already stored; returns whether it was new.
    pub async fn record_call_event(
        &self,
        edge_id: &str,
        event: &CallEvent,
    ) -> Result<bool, StoreError> {
        let stored = self
            .record_call_events(edge_id, std::slice::from_ref(event))
            .await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    /// Stores a batch of events from `edge_id` in one transaction; for each, whether it was new.
    /// An edge under load sends hundreds of events a second, and one commit (one WAL sync on
    /// SQLite, one consensus round on CockroachDB) for a batch instead of each is what keeps the
    /// store ahead of them. All or none: an error stores none of the batch, and the edge resends.
    /// Outbound calls whose retry this batch claimed are not placed again: an edge's events
    /// go through [`Store::record_call_events_claiming`].
    pub async fn record_call_events(
        &self,
        edge_id: &str,
        events: &[CallEvent],
    ) -> Result<Vec<bool>, StoreError> {
        Ok(self
            .record_call_events_claiming(edge_id, events)
            .await?
            .stored)
    }

    /// [`Store::record_call_events`], also handing back the outbound calls whose one retry on
    /// another edge this batch claimed (`call_retries.rs`): the caller places them again.
    pub async fn record_call_events_claiming(
        &self,
        edge_id: &str,
        events: &[CallEvent],
    ) -> Result<RecordedEvents, StoreError> {
        if events.is_empty() {
            return Ok(RecordedEvents::default());
        }
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let mut stored = Vec::with_capacity(events.len());
            let mut retries = Vec::new();
            // Each call's redactor (its agent's, or its workflow's: `call_privacy.rs`), looked
            // up once a batch.
            let mut redactors: Vec<(&str, Redactor)> = Vec::new();
            for event in events {
                let redactor = match redactors.iter().find(|(c, _)| *c == event.call_id) {
                    Some((_, r)) => r.clone(),
                    None => {
                        let r = call_redactor(&mut tx, event).await?;
                        redactors.push((&event.call_id, r.clone()));
                        r
                    }
                };
                // Stored and sent on redacted; the call's record is updated from what came.
                let original = event;
                let redacted;
                let event = if redactor.is_empty() {
                    original
                } else {
                    let mut copy = original.clone();
                    PrivacySpec::redact_event_payload(&redactor, &mut copy.payload);
                    redacted = copy;
                    &redacted
                };
                let payload = event.payload.to_string();
                let inserted = sqlx::query(
                    "INSERT INTO call_events \
                     (id, call_id, workspace_id, edge_id, kind, at_ms, payload, received_at_ms, region) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (SELECT region FROM edges WHERE id = $4)) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(&event.call_id)
                .bind(&event.workspace_id)
                .bind(edge_id)
                .bind(&event.kind)
                .bind(event.at_ms)
                .bind(&payload)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    // Read into its type once; the JSON stays what is stored and sent on.
                    let data = original.data();
                    let announced = apply_to_call(&mut tx, edge_id, original, &data).await?;
                    super::call_usage::fold_event(&mut tx, original, &data).await?;
                    // Same transaction: a stored event always has its webhook deliveries queued
                    // (but for a failure that is retried, and the retry's second start).
                    match announced {
                        Announce::Yes => super::deliveries::enqueue(&mut tx, event).await?,
                        Announce::No => {}
                        Announce::Retry(claim) => retries.push(claim),
                    }
                }
                stored.push(inserted);
            }
            tx.commit().await?;
            Ok(RecordedEvents { stored, retries })
        })
        .await
    }

    /// Every stored event of one call in the scoped workspace, in the order they happened.
    pub async fn call_events(
        &self,
        scope: &WorkspaceScope,
        call_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, call_id, kind, at_ms, payload FROM call_events \
             WHERE workspace_id = $1 AND call_id = $2 ORDER BY at_ms, id",
        )
        .bind(&scope.workspace_id)
        .bind(call_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("payload")?;
                Ok(from_columns!(r => StoredEvent {
                    id, call_id, kind, at_ms;
                    payload: super::parse_json("call event payload", &payload)?,
                }))
            })
            .collect()
    }

    /// The voice-to-voice latency (`first_rtp_ms`) of every reply the caller heard, per call,
    /// for the scoped workspace's `call_ids` (a page of the call log): one query for the page,
    /// read from the `call.turn_latency` events. Calls with none are absent.
    pub async fn reply_latencies(
        &self,
        scope: &WorkspaceScope,
        call_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Vec<u64>>, StoreError> {
        let mut latencies = std::collections::HashMap::<String, Vec<u64>>::new();
        if call_ids.is_empty() {
            return Ok(latencies);
        }
        let placeholders: Vec<String> =
            (0..call_ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT call_id, payload FROM call_events \
             WHERE workspace_id = $1 AND kind = $2 AND call_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(&scope.workspace_id)
            .bind(TURN_LATENCY_EVENT);
        for id in call_ids {
            query = query.bind(*id);
        }
        for row in query.fetch_all(self.read_pool()).await? {
            let payload: String = row.try_get("payload")?;
            let payload = super::parse_json("call event payload", &payload)?;
            if let CallEventData::TurnLatency(reply) =
                CallEventData::parse(TURN_LATENCY_EVENT, &payload)
            {
                // A reply cut off before its first packet has no voice-to-voice latency.
                if let Some(ms) = reply.first_rtp_ms {
                    latencies
                        .entry(row.try_get("call_id")?)
                        .or_default()
                        .push(ms);
                }
            }
        }
        Ok(latencies)
    }

    /// The scoped workspace's calls, newest first, at most `limit`.
    pub async fn calls(
        &self,
        scope: &WorkspaceScope,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let filter = super::CallFilter {
            limit,
            ..Default::default()
        };
        Ok(self.call_page(scope, &filter).await?.calls)
    }

    /// How many events are stored for the scoped workspace (all calls).
    pub async fn count_call_events(&self, scope: &WorkspaceScope) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM call_events WHERE workspace_id = $1")
                .bind(&scope.workspace_id)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

/// What a batch of events did: for each, whether it was new; and the calls it claimed a retry of.
#[derive(Debug, Default)]
pub struct RecordedEvents {
    pub stored: Vec<bool>,
    pub retries: Vec<super::RetryClaim>,
}

/// Whether a newly stored event is sent on to the workspace's webhooks.
enum Announce {
    Yes,
    No,
    /// Not sent: the call is placed again elsewhere (claimed here).
    Retry(super::RetryClaim),
}

/// Folds a newly stored event into the call's summary row; whether the customer hears of it.
async fn apply_to_call(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    edge_id: &str,
    event: &CallEvent,
    data: &CallEventData,
) -> Result<Announce, StoreError> {
    match data {
        CallEventData::Started(_) if super::call_retries::started_before(tx, event).await? => {
            return Ok(Announce::No);
        }
        CallEventData::Started(started) => {
            let agent_id = started.agent_id.clone().flatten();
            let sip_call_id = started.sip_call_id.clone().flatten();
            let workflow_version = started
                .workflow_version
                .flatten()
                .and_then(|v| i64::try_from(v).ok());
            sqlx::query(
                "INSERT INTO calls (id, workspace_id, edge_id, region, direction, from_number, \
                 to_number, agent_id, status, started_at_ms, sip_call_id, trace_id, trace_span_id, \
                 workflow_id, workflow_version) \
                 VALUES ($1, $2, $3, (SELECT region FROM edges WHERE id = $3), $4, $5, $6, $7, \
                 'ringing', $8, $9, $10, $11, $12, $13) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&event.call_id)
            .bind(&event.workspace_id)
            .bind(edge_id)
            .bind(started.direction.as_deref().unwrap_or("inbound"))
            .bind(started.from.as_deref())
            .bind(started.to.as_deref())
            .bind(agent_id)
            .bind(event.at_ms)
            .bind(sip_call_id)
            .bind(started.trace_id.as_deref().filter(|t| is_trace_id(t)))
            .bind(started.trace_span_id.as_deref().filter(|s| is_span_id(s)))
            .bind(started.workflow_id.clone().flatten())
            .bind(workflow_version)
            .execute(&mut **tx)
            .await?;
        }
        CallEventData::Ringing(_) => {
            // The first ringing counts (an outbound call records only its first 180 anyway).
            sqlx::query(
                "UPDATE calls SET ringing_at_ms = $1 WHERE id = $2 AND ringing_at_ms IS NULL",
            )
            .bind(event.at_ms)
            .bind(&event.call_id)
            .execute(&mut **tx)
            .await?;
        }
        CallEventData::Answered(answered) => {
            sqlx::query(
                "UPDATE calls SET status = 'in_progress', answered_at_ms = $1 WHERE id = $2 AND ended_at_ms IS NULL",
            )
            .bind(event.at_ms)
            .bind(&event.call_id)
            .execute(&mut **tx)
            .await?;
            if let Some(trace_id) = answered.trace_id.as_deref().filter(|t| is_trace_id(t)) {
                let span_id = answered.trace_span_id.as_deref().filter(|s| is_span_id(s));
                sqlx::query(
                    "UPDATE calls SET trace_id = $1, trace_span_id = $2 \
                     WHERE id = $3 AND trace_id IS NULL",
                )
                .bind(trace_id)
                .bind(span_id)
                .bind(&event.call_id)
                .execute(&mut **tx)
                .await?;
            }
        }
        CallEventData::Ended(ended) => {
            end_call(
                tx,
                event,
                "ended",
                ended.reason.as_ref().map(EndReason::as_str),
            )
            .await?;
        }
        CallEventData::Failed(failed) => {
            use super::call_retries::FailedOutcome;
            match super::call_retries::on_failed(tx, edge_id, event, failed).await? {
                FailedOutcome::Ends => {
                    end_call(
                        tx,
                        event,
                        "failed",
                        failed.reason.as_ref().map(FailReason::as_str),
                    )
                    .await?;
                }
                FailedOutcome::Retry(claim) => return Ok(Announce::Retry(claim)),
                FailedOutcome::Stale => return Ok(Announce::No),
            }
        }
        _ => {}
    }
    Ok(Announce::Yes)
}

/// Records how the call finished on its row.
async fn end_call(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
    status: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE calls SET status = $1, ended_at_ms = $2, end_reason = $3 WHERE id = $4")
        .bind(status)
        .bind(event.at_ms)
        .bind(reason)
        .bind(&event.call_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A W3C trace id: 32 lowercase hex digits, not all zero. Anything else an edge sends is not
/// stored (the record shows no trace rather than a value no tracing backend can find).
fn is_trace_id(value: &str) -> bool {
    value.len() == 32
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && value.bytes().any(|b| b != b'0')
}

/// A W3C span id: 16 lowercase hex digits, not all zero.
fn is_span_id(value: &str) -> bool {
    value.len() == 16
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && value.bytes().any(|b| b != b'0')
}

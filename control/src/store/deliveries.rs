//! The webhook delivery queue. A delivery row is written by the same transaction that stores the
//! call event it reports (so none is lost and none is queued twice), then worked off by the
//! delivery task of any control-plane process:
//!
//! `pending` → claimed (`delivering`, with a lease in `next_attempt_at_ms`) → `delivered`, or back
//! to `pending` with a later attempt time, or `failed` once its retry window has closed.
//!
//! Claiming takes a batch of due rows ([`Store::claim_due_deliveries`]): on PostgreSQL and
//! CockroachDB one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING id`, so
//! control-plane replicas polling together take disjoint rows; on SQLite one guarded
//! `UPDATE ... WHERE id = $1 AND status = 'pending'` per row, of which exactly one racer sees a
//! changed row. A process that dies holding a claim loses it when the lease runs out, so
//! delivery is at least once, never lost (a process killed between a receiver's 2xx and
//! recording it is the one case where the receiver sees a delivery twice).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::Change;
use super::columns::from_columns;
use super::scoped::ScopedTable;
use super::webhooks::{aad, webhook_event_for, Webhook};
use super::{parse_json, retry, Store, StoreError, WorkspaceScope};
use freya_shared::ids::{new_id, now_ms, rfc3339};
use freya_shared::model::CallEvent;

/// How long deliveries keep being retried after they are queued (or redelivered by hand).
pub const RETRY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// A delivery as its log shows it.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_kind: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// A claimed delivery, ready to send: where, signed with what, and the body.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub retry_until_ms: i64,
    /// When the event was queued: its delivery's lag is measured from here.
    pub created_at_ms: i64,
    /// The trace and root span ids of the event's call, when its edge sent them: the
    /// delivery's span joins the call's trace.
    pub call_trace: Option<(String, String)>,
}

/// How an attempt went.
#[derive(Debug, Clone)]
pub enum DeliveryAttempt {
    /// The receiver answered 2xx.
    Delivered { status_code: u16 },
    /// It did not; try again at `retry_at_ms`, or give up when that is past the retry window.
    Failed {
        status_code: Option<u16>,
        error: String,
        retry_at_ms: i64,
    },
}

/// Deliveries as one is read by id.
const DELIVERIES: ScopedTable = ScopedTable {
    table: "webhook_deliveries",
    columns: DELIVERY_COLUMNS,
    order: None,
};

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event_kind, status, attempts, \
     next_attempt_at_ms, last_status_code, last_error, created_at_ms, delivered_at_ms";

fn delivery_from_row(r: &AnyRow) -> Result<WebhookDelivery, StoreError> {
    Ok(from_columns!(r => WebhookDelivery {
        id, webhook_id, event_id, event_kind, status, attempts, next_attempt_at_ms,
        last_status_code, last_error, created_at_ms, delivered_at_ms,
    }))
}

/// Queues a delivery of `event` to every subscription of its workspace that wants it, inside
/// the transaction that stores the event.
pub(super) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
) -> Result<(), StoreError> {
    let Some(kind) = webhook_event_for(&event.kind) else {
        return Ok(());
    };
    let rows = sqlx::query("SELECT id, events FROM webhooks WHERE workspace_id = $1")
        .bind(&event.workspace_id)
        .fetch_all(&mut **tx)
        .await?;
    let body = serde_json::json!({
        "id": event.id,
        "type": kind,
        "created_at": rfc3339(event.at_ms),
        "workspace_id": event.workspace_id,
        "data": {"call_id": event.call_id, "payload": event.payload},
    })
    .to_string();
    let now = now_ms();
    for row in &rows {
        let events: String = row.try_get("events")?;
        let events: Vec<String> = parse_json("webhook events", &events)?;
        if !events.iter().any(|e| e == kind || e == "*") {
            continue;
        }
        let webhook_id: String = row.try_get("id")?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, workspace_id, event_id, event_kind, \
             payload, status, attempts, next_attempt_at_ms, created_at_ms, retry_until_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $8)",
        )
        .bind(new_id())
        .bind(&webhook_id)
        .bind(&event.workspace_id)
        .bind(&event.id)
        .bind(kind)
        .bind(&body)
        .bind(now)
        .bind(now + RETRY_WINDOW_MS)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// A page of one subscription's deliveries, newest first, older than the delivery `before`.
    pub async fn webhook_deliveries(
        &self,
        scope: &WorkspaceScope,
        webhook_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<WebhookDelivery>, Option<String>), StoreError> {
        // 404 for a subscription that is not the scoped workspace's.
        self.scoped_get::<Webhook>(scope, webhook_id).await?;
        let limit = limit.clamp(1, 500);
        // Ids are UUIDv7: newest first is id order, and a cursor is the last id of a page.
        let after_cursor = if before.is_some() { " AND id < $4" } else { "" };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE workspace_id = $1 AND webhook_id = $2{after_cursor} ORDER BY id DESC LIMIT $3"
        );
        let mut query = sqlx::query(&sql)
            .bind(&scope.workspace_id)
            .bind(webhook_id)
            .bind(limit + 1);
        if let Some(before) = before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut page = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if page.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            page.pop();
            page.last().map(|d| d.id.clone())
        } else {
            None
        };
        Ok((page, next))
    }

    /// Queues a delivery again, now, with a fresh retry window; refused while it is in flight.
    pub async fn redeliver(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        webhook_id: &str,
        delivery_id: &str,
    ) -> Result<WebhookDelivery, StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let now = now_ms();
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM webhook_deliveries WHERE workspace_id = $1 AND webhook_id = $2 AND id = $3",
            )
            .bind(&scope.workspace_id)
            .bind(webhook_id)
            .bind(delivery_id)
            .fetch_optional(&mut *tx)
            .await?;
            match status.as_deref() {
                None => return Err(StoreError::NotFound),
                Some("delivering") => {
                    return Err(StoreError::Conflict(
                        "the delivery is being attempted right now".into(),
                    ))
                }
                Some(_) => {}
            }
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at_ms = $1, \
                 retry_until_ms = $2 WHERE id = $3 AND status <> 'delivering'",
            )
            .bind(now)
            .bind(now + RETRY_WINDOW_MS)
            .bind(delivery_id)
            .execute(&mut *tx)
            .await?;
            Change::of(scope, actor, "webhook_delivery", delivery_id)
                .commit(tx, "webhook.redelivered", serde_json::json!({"webhook_id": webhook_id}))
                .await?;
            Ok(())
        })
        .await?;
        delivery_from_row(&self.scoped_row(&DELIVERIES, scope, delivery_id).await?)
    }

    /// Claims up to `limit` deliveries due now for `lease_ms` (across workspaces: for the
    /// delivery task only) and returns their ids. On PostgreSQL and CockroachDB the rows are
    /// picked and claimed in one statement with `FOR UPDATE SKIP LOCKED`, so control-plane
    /// replicas polling at once each take different rows instead of racing for the same ones;
    /// on SQLite (one process) each due row is claimed by a conditional update. Either way a row
    /// is claimed by one process at a time.
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        if self.engine() == super::Engine::Postgres {
            return Ok(sqlx::query_scalar(
                "UPDATE webhook_deliveries SET status = 'delivering', next_attempt_at_ms = $1 \
                 WHERE id IN (SELECT id FROM webhook_deliveries \
                   WHERE status = 'pending' AND next_attempt_at_ms <= $2 \
                   ORDER BY next_attempt_at_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 AND status = 'pending' RETURNING id",
            )
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?);
        }
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at_ms <= $1 \
             ORDER BY next_attempt_at_ms LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            let rows = sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivering', next_attempt_at_ms = $1 \
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at_ms <= $3",
            )
            .bind(now + lease_ms)
            .bind(&id)
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected();
            if rows == 1 {
                claimed.push(id);
            }
        }
        Ok(claimed)
    }

    /// How many deliveries are due at `now` and not yet taken (the backlog `/metrics` shows).
    pub async fn webhook_backlog(&self, now: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending' \
             AND next_attempt_at_ms <= $1",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?)
    }

    /// What a delivery this process claimed needs to be sent; `None` when it cannot be (its
    /// subscription is gone: the row is dropped; its secret cannot be opened: it is failed).
    pub async fn claimed_delivery(&self, id: &str) -> Result<Option<DueDelivery>, StoreError> {
        let row = sqlx::query(
            "SELECT d.id, d.payload, d.attempts, d.retry_until_ms, d.created_at_ms, w.id AS webhook_id, \
             w.url, w.secret, c.trace_id, c.trace_span_id \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             LEFT JOIN call_events e ON e.id = d.event_id LEFT JOIN calls c ON c.id = e.call_id \
             WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
            return Ok(None);
        };
        let webhook_id: String = row.try_get("webhook_id")?;
        let sealed: String = row.try_get("secret")?;
        let secret = match self
            .sealer()
            .and_then(|s| s.open(&aad(&webhook_id), &sealed))
        {
            Ok(secret) => secret,
            Err(error) => {
                // Retrying cannot help (the key changed, or the row was tampered with): say so in
                // the delivery log rather than retry for a day.
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', last_error = $1 \
                     WHERE id = $2 AND status = 'delivering'",
                )
                .bind(format!("cannot sign: {error}"))
                .bind(id)
                .execute(self.pool())
                .await?;
                return Ok(None);
            }
        };
        Ok(Some(DueDelivery {
            id: row.try_get("id")?,
            url: row.try_get("url")?,
            secret,
            body: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
            retry_until_ms: row.try_get("retry_until_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
            call_trace: match (row.try_get("trace_id")?, row.try_get("trace_span_id")?) {
                (Some(trace), Some(span)) => Some((trace, span)),
                _ => None,
            },
        }))
    }

    /// Records the outcome of an attempt on a delivery this process claimed.
    pub async fn finish_delivery(
        &self,
        id: &str,
        attempt: &DeliveryAttempt,
        retry_until_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let (status, next, code, error, delivered) = match attempt {
            DeliveryAttempt::Delivered { status_code } => (
                "delivered",
                now,
                Some(i64::from(*status_code)),
                None,
                Some(now),
            ),
            DeliveryAttempt::Failed {
                status_code,
                error,
                retry_at_ms,
            } => {
                let status = if *retry_at_ms > retry_until_ms {
                    "failed"
                } else {
                    "pending"
                };
                let code = status_code.map(i64::from);
                (status, *retry_at_ms, code, Some(error.as_str()), None)
            }
        };
        // Retried on contention: a lost outcome would leave the row claimed until its lease
        // ran out, and then send it again.
        retry(&self.health, || async {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
                 next_attempt_at_ms = $2, last_status_code = $3, last_error = $4, \
                 delivered_at_ms = $5 WHERE id = $6 AND status = 'delivering'",
            )
            .bind(status)
            .bind(next)
            .bind(code)
            .bind(error)
            .bind(delivered)
            .bind(id)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Gives a claim back untried (this process is stopping), due at once.
    pub async fn release_delivery(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at_ms = $1 \
             WHERE id = $2 AND status = 'delivering'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Returns claims whose lease ran out (their process died) to the queue.
    pub async fn reclaim_expired_deliveries(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending' \
             WHERE status = 'delivering' AND next_attempt_at_ms < $1",
        )
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}

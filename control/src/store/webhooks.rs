//! Webhook subscriptions in the store: a URL, the events it wants and the secret deliveries are
//! signed with (stored sealed, never shown again). Deliveries themselves are queued and worked
//! off in `deliveries`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::changed_fields;
use super::change::{Cell, Detail, Reach, RowResource};
use super::columns::from_columns;
use super::scoped::{PagePosition, ScopedResource, ScopedTable};
use super::{parse_json, Store, StoreError, WorkspaceScope};
use freya_shared::ids::new_id;

/// The events a subscription may ask for; `*` asks for all of them.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "call.started",
    "call.answered",
    "call.ended",
    "call.failed",
    "call.transcript_ready",
    "tool.failed",
];

/// The webhook event a stored call event becomes, if it becomes one.
pub(super) fn webhook_event_for(kind: &str) -> Option<&'static str> {
    match kind {
        "call.transcript" => Some("call.transcript_ready"),
        // Edges record a failed customer tool as `call.tool_failed`.
        "call.tool_failed" => Some("tool.failed"),
        other => WEBHOOK_EVENTS.iter().copied().find(|e| *e == other),
    }
}

/// A stored subscription (its secret stays sealed in the store).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A subscription as created or replaced; `secret: None` on an update keeps the stored one.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
}

const WEBHOOK: RowResource = RowResource {
    resource: "webhook",
    table: "webhooks",
    reach: Reach::AuditOnly,
};

const WEBHOOKS: ScopedTable = ScopedTable {
    table: "webhooks",
    columns: "id, workspace_id, url, events, created_at_ms, updated_at_ms",
    order: None,
};

impl ScopedResource for Webhook {
    const TABLE: &'static ScopedTable = &WEBHOOKS;

    fn from_row(_: &Store, row: &AnyRow) -> Result<Self, StoreError> {
        let events: String = row.try_get("events")?;
        Ok(from_columns!(row => Webhook {
            id, workspace_id, url, created_at_ms, updated_at_ms;
            events: parse_json("webhook events", &events)?,
        }))
    }

    fn position(&self) -> PagePosition {
        PagePosition::of(self.created_at_ms, &self.id)
    }
}

pub(super) fn aad(id: &str) -> String {
    format!("webhook:{id}")
}

fn events_json(events: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(events).map_err(|e| StoreError::Corrupt {
        what: "webhook events",
        message: e.to_string(),
    })
}

impl Store {
    /// Stores a new subscription (already validated; `secret` is required).
    pub async fn create_webhook(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        hook: &NewWebhook,
    ) -> Result<Webhook, StoreError> {
        let id = new_id();
        let secret = hook.secret.as_deref().ok_or(StoreError::InvalidReference {
            field: "secret",
            message: "is required".into(),
        })?;
        let sealed = self.sealer()?.seal(&aad(&id), secret)?;
        let events = events_json(&hook.events)?;
        self.insert_resource(
            WEBHOOK.row(scope, actor, &id),
            &[
                ("url", Cell::Text(&hook.url)),
                ("events", Cell::Text(&events)),
                ("secret", Cell::Text(&sealed)),
            ],
            serde_json::json!({"url": hook.url, "events": hook.events}),
        )
        .await
    }

    /// Replaces a subscription's URL and events, and its secret when one is given.
    pub async fn update_webhook(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        hook: &NewWebhook,
    ) -> Result<Webhook, StoreError> {
        let sealed = match &hook.secret {
            Some(secret) => Some(self.sealer()?.seal(&aad(id), secret)?),
            None => None,
        };
        let events = events_json(&hook.events)?;
        let after = serde_json::json!({"url": hook.url, "events": hook.events});
        let make = |before: &AnyRow| {
            let before_events: String = before.try_get("events")?;
            let before = serde_json::json!({
                "url": before.try_get::<String, _>("url")?,
                "events": parse_json::<serde_json::Value>("webhook events", &before_events)?,
            });
            let mut detail = changed_fields(&before, &after);
            if sealed.is_some() {
                // A new secret was given: say so, never what it is.
                detail["changes"]["secret"] = serde_json::json!("changed");
            }
            Ok(detail)
        };
        self.update_resource(
            WEBHOOK.row(scope, actor, id),
            &[
                ("url = ?", Cell::Text(&hook.url)),
                ("events = ?", Cell::Text(&events)),
                (
                    "secret = COALESCE(?, secret)",
                    Cell::MaybeText(sealed.as_deref()),
                ),
            ],
            &Detail {
                columns: "url, events",
                make: &make,
            },
        )
        .await
    }

    /// Deletes a subscription and its queued and logged deliveries.
    pub async fn delete_webhook(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let deliveries = ("webhook_deliveries", "webhook_id");
        self.delete_resource(WEBHOOK.row(scope, actor, id), &[deliveries])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_event_kinds_map_to_webhook_events() {
        assert_eq!(
            webhook_event_for("call.transcript"),
            Some("call.transcript_ready")
        );
        assert_eq!(webhook_event_for("call.tool_failed"), Some("tool.failed"));
        assert_eq!(webhook_event_for("call.ended"), Some("call.ended"));
        assert_eq!(webhook_event_for("call.turn_latency"), None);
    }
}

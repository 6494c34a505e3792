//! Reading the audit log: who did what to which resource and when, newest first, paged by an
//! opaque cursor over `(at_ms, id)`. Entries are written by each change's own transaction
//! (see `identity::insert_audit`), never here.

use serde::Serialize;
use sqlx::Row;

use super::{parse_json, Store, StoreError, WorkspaceScope};

/// One audit-log entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: String,
    /// `user:<id>` or `api_key:<id>`.
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub detail: serde_json::Value,
    pub at_ms: i64,
    /// The client address the change came from; `None` for the system's own changes.
    pub source_ip: Option<String>,
}

impl Store {
    /// Up to `limit` entries of the scoped workspace older than `before` (newest first), and the
    /// position the next page starts after.
    pub async fn audit_page(
        &self,
        scope: &WorkspaceScope,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<(Vec<AuditRecord>, Option<(i64, String)>), StoreError> {
        let limit = limit.clamp(1, 500);
        let (at, id) = before.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(
            "SELECT id, actor, action, resource_type, resource_id, detail, at_ms, source_ip FROM audit_log \
             WHERE workspace_id = $1 AND (at_ms < $2 OR (at_ms = $2 AND id < $3)) \
             ORDER BY at_ms DESC, id DESC LIMIT $4",
        )
        .bind(&scope.workspace_id)
        .bind(at)
        .bind(&id)
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let mut entries = rows
            .iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    resource_type: r.try_get("resource_type")?,
                    resource_id: r.try_get("resource_id")?,
                    detail: parse_json("audit detail", &detail)?,
                    at_ms: r.try_get("at_ms")?,
                    source_ip: r.try_get("source_ip")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if entries.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            entries.pop();
            entries.last().map(|e| (e.at_ms, e.id.clone()))
        } else {
            None
        };
        Ok((entries, next))
    }
}

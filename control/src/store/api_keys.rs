//! API keys as admins manage them: issued (the secret shown once), listed by prefix, revoked
//! (never by a caller whose role is below the key's).
//! Every request looks its key up again (there is no cache), so a revoked key stops working on
//! the very next request.

use serde::Serialize;
use sqlx::Row;

use super::change::Change;
use super::columns::from_columns;
use super::identity::{insert_audit, AuditEntry};
use super::{retry, NewApiKey, Role, Store, StoreError, WorkspaceScope};
use freya_shared::ids::now_ms;

/// A key as listed: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl Store {
    /// Issues a key in the scoped workspace and records who did.
    pub async fn issue_api_key(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        name: &str,
        role: Role,
    ) -> Result<NewApiKey, StoreError> {
        let key = self.create_api_key(scope, name, role).await?;
        insert_audit(
            self.pool(),
            scope,
            AuditEntry {
                actor,
                action: "api_key.created",
                resource_type: "api_key",
                resource_id: &key.id,
                detail: serde_json::json!({"name": name, "role": role.as_str(), "prefix": key.prefix}),
            },
        )
        .await?;
        Ok(key)
    }

    /// The scoped workspace's keys, revoked ones included, oldest first.
    pub async fn api_keys(&self, scope: &WorkspaceScope) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, role, created_at_ms, last_used_at_ms, revoked_at_ms \
             FROM api_keys WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(&scope.workspace_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(from_columns!(r => ApiKeyInfo {
                    id, name, prefix, created_at_ms, last_used_at_ms, revoked_at_ms;
                    role: Role::parse(&role).ok_or(StoreError::Corrupt {
                        what: "api key role",
                        message: role,
                    })?,
                }))
            })
            .collect()
    }

    /// Revokes a key of the scoped workspace; it fails its next request. `NotFound` for a key
    /// that is not there or already revoked; `Forbidden` for a key whose role is above
    /// `ceiling`, the revoking caller's own role.
    pub async fn revoke_api_key(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        ceiling: Role,
    ) -> Result<(), StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let role: Option<String> = sqlx::query_scalar(
                "SELECT role FROM api_keys \
                 WHERE workspace_id = $1 AND id = $2 AND revoked_at_ms IS NULL",
            )
            .bind(&scope.workspace_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let role = role.ok_or(StoreError::NotFound)?;
            let role = Role::parse(&role).ok_or(StoreError::Corrupt {
                what: "api key role",
                message: role,
            })?;
            if role > ceiling {
                return Err(StoreError::Forbidden(format!(
                    "a `{}` cannot revoke a `{}` key",
                    ceiling.as_str(),
                    role.as_str()
                )));
            }
            let revoked = sqlx::query(
                "UPDATE api_keys SET revoked_at_ms = $1 \
                 WHERE workspace_id = $2 AND id = $3 AND revoked_at_ms IS NULL",
            )
            .bind(now_ms())
            .bind(&scope.workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if revoked == 0 {
                return Err(StoreError::NotFound);
            }
            Change::of(scope, actor, "api_key", id)
                .commit(tx, "api_key.revoked", serde_json::json!({}))
                .await?;
            Ok(())
        })
        .await
    }
}

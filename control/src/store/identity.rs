//! Workspaces, users, memberships and API keys: who may act, and in which workspace. API keys
//! are stored as SHA-256 hashes (they are long random secrets, so a fast hash is enough) and shown
//! once, when created; a short visible prefix lets people tell them apart.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{is_unique_violation, retry, Store, StoreError, WorkspaceScope};
use freya_shared::ids::{new_id, now_ms};

/// What a member or key may do in a workspace, from most to least.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Owner,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// The role stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Role::Viewer, Role::Editor, Role::Admin, Role::Owner]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// The caller behind a valid API key.
#[derive(Debug, Clone)]
pub struct ApiKeyIdentity {
    pub key_id: String,
    pub scope: WorkspaceScope,
    pub role: Role,
}

/// A freshly created key: `key` is the only time the secret is seen.
#[derive(Debug, Clone, Serialize)]
pub struct NewApiKey {
    pub id: String,
    pub key: String,
    pub prefix: String,
}

/// How stale an API key's `last_used_at` may be before a request writes it again.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Creates a workspace and returns its id.
    pub async fn create_workspace(&self, name: &str) -> Result<String, StoreError> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO workspaces (id, name, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $3)",
        )
        .bind(&id)
        .bind(name)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Creates a user with an already hashed password; a taken email is a conflict.
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<String, StoreError> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(email.to_ascii_lowercase())
        .bind(name)
        .bind(password_hash)
        .bind(now_ms())
        .execute(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("a user with email {email} exists"))
            } else {
                e.into()
            }
        })?;
        Ok(id)
    }

    /// Replaces a user's password hash; `NotFound` for an unknown email.
    pub async fn set_user_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE email = $2")
            .bind(password_hash)
            .bind(email.to_ascii_lowercase())
            .execute(self.pool())
            .await?
            .rows_affected();
        if updated == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Makes `user_id` a member of the scoped workspace with `role`.
    pub async fn add_member(
        &self,
        scope: &WorkspaceScope,
        user_id: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (workspace_id, user_id, role, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&scope.workspace_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Creates an API key acting in the scoped workspace with `role`.
    pub async fn create_api_key(
        &self,
        scope: &WorkspaceScope,
        name: &str,
        role: Role,
    ) -> Result<NewApiKey, StoreError> {
        let secret: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let key = format!("fk_{secret}");
        let prefix: String = key.chars().take(10).collect();
        let id = new_id();
        sqlx::query(
            "INSERT INTO api_keys (id, workspace_id, name, prefix, key_hash, role, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&scope.workspace_id)
        .bind(name)
        .bind(&prefix)
        .bind(hash_key(&key))
        .bind(role.as_str())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(NewApiKey { id, key, prefix })
    }

    /// The identity behind `key`, if it is a live key; records that it was used.
    pub async fn authenticate_api_key(
        &self,
        key: &str,
    ) -> Result<Option<ApiKeyIdentity>, StoreError> {
        let row = sqlx::query(
            "SELECT id, workspace_id, role, last_used_at_ms FROM api_keys \
             WHERE key_hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(hash_key(key))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key_id: String = row.try_get("id")?;
        let role_name: String = row.try_get("role")?;
        let role = Role::parse(&role_name).ok_or(StoreError::Corrupt {
            what: "api key role",
            message: role_name,
        })?;
        let identity = ApiKeyIdentity {
            scope: WorkspaceScope {
                workspace_id: row.try_get("workspace_id")?,
            },
            key_id,
            role,
        };
        // `last used` is shown to a minute: writing it on every request would put a write on
        // every read (one writer at a time on SQLite, a hot row on CockroachDB).
        let last_used: Option<i64> = row.try_get("last_used_at_ms")?;
        if last_used.is_some_and(|at| now_ms() - at < LAST_USED_RESOLUTION_MS) {
            return Ok(Some(identity));
        }
        let pool = self.pool().clone();
        let key_id = identity.key_id.clone();
        let noted = retry(&self.health, || {
            let pool = pool.clone();
            let key_id = key_id.clone();
            async move {
                sqlx::query("UPDATE api_keys SET last_used_at_ms = $1 WHERE id = $2")
                    .bind(now_ms())
                    .bind(&key_id)
                    .execute(&pool)
                    .await?;
                Ok(())
            }
        })
        .await;
        match noted {
            // Bookkeeping, not the caller's change: a full disk must not turn every read into
            // an error. The store is marked unhealthy, and the caller's own writes still fail.
            Err(e) if self.storage_health().record(&e).is_some() => {
                tracing::warn!(error = %e, key = %identity.key_id, "cannot note an API key's last use");
            }
            other => other?,
        }
        Ok(Some(identity))
    }

    /// The latest audit entries of the scoped workspace as (action, resource type, resource id),
    /// newest first.
    pub async fn audit_actions(
        &self,
        scope: &WorkspaceScope,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT action, resource_type, resource_id FROM audit_log WHERE workspace_id = $1 \
             ORDER BY at_ms DESC, id DESC LIMIT $2",
        )
        .bind(&scope.workspace_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("action")?,
                    r.try_get("resource_type")?,
                    r.try_get("resource_id")?,
                ))
            })
            .collect()
    }
}

/// One audit-log entry: who did what to which resource. Written inside the transaction of the
/// change itself, so a change is never without its entry.
pub(crate) struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub detail: serde_json::Value,
}

tokio::task_local! {
    /// The address of the client whose request is being served, set around every API request
    /// (see `api::record_source`), so every audit entry says where its change came from without
    /// any handler having to pass it on.
    static REQUEST_SOURCE: std::net::IpAddr;
}

/// The address of the client whose API request is being served, if any.
pub(crate) fn request_source() -> Option<String> {
    REQUEST_SOURCE.try_with(|ip| ip.to_string()).ok()
}

/// Runs `work` with `source` as the client address audit entries record.
pub async fn with_request_source<F: std::future::Future>(
    source: std::net::IpAddr,
    work: F,
) -> F::Output {
    REQUEST_SOURCE.scope(source, work).await
}

/// Writes `entry` for the scoped workspace through `executor` (a transaction, usually).
pub(crate) async fn insert_audit<'e, E>(
    executor: E,
    scope: &WorkspaceScope,
    entry: AuditEntry<'_>,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (id, workspace_id, actor, action, resource_type, resource_id, detail, at_ms, source_ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(&scope.workspace_id)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.resource_type)
    .bind(entry.resource_id)
    .bind(entry.detail.to_string())
    .bind(now_ms())
    .bind(REQUEST_SOURCE.try_with(|ip| ip.to_string()).ok())
    .execute(executor)
    .await?;
    Ok(())
}

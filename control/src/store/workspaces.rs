//! Workspaces as people manage them through the API, and the user lookups logging in needs:
//! creating a workspace makes its creator the owner; deleting one removes everything in it.
//! Members are in `members.rs`.

use serde::Serialize;
use sqlx::Row;

use super::change::{Cell, Change};
use super::columns::from_columns;
use super::identity::{insert_audit, AuditEntry};
use super::retention::{Retention, RETENTION_COLUMNS};
use super::{retry, Role, Store, StoreError, WorkspaceScope};
use freya_shared::ids::{new_id, now_ms};

/// A workspace as its members see it.
#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    /// The role of the user who asked (set when listed for a user).
    pub role: Option<Role>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// How long its call data is kept (see `retention.rs`).
    pub retention: Retention,
}

/// A user as the login path needs it.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub id: String,
    pub password_hash: String,
}

pub(super) fn role_of(name: String) -> Result<Role, StoreError> {
    Role::parse(&name).ok_or(StoreError::Corrupt {
        what: "membership role",
        message: name,
    })
}

/// Takes the workspace row's lock for the rest of `tx` (PostgreSQL and CockroachDB lock the row;
/// SQLite has one writer anyway), or `NotFound`.
pub(super) async fn lock_workspace(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
) -> Result<(), StoreError> {
    let locked = sqlx::query("UPDATE workspaces SET updated_at_ms = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(&scope.workspace_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if locked == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

impl Store {
    /// The id and password hash of the user with `email`, if there is one.
    pub async fn user_credentials(
        &self,
        email: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(email.to_ascii_lowercase())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(UserCredentials {
                id: r.try_get("id")?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    /// Records that logins were locked out: `actor` (the email or client address throttled)
    /// did `action` on `resource_type`/`resource_id`. The entry goes into the audit log of every
    /// workspace the user with `email` belongs to, so their admins see the guessing; when no
    /// such user (or workspace) exists, into the system's own log (`workspace_id` empty, which
    /// no workspace reads).
    pub async fn audit_login_lockout(
        &self,
        email: &str,
        actor: &str,
        resource_type: &str,
        resource_id: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut workspaces: Vec<String> = sqlx::query_scalar(
            "SELECT m.workspace_id FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE u.email = $1 ORDER BY m.workspace_id",
        )
        .bind(email.to_ascii_lowercase())
        .fetch_all(self.pool())
        .await?;
        if workspaces.is_empty() {
            workspaces.push(String::new());
        }
        let mut tx = self.pool().begin().await?;
        for workspace_id in workspaces {
            insert_audit(
                &mut *tx,
                &WorkspaceScope { workspace_id },
                AuditEntry {
                    actor,
                    action: "login.locked",
                    resource_type,
                    resource_id,
                    detail: detail.clone(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the user `user_id` still exists (a token outlives a deleted user otherwise).
    pub async fn user_exists(&self, user_id: &str) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// The role of `user_id` in `workspace_id`, if a member.
    pub async fn membership(
        &self,
        user_id: &str,
        workspace_id: &str,
    ) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        role.map(role_of).transpose()
    }

    /// Creates a workspace owned by `user_id`.
    pub async fn create_owned_workspace(
        &self,
        user_id: &str,
        actor: &str,
        name: &str,
    ) -> Result<Workspace, StoreError> {
        let id = new_id();
        let scope = WorkspaceScope {
            workspace_id: id.clone(),
        };
        retry(&self.health, || async {
            let now = now_ms();
            let mut tx = self.pool().begin().await?;
            sqlx::query(
                "INSERT INTO workspaces (id, name, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $3)",
            )
            .bind(&id)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at_ms) VALUES ($1, $2, 'owner', $3)",
            )
            .bind(&id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Change::of(&scope, actor, "workspace", &id)
                .commit(tx, "workspace.created", serde_json::json!({"name": name}))
                .await?;
            Ok(())
        })
        .await?;
        let mut workspace = self.workspace(&scope).await?;
        workspace.role = Some(Role::Owner);
        Ok(workspace)
    }

    /// The scoped workspace.
    pub async fn workspace(&self, scope: &WorkspaceScope) -> Result<Workspace, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT id, name, created_at_ms, updated_at_ms, {RETENTION_COLUMNS} FROM workspaces \
             WHERE id = $1"
        ))
        .bind(&scope.workspace_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(from_columns!(row => Workspace {
            id, name, created_at_ms, updated_at_ms;
            role: None,
            retention: Retention::from_row(&row)?,
        }))
    }

    /// The workspaces `user_id` belongs to, with their role in each, oldest first.
    pub async fn workspaces_of(&self, user_id: &str) -> Result<Vec<Workspace>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT w.id, w.name, w.created_at_ms, w.updated_at_ms, m.role, {RETENTION_COLUMNS} \
             FROM workspaces w JOIN memberships m ON m.workspace_id = w.id WHERE m.user_id = $1 \
             ORDER BY w.id"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(from_columns!(r => Workspace {
                    id, name, created_at_ms, updated_at_ms;
                    role: Some(role_of(r.try_get("role")?)?),
                    retention: Retention::from_row(r)?,
                }))
            })
            .collect()
    }

    /// Renames the scoped workspace.
    pub async fn rename_workspace(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        name: &str,
    ) -> Result<Workspace, StoreError> {
        self.update_workspace_row(
            scope,
            actor,
            &[("name = ?", Cell::Text(name))],
            "workspace.renamed",
            serde_json::json!({"name": name}),
        )
        .await?;
        self.workspace(scope).await
    }

    /// Deletes the scoped workspace and everything in it, and tells edges (its numbers stop
    /// answering). The audit entry of the deletion stays.
    pub async fn delete_workspace(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.config_change(|| async {
            let mut tx = self.pool().begin().await?;
            lock_workspace(&mut tx, scope).await?;
            for table in [
                "webhook_deliveries",
                "webhooks",
                "idempotency_keys",
                "phone_number_regions",
                "phone_numbers",
                "agents",
                "providers",
                "api_keys",
                "memberships",
                "call_events",
                "calls",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1"))
                    .bind(&scope.workspace_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM workspaces WHERE id = $1")
                .bind(&scope.workspace_id)
                .execute(&mut *tx)
                .await?;
            Change::of(scope, actor, "workspace", &scope.workspace_id)
                .commit_config(tx, "workspace.deleted", serde_json::json!({}))
                .await
        })
        .await
    }
}

//! The members of a workspace: added by email, given a role, removed. No caller changes or
//! removes a member above its own role, or grants a role above it. A workspace always keeps
//! at least one owner — every change that could remove the last one first locks the workspace
//! row, so two concurrent demotions cannot both pass the check.

use serde::Serialize;
use sqlx::Row;

use super::change::{delete_scoped, Change};
use super::columns::from_columns;
use super::workspaces::{lock_workspace, role_of};
use super::{retry, Role, Store, StoreError, WorkspaceScope};
use freya_shared::ids::now_ms;

/// A member of a workspace.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at_ms: i64,
}

async fn owner_count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'owner'",
    )
    .bind(&scope.workspace_id)
    .fetch_one(&mut **tx)
    .await?)
}

async fn member_role(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
    user_id: &str,
) -> Result<Role, StoreError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
            .bind(&scope.workspace_id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    role_of(role.ok_or(StoreError::NotFound)?)
}

/// A caller acting on a member whose role is above its own.
fn above_ceiling(ceiling: Role, verb: &str, member: Role) -> StoreError {
    StoreError::Forbidden(format!(
        "a `{}` cannot {verb} a `{}` member",
        ceiling.as_str(),
        member.as_str()
    ))
}

fn last_owner() -> StoreError {
    StoreError::Conflict("a workspace must keep at least one owner".into())
}

impl Store {
    /// The members of the scoped workspace, by email.
    pub async fn members(&self, scope: &WorkspaceScope) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.email, u.name, m.role, m.created_at_ms FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY u.email",
        )
        .bind(&scope.workspace_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(from_columns!(r => Member {
                    user_id, email, name, created_at_ms;
                    role: role_of(r.try_get("role")?)?,
                }))
            })
            .collect()
    }

    /// One member of the scoped workspace.
    pub async fn member(
        &self,
        scope: &WorkspaceScope,
        user_id: &str,
    ) -> Result<Member, StoreError> {
        self.members(scope)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id)
            .ok_or(StoreError::NotFound)
    }

    /// Adds the existing user with `email` to the scoped workspace.
    pub async fn add_member_by_email(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        email: &str,
        role: Role,
    ) -> Result<Member, StoreError> {
        let user_id = retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let user_id: Option<String> =
                sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
                    .bind(email.to_ascii_lowercase())
                    .fetch_optional(&mut *tx)
                    .await?;
            let user_id = user_id.ok_or_else(|| StoreError::InvalidReference {
                field: "email",
                message: format!("no user has the email {email}"),
            })?;
            let inserted = sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, user_id) DO NOTHING",
            )
            .bind(&scope.workspace_id)
            .bind(&user_id)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "{email} is already a member of this workspace"
                )));
            }
            Change::of(scope, actor, "member", &user_id)
                .commit(
                    tx,
                    "member.added",
                    serde_json::json!({"email": email, "role": role.as_str()}),
                )
                .await?;
            Ok(user_id)
        })
        .await?;
        self.member(scope, &user_id).await
    }

    /// Changes a member's role, refusing to demote the last owner. `ceiling` is the caller's
    /// own role: a member above it is not the caller's to change, nor a role above it to grant.
    pub async fn change_member_role(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        user_id: &str,
        role: Role,
        ceiling: Role,
    ) -> Result<Member, StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            lock_workspace(&mut tx, scope).await?;
            let current = member_role(&mut tx, scope, user_id).await?;
            if current > ceiling {
                return Err(above_ceiling(ceiling, "change", current));
            }
            if role > ceiling {
                return Err(StoreError::Forbidden(format!(
                    "a `{}` cannot grant the `{}` role",
                    ceiling.as_str(),
                    role.as_str()
                )));
            }
            if current == Role::Owner
                && role != Role::Owner
                && owner_count(&mut tx, scope).await? <= 1
            {
                return Err(last_owner());
            }
            sqlx::query(
                "UPDATE memberships SET role = $1 WHERE workspace_id = $2 AND user_id = $3",
            )
            .bind(role.as_str())
            .bind(&scope.workspace_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            Change::of(scope, actor, "member", user_id)
                .commit(
                    tx,
                    "member.role_changed",
                    serde_json::json!({"from": current.as_str(), "to": role.as_str()}),
                )
                .await
        })
        .await?;
        self.member(scope, user_id).await
    }

    /// Removes a member, refusing to remove the last owner or a member whose role is above
    /// `ceiling`, the caller's own role.
    pub async fn remove_member(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        user_id: &str,
        ceiling: Role,
    ) -> Result<(), StoreError> {
        retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            lock_workspace(&mut tx, scope).await?;
            let current = member_role(&mut tx, scope, user_id).await?;
            if current > ceiling {
                return Err(above_ceiling(ceiling, "remove", current));
            }
            if current == Role::Owner && owner_count(&mut tx, scope).await? <= 1 {
                return Err(last_owner());
            }
            delete_scoped(&mut tx, scope, "memberships", "user_id", user_id).await?;
            Change::of(scope, actor, "member", user_id)
                .commit(
                    tx,
                    "member.removed",
                    serde_json::json!({"role": current.as_str()}),
                )
                .await
        })
        .await
    }
}

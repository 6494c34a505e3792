//! Telephony providers in the store: a workspace's SIP trunks, tried by edges in priority order
//! for outbound calls. The spec is stored without its password; the password is stored sealed
//! (see `sealed`) in its own column and opened only for edge snapshots. Every change bumps the
//! configuration version, so edges pick the trunk up at once.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::identity::AuditEntry;
use super::{commit_config_change, parse_json, retry, Store, StoreError, WorkspaceScope};
use freya_shared::ids::{new_id, now_ms};
use freya_shared::model::SipTrunkSpec;
use freya_shared::snapshot::ProviderConfig;

/// The only provider kind so far (Twilio accounts come later).
pub const SIP_TRUNK: &str = "sip_trunk";

/// A stored provider; `spec.password` is always `None` here, `has_password` says whether one is
/// stored.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    pub spec: SipTrunkSpec,
    pub has_password: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What an update does with the stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    Keep,
    Clear,
    Set(String),
}

const PROVIDER_COLUMNS: &str = "id, workspace_id, kind, spec, secret, created_at_ms, updated_at_ms";

fn provider_from_row(row: &AnyRow) -> Result<Provider, StoreError> {
    let spec: String = row.try_get("spec")?;
    let mut spec: SipTrunkSpec = parse_json("provider spec", &spec)?;
    spec.password = None;
    Ok(Provider {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        kind: row.try_get("kind")?,
        spec,
        has_password: row.try_get::<Option<String>, _>("secret")?.is_some(),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn aad(id: &str) -> String {
    format!("provider:{id}")
}

/// The spec as stored: everything but the password.
fn public_spec(spec: &SipTrunkSpec) -> Result<String, StoreError> {
    let mut public = spec.clone();
    public.password = None;
    serde_json::to_string(&public).map_err(|e| StoreError::Corrupt {
        what: "provider spec",
        message: e.to_string(),
    })
}

impl Store {
    /// Stores a new SIP trunk (already validated), its password sealed.
    pub async fn create_provider(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        spec: &SipTrunkSpec,
    ) -> Result<Provider, StoreError> {
        let id = new_id();
        let secret = match &spec.password {
            Some(p) => Some(self.sealer()?.seal(&aad(&id), p)?),
            None => None,
        };
        let document = public_spec(spec)?;
        let version = retry(|| async {
            let now = now_ms();
            let mut tx = self.pool().begin().await?;
            sqlx::query(
                "INSERT INTO providers (id, workspace_id, name, kind, spec, priority, secret, \
                 created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&id)
            .bind(&scope.workspace_id)
            .bind(&spec.name)
            .bind(SIP_TRUNK)
            .bind(&document)
            .bind(i64::from(spec.priority))
            .bind(secret.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            commit_config_change(
                tx,
                scope,
                AuditEntry {
                    actor,
                    action: "provider.created",
                    resource_type: "provider",
                    resource_id: &id,
                    detail: serde_json::json!({"name": spec.name, "host": spec.host}),
                },
            )
            .await
        })
        .await?;
        self.notify_config_changed(version);
        self.provider(scope, &id).await
    }

    /// One provider of the scoped workspace.
    pub async fn provider(&self, scope: &WorkspaceScope, id: &str) -> Result<Provider, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM providers WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(&scope.workspace_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        provider_from_row(&row)
    }

    /// The scoped workspace's providers, in the order edges try them.
    pub async fn providers(&self, scope: &WorkspaceScope) -> Result<Vec<Provider>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM providers WHERE workspace_id = $1 ORDER BY priority, id"
        ))
        .bind(&scope.workspace_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(provider_from_row).collect()
    }

    /// Replaces a provider's spec (already validated; its `password` is ignored) and does
    /// `password` to the stored password.
    pub async fn update_provider(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        spec: &SipTrunkSpec,
        password: &PasswordChange,
    ) -> Result<Provider, StoreError> {
        let document = public_spec(spec)?;
        let sealed = match password {
            PasswordChange::Set(p) => Some(self.sealer()?.seal(&aad(id), p)?),
            _ => None,
        };
        let version = retry(|| async {
            let mut tx = self.pool().begin().await?;
            let sql = match password {
                PasswordChange::Keep => {
                    "UPDATE providers SET name = $1, spec = $2, priority = $3, updated_at_ms = $4 \
                     WHERE workspace_id = $5 AND id = $6"
                }
                _ => {
                    "UPDATE providers SET name = $1, spec = $2, priority = $3, updated_at_ms = $4, \
                     secret = $7 WHERE workspace_id = $5 AND id = $6"
                }
            };
            let mut query = sqlx::query(sql)
                .bind(&spec.name)
                .bind(&document)
                .bind(i64::from(spec.priority))
                .bind(now_ms())
                .bind(&scope.workspace_id)
                .bind(id);
            if *password != PasswordChange::Keep {
                query = query.bind(sealed.as_deref());
            }
            if query.execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let change = match password {
                PasswordChange::Keep => "kept",
                PasswordChange::Clear => "cleared",
                PasswordChange::Set(_) => "changed",
            };
            commit_config_change(
                tx,
                scope,
                AuditEntry {
                    actor,
                    action: "provider.updated",
                    resource_type: "provider",
                    resource_id: id,
                    detail: serde_json::json!({"name": spec.name, "password": change}),
                },
            )
            .await
        })
        .await?;
        self.notify_config_changed(version);
        self.provider(scope, id).await
    }

    /// Deletes a provider; edges stop calling out through it.
    pub async fn delete_provider(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let version = retry(|| async {
            let mut tx = self.pool().begin().await?;
            let deleted = sqlx::query("DELETE FROM providers WHERE workspace_id = $1 AND id = $2")
                .bind(&scope.workspace_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            commit_config_change(
                tx,
                scope,
                AuditEntry {
                    actor,
                    action: "provider.deleted",
                    resource_type: "provider",
                    resource_id: id,
                    detail: serde_json::json!({}),
                },
            )
            .await
        })
        .await?;
        self.notify_config_changed(version);
        Ok(())
    }
}

/// Every trunk an edge of `region` may call out through, passwords opened, read inside the
/// snapshot's transaction.
pub(super) async fn trunks_for_region(
    store: &Store,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    region: &str,
) -> Result<Vec<ProviderConfig>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {PROVIDER_COLUMNS} FROM providers WHERE kind = $1 ORDER BY workspace_id, priority, id"
    ))
    .bind(SIP_TRUNK)
    .fetch_all(&mut **tx)
    .await?;
    let mut trunks = Vec::new();
    for row in &rows {
        let provider = provider_from_row(row)?;
        let usable =
            provider.spec.regions.is_empty() || provider.spec.regions.iter().any(|r| r == region);
        if !usable {
            continue;
        }
        let mut spec = provider.spec;
        if let Some(sealed) = row.try_get::<Option<String>, _>("secret")? {
            // One unreadable credential must not take every workspace's routing down with it.
            match store
                .sealer()
                .and_then(|s| s.open(&aad(&provider.id), &sealed))
            {
                Ok(password) => spec.password = Some(password),
                Err(error) => {
                    tracing::error!(provider = %provider.id, %error, "leaving a trunk out of the snapshot");
                    continue;
                }
            }
        }
        trunks.push(ProviderConfig {
            id: provider.id,
            workspace_id: provider.workspace_id,
            spec,
        });
    }
    Ok(trunks)
}

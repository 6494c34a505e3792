//! Telephony providers in the store: a workspace's SIP trunks and Twilio accounts, tried by
//! edges in priority order for outbound calls (a Twilio account also signs the webhooks of
//! inbound calls). The spec is stored without its secret (a trunk's password, an account's auth
//! token); the secret is stored sealed (see `sealed`) in its own column and opened only for edge
//! snapshots. Every change bumps the configuration version, so edges pick the provider up at
//! once.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::changed_fields;
use super::change::{Cell, Detail, Reach, RowResource};
use super::scoped::{PagePosition, ScopedResource, ScopedTable};
use super::{parse_json, Store, StoreError, WorkspaceScope};
use freya_shared::ids::new_id;
use freya_shared::model::ProviderSpec;
use freya_shared::snapshot::ProviderConfig;

/// A stored provider; its secret (`password`, `auth_token`) is always `None` here, `has_secret`
/// says whether one is stored.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    pub spec: ProviderSpec,
    pub has_secret: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Its registration's state as the edges report it (not a column: filled in by the API
    /// from `Store::provider_registrations`), `None` when no online edge registers it.
    pub registration: Option<super::EdgeProviderRegistration>,
}

/// What an update does with the stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    Keep,
    Clear,
    Set(String),
}

const PROVIDER_COLUMNS: &str = "id, workspace_id, kind, spec, secret, created_at_ms, updated_at_ms";

const PROVIDER: RowResource = RowResource {
    resource: "provider",
    table: "providers",
    reach: Reach::Edges,
};

const PROVIDERS: ScopedTable = ScopedTable {
    table: "providers",
    columns: PROVIDER_COLUMNS,
    order: Some("priority"),
};

impl ScopedResource for Provider {
    const TABLE: &'static ScopedTable = &PROVIDERS;

    fn from_row(_: &Store, row: &AnyRow) -> Result<Self, StoreError> {
        let spec: String = row.try_get("spec")?;
        let mut spec: ProviderSpec = parse_json("provider spec", &spec)?;
        spec.set_secret(None);
        Ok(Provider {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            kind: row.try_get("kind")?,
            spec,
            has_secret: row.try_get::<Option<String>, _>("secret")?.is_some(),
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            registration: None,
        })
    }

    fn position(&self) -> PagePosition {
        PagePosition::of(i64::from(self.spec.priority()), &self.id)
    }
}

fn aad(id: &str) -> String {
    format!("provider:{id}")
}

/// The spec as stored: everything but the secret.
fn public_spec(spec: &ProviderSpec) -> Result<String, StoreError> {
    let mut public = spec.clone();
    public.set_secret(None);
    serde_json::to_string(&public).map_err(|e| StoreError::Corrupt {
        what: "provider spec",
        message: e.to_string(),
    })
}

impl Store {
    /// Stores a new provider (already validated), its secret sealed.
    pub async fn create_provider(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        spec: &ProviderSpec,
    ) -> Result<Provider, StoreError> {
        let id = new_id();
        let secret = match spec.secret() {
            Some(p) => Some(self.sealer()?.seal(&aad(&id), p)?),
            None => None,
        };
        let document = public_spec(spec)?;
        self.insert_resource(
            PROVIDER.row(scope, actor, &id),
            &[
                ("name", Cell::Text(spec.name())),
                ("kind", Cell::Text(spec.kind())),
                ("spec", Cell::Text(&document)),
                ("priority", Cell::Int(i64::from(spec.priority()))),
                ("secret", Cell::MaybeText(secret.as_deref())),
            ],
            serde_json::json!({"name": spec.name(), "kind": spec.kind()}),
        )
        .await
    }

    /// The provider `id` of `scope` with its secret opened: for a check the API makes now
    /// with the stored credentials (`POST /v1/providers/{id}/test`), never for display.
    pub async fn provider_with_secret(
        &self,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<Provider, StoreError> {
        let mut provider: Provider = self.scoped_get(scope, id).await?;
        let sealed: Option<Option<String>> =
            sqlx::query_scalar("SELECT secret FROM providers WHERE id = $1 AND workspace_id = $2")
                .bind(id)
                .bind(&scope.workspace_id)
                .fetch_optional(self.pool())
                .await?;
        if let Some(sealed) = sealed.flatten() {
            let secret = self.sealer()?.open(&aad(id), &sealed)?;
            provider.spec.set_secret(Some(secret));
        }
        Ok(provider)
    }

    /// Replaces a provider's spec (already validated, of the same kind; its secret is ignored)
    /// and does `secret` to the stored secret.
    pub async fn update_provider(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        spec: &ProviderSpec,
        secret: &SecretChange,
    ) -> Result<Provider, StoreError> {
        let document = public_spec(spec)?;
        let sealed = match secret {
            SecretChange::Set(p) => Some(self.sealer()?.seal(&aad(id), p)?),
            _ => None,
        };
        let after: serde_json::Value = parse_json("provider spec", &document)?;
        let mut assignments = vec![
            ("name = ?", Cell::Text(spec.name())),
            ("spec = ?", Cell::Text(&document)),
            ("priority = ?", Cell::Int(i64::from(spec.priority()))),
        ];
        if *secret != SecretChange::Keep {
            assignments.push(("secret = ?", Cell::MaybeText(sealed.as_deref())));
        }
        // The stored documents hold no secret; the secret's change is said, never shown.
        let make = |before: &AnyRow| {
            let before: String = before.try_get("spec")?;
            let before: serde_json::Value = parse_json("provider spec", &before)?;
            let mut detail = changed_fields(&before, &after);
            detail["name"] = serde_json::json!(spec.name());
            if *secret != SecretChange::Keep {
                detail["changes"][spec.secret_field()] = serde_json::json!("changed");
            }
            Ok(detail)
        };
        self.update_resource(
            PROVIDER.row(scope, actor, id),
            &assignments,
            &Detail {
                columns: "spec",
                make: &make,
            },
        )
        .await
    }

    /// Deletes a provider; edges stop calling out through it.
    pub async fn delete_provider(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        self.delete_resource(PROVIDER.row(scope, actor, id), &[])
            .await
    }
}

/// Every provider an edge of `region` may use, secrets opened, read inside the snapshot's
/// transaction.
pub(super) async fn trunks_for_region(
    store: &Store,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    region: &str,
) -> Result<Vec<ProviderConfig>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {PROVIDER_COLUMNS} FROM providers ORDER BY workspace_id, priority, id"
    ))
    .fetch_all(&mut **tx)
    .await?;
    let mut trunks = Vec::new();
    for row in &rows {
        let provider = Provider::from_row(store, row)?;
        if !provider.spec.serves(region) {
            continue;
        }
        let mut spec = provider.spec;
        if let Some(sealed) = row.try_get::<Option<String>, _>("secret")? {
            // One unreadable credential must not take every workspace's routing down with it.
            match store
                .sealer()
                .and_then(|s| s.open(&aad(&provider.id), &sealed))
            {
                Ok(secret) => spec.set_secret(Some(secret)),
                Err(error) => {
                    tracing::error!(provider = %provider.id, %error, "leaving a provider out of the snapshot");
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

//! Phone numbers in the store: a dialable number, the regions that answer it and its target —
//! an agent, or a workflow that has a published version. A number is globally unique — two
//! workspaces cannot both own `+15551234567`.
//!
//! The home region is a column of `phone_numbers`; the further regions are rows of
//! `phone_number_regions` (number, region), not a JSON list: an edge snapshot selects "numbers
//! reachable in region R" through that table's index on `region`, the same way on SQLite,
//! PostgreSQL and CockroachDB, where a JSON column would need a scan and engine-specific
//! operators. The rows are replaced with the number, in its transaction.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::changed_fields;
use super::change::{delete_scoped, Change};
use super::columns::from_columns;
use super::number_forms::{ensure_unclaimed, release_settled};
use super::scoped::{PagePosition, ScopedResource, ScopedTable};
use super::{is_unique_violation, Store, StoreError, WorkspaceScope};
use freya_shared::ids::{new_id, now_ms};
use freya_shared::model::{NumberTarget, PhoneNumberSpec};

/// A stored phone number.
#[derive(Debug, Clone, Serialize)]
pub struct PhoneNumber {
    pub id: String,
    pub workspace_id: String,
    #[serde(flatten)]
    pub spec: PhoneNumberSpec,
    /// Whether another stored number has the same normal form (both were written before numbers
    /// were normalised): then no edge answers this one until the other is changed or deleted.
    pub claimed_twice: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A number from its row and its further regions (in the order they were given).
fn number_from_row(row: &AnyRow, regions: Vec<String>) -> Result<PhoneNumber, StoreError> {
    Ok(from_columns!(row => PhoneNumber {
        id, workspace_id, created_at_ms, updated_at_ms;
        spec: from_columns!(row => PhoneNumberSpec { number, region, agent_id, workflow_id; regions }),
        claimed_twice: row.try_get::<i64, _>("normal_form_conflict")? != 0,
    }))
}

const NUMBER_COLUMNS: &str = "id, workspace_id, number, region, agent_id, workflow_id, \
     normal_form_conflict, created_at_ms, updated_at_ms";

const NUMBERS: ScopedTable = ScopedTable {
    table: "phone_numbers",
    columns: NUMBER_COLUMNS,
    order: None,
};

impl ScopedResource for PhoneNumber {
    const TABLE: &'static ScopedTable = &NUMBERS;

    /// The number of `row` without its further regions: [`Self::from_rows`] reads those.
    fn from_row(_: &Store, row: &AnyRow) -> Result<Self, StoreError> {
        number_from_row(row, Vec::new())
    }

    async fn from_rows(
        store: &Store,
        scope: &WorkspaceScope,
        rows: &[AnyRow],
    ) -> Result<Vec<Self>, StoreError> {
        store.numbers_with_regions(scope, rows).await
    }

    fn position(&self) -> PagePosition {
        PagePosition::of(self.created_at_ms, &self.id)
    }
}

impl Store {
    /// Stores a new number (validated and normalised); its agent must belong to the same
    /// workspace, and no other number may have the same normal form.
    pub async fn create_number(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        spec: &PhoneNumberSpec,
    ) -> Result<PhoneNumber, StoreError> {
        let id = new_id();
        self.config_change(|| async {
            let now = now_ms();
            let mut tx = self.pool().begin().await?;
            ensure_target_in_scope(&mut tx, scope, spec).await?;
            ensure_unclaimed(&mut tx, &spec.number, None).await?;
            sqlx::query(
                "INSERT INTO phone_numbers (id, workspace_id, number, region, agent_id, workflow_id, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(&scope.workspace_id)
            .bind(&spec.number)
            .bind(spec.region.as_deref())
            .bind(spec.agent_id.as_deref())
            .bind(spec.workflow_id.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| duplicate_number(e, &spec.number))?;
            replace_regions(&mut tx, scope, &id, &spec.regions).await?;
            Change::of(scope, actor, "phone_number", &id)
                .commit_config(tx, "phone_number.created", audit_detail(spec))
                .await
        })
        .await?;
        self.number(scope, &id).await
    }

    /// One number of the scoped workspace.
    pub async fn number(
        &self,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<PhoneNumber, StoreError> {
        self.scoped_get(scope, id).await
    }

    /// The scoped workspace's numbers, oldest first.
    pub async fn numbers(&self, scope: &WorkspaceScope) -> Result<Vec<PhoneNumber>, StoreError> {
        let rows = self.scoped_rows(&NUMBERS, scope).await?;
        self.numbers_with_regions(scope, &rows).await
    }

    /// The numbers of `rows`, each with its further regions (read in one query).
    async fn numbers_with_regions(
        &self,
        scope: &WorkspaceScope,
        rows: &[AnyRow],
    ) -> Result<Vec<PhoneNumber>, StoreError> {
        // One number's regions alone when it is one number that is read.
        let only: Option<String> = match rows {
            [row] => Some(row.try_get("id")?),
            _ => None,
        };
        let mut regions = self.further_regions(scope, only.as_deref()).await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                number_from_row(row, regions.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// The further regions of one number (`Some(id)`) or of all the workspace's numbers, by
    /// number id, each list in the order it was given.
    async fn further_regions(
        &self,
        scope: &WorkspaceScope,
        number_id: Option<&str>,
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let one = if number_id.is_some() {
            " AND number_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT number_id, region FROM phone_number_regions \
             WHERE workspace_id = $1{one} ORDER BY number_id, position"
        );
        let rows = sqlx::query(&sql).bind(&scope.workspace_id);
        let rows = match number_id {
            Some(id) => rows.bind(id),
            None => rows,
        }
        .fetch_all(self.pool())
        .await?;
        let mut regions: HashMap<String, Vec<String>> = HashMap::new();
        for row in &rows {
            regions
                .entry(row.try_get("number_id")?)
                .or_default()
                .push(row.try_get("region")?);
        }
        Ok(regions)
    }

    /// Replaces a number's routing (already validated) and tells edges.
    pub async fn update_number(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        spec: &PhoneNumberSpec,
    ) -> Result<PhoneNumber, StoreError> {
        self.config_change(|| async {
            let mut tx = self.pool().begin().await?;
            ensure_target_in_scope(&mut tx, scope, spec).await?;
            ensure_unclaimed(&mut tx, &spec.number, Some(id)).await?;
            let before = number_as_audited(&mut tx, scope, id).await?;
            let mut detail = changed_fields(&before, &audited(spec));
            detail["number"] = serde_json::json!(spec.number);
            let updated = sqlx::query(
                "UPDATE phone_numbers SET number = $1, region = $2, agent_id = $3, workflow_id = $4, updated_at_ms = $5, \
                 normal_form_conflict = 0 WHERE workspace_id = $6 AND id = $7",
            )
            .bind(&spec.number)
            .bind(spec.region.as_deref())
            .bind(spec.agent_id.as_deref())
            .bind(spec.workflow_id.as_deref())
            .bind(now_ms())
            .bind(&scope.workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| duplicate_number(e, &spec.number))?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            replace_regions(&mut tx, scope, id, &spec.regions).await?;
            release_settled(&mut tx).await?;
            Change::of(scope, actor, "phone_number", id)
                .commit_config(tx, "phone_number.updated", detail.clone())
                .await
        })
        .await?;
        self.number(scope, id).await
    }
}

impl Store {
    /// Deletes a number and tells edges, which stop answering it.
    pub async fn delete_number(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        self.delete_routed(Change::of(scope, actor, "phone_number", id), |mut tx| {
            Box::pin(async move {
                // Not left to the foreign key's cascade, which SQLite only honours when enabled.
                replace_regions(&mut tx, scope, id, &[]).await?;
                let deleted = delete_scoped(&mut tx, scope, "phone_numbers", "id", id).await?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                release_settled(&mut tx).await?;
                Ok(tx)
            })
        })
        .await
    }
}

impl Store {
    /// The number `number` in whichever workspace routes it: for the edge-independent dev setup
    /// and routing diagnostics, never for serving a customer's request.
    pub async fn find_routed_number(
        &self,
        number: &str,
    ) -> Result<Option<PhoneNumber>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE number = $1"
        ))
        .bind(number)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let scope = WorkspaceScope {
            workspace_id: row.try_get("workspace_id")?,
        };
        let id: String = row.try_get("id")?;
        let mut regions = self.further_regions(&scope, Some(&id)).await?;
        number_from_row(&row, regions.remove(&id).unwrap_or_default()).map(Some)
    }
}

/// Replaces a number's further regions inside its transaction (the spec is validated: no
/// duplicates, home not repeated).
async fn replace_regions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
    number_id: &str,
    regions: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM phone_number_regions WHERE workspace_id = $1 AND number_id = $2")
        .bind(&scope.workspace_id)
        .bind(number_id)
        .execute(&mut **tx)
        .await?;
    for (position, region) in regions.iter().enumerate() {
        sqlx::query(
            "INSERT INTO phone_number_regions (number_id, workspace_id, region, position) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(number_id)
        .bind(&scope.workspace_id)
        .bind(region)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What the audit log keeps of a number change: the number and where it is answered.
fn audit_detail(spec: &PhoneNumberSpec) -> serde_json::Value {
    serde_json::json!({"number": spec.number, "region": spec.region, "regions": spec.regions})
}

/// The fields of a number an update's audit entry compares.
fn audited(spec: &PhoneNumberSpec) -> serde_json::Value {
    serde_json::json!({"number": spec.number, "region": spec.region, "regions": spec.regions,
                       "agent_id": spec.agent_id, "workflow_id": spec.workflow_id})
}

/// Number `id` as [`audited`] shows it, read inside the update's transaction.
async fn number_as_audited(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
    id: &str,
) -> Result<serde_json::Value, StoreError> {
    let row = sqlx::query(
        "SELECT number, region, agent_id, workflow_id FROM phone_numbers \
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(&scope.workspace_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let regions: Vec<String> = sqlx::query_scalar(
        "SELECT region FROM phone_number_regions WHERE number_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(audited(&from_columns!(row => PhoneNumberSpec {
        number, region, agent_id, workflow_id;
        regions,
    })))
}

fn duplicate_number(error: sqlx::Error, number: &str) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(format!("number {number} is already routed"))
    } else {
        error.into()
    }
}

/// Refuses a target of another workspace the same way as a missing one, and a workflow that
/// has no published version yet (there would be nothing to answer with).
async fn ensure_target_in_scope(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
    spec: &PhoneNumberSpec,
) -> Result<(), StoreError> {
    match spec.target() {
        Some(NumberTarget::Agent(agent_id)) => {
            let found: Option<String> =
                sqlx::query_scalar("SELECT id FROM agents WHERE workspace_id = $1 AND id = $2")
                    .bind(&scope.workspace_id)
                    .bind(agent_id)
                    .fetch_optional(&mut **tx)
                    .await?;
            match found {
                Some(_) => Ok(()),
                None => Err(StoreError::InvalidReference {
                    field: "agent_id",
                    message: format!("no agent {agent_id} in this workspace"),
                }),
            }
        }
        Some(NumberTarget::Workflow(workflow_id)) => {
            let latest: Option<i64> = sqlx::query_scalar(
                "SELECT latest_version FROM workflows WHERE workspace_id = $1 AND id = $2",
            )
            .bind(&scope.workspace_id)
            .bind(workflow_id)
            .fetch_optional(&mut **tx)
            .await?;
            match latest {
                Some(v) if v > 0 => Ok(()),
                Some(_) => Err(StoreError::InvalidReference {
                    field: "workflow_id",
                    message: format!(
                        "workflow {workflow_id} has no published version; publish it first"
                    ),
                }),
                None => Err(StoreError::InvalidReference {
                    field: "workflow_id",
                    message: format!("no workflow {workflow_id} in this workspace"),
                }),
            }
        }
        None => Err(StoreError::InvalidReference {
            field: "agent_id",
            message: "give the `agent_id` or the `workflow_id` that answers this number".into(),
        }),
    }
}

/// The first number of the scoped workspace that routes to the agent or workflow `id`
/// (`column`: `agent_id` or `workflow_id`), read in `tx`: what stops it being deleted.
pub(super) async fn number_routing_to(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    scope: &WorkspaceScope,
    column: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "SELECT number FROM phone_numbers WHERE workspace_id = $1 AND {column} = $2 LIMIT 1"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(&scope.workspace_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The refusal to delete the `what` (agent, workflow) that `number` routes to.
pub(super) fn routed_here(number: &str, what: &str) -> StoreError {
    StoreError::Conflict(format!(
        "number {number} routes to this {what}; route it elsewhere or delete it first"
    ))
}

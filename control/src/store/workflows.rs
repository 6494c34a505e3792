//! Workflows in the store: the draft definition (a JSON document, edited freely) and its
//! published versions — numbered 1, 2, ... per workflow, each an immutable copy of the draft at
//! publication. Nothing updates or deletes a version but the deletion of its workflow, which is
//! refused while a number routes to it. Numbers use the latest published version, so publishing
//! is a configuration change edges hear about.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::change::NewDocument;
use super::change::{delete_scoped, Change, NamedDocument, Reach, RowResource};
use super::columns::from_columns;
use super::numbers::{number_routing_to, routed_here};
use super::scoped::{PagePosition, ScopedResource, ScopedTable};
use super::{parse_json, retry, Store, StoreError, WorkspaceScope};
use freya_shared::ids::{new_id, now_ms};
use freya_shared::workflow::{Node, Workflow};

/// A stored workflow: its draft and the number of its latest published version (0: none).
#[derive(Debug, Clone)]
pub struct StoredWorkflow {
    pub id: String,
    pub workspace_id: String,
    pub definition: Workflow,
    pub latest_version: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One published version of a workflow.
#[derive(Debug, Clone)]
pub struct WorkflowVersion {
    pub workflow_id: String,
    pub version: u32,
    pub definition: Workflow,
    pub published_by: String,
    pub published_at_ms: i64,
}

const WORKFLOW_DOCUMENT: NamedDocument = NamedDocument {
    kind: RowResource {
        resource: "workflow",
        table: "workflows",
        reach: Reach::Edges,
    },
    column: "definition",
};

const WORKFLOWS: ScopedTable = ScopedTable {
    table: "workflows",
    columns: "id, workspace_id, definition, latest_version, created_at_ms, updated_at_ms",
    order: None,
};
const VERSION_COLUMNS: &str = "workflow_id, version, definition, published_by, published_at_ms";

fn version_number(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl ScopedResource for StoredWorkflow {
    const TABLE: &'static ScopedTable = &WORKFLOWS;

    fn from_row(_: &Store, row: &AnyRow) -> Result<Self, StoreError> {
        let text: String = row.try_get("definition")?;
        Ok(from_columns!(row => StoredWorkflow {
            id, workspace_id, created_at_ms, updated_at_ms;
            definition: parse_json("workflow definition", &text)?,
            latest_version: version_number(row.try_get("latest_version")?),
        }))
    }

    fn position(&self) -> PagePosition {
        PagePosition::of(self.created_at_ms, &self.id)
    }
}

pub(crate) fn version_from_row(row: &AnyRow) -> Result<WorkflowVersion, StoreError> {
    let text: String = row.try_get("definition")?;
    Ok(from_columns!(row => WorkflowVersion {
        workflow_id, published_by, published_at_ms;
        version: version_number(row.try_get("version")?),
        definition: parse_json("workflow version", &text)?,
    }))
}

fn to_text(definition: &Workflow) -> Result<String, StoreError> {
    serde_json::to_string(definition).map_err(|e| StoreError::Corrupt {
        what: "workflow definition",
        message: e.to_string(),
    })
}

impl Store {
    /// Stores a new draft workflow (already validated).
    pub async fn create_workflow(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        definition: &Workflow,
    ) -> Result<StoredWorkflow, StoreError> {
        let id = new_id();
        let text = to_text(definition)?;
        // `latest_version` starts at 0 (the column's default): nothing is published yet.
        self.insert_document(
            &WORKFLOW_DOCUMENT,
            scope,
            actor,
            &id,
            &definition.name,
            &text,
        )
        .await
    }

    /// One workflow of the scoped workspace.
    pub async fn workflow(
        &self,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<StoredWorkflow, StoreError> {
        self.scoped_get(scope, id).await
    }

    /// Replaces a workflow's draft (already validated); published versions stay as they were.
    pub async fn update_workflow(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        definition: &Workflow,
    ) -> Result<StoredWorkflow, StoreError> {
        let text = to_text(definition)?;
        let after: serde_json::Value = parse_json("workflow definition", &text)?;
        let changes = |before: &str| {
            let before: serde_json::Value = parse_json("workflow definition", before)?;
            Ok(super::audit::changed_fields(&before, &after))
        };
        self.replace_document(
            &WORKFLOW_DOCUMENT,
            scope,
            actor,
            id,
            &NewDocument {
                name: &definition.name,
                text: &text,
                changes: &changes,
            },
        )
        .await
    }

    /// Deletes a workflow and its versions; refused while a number routes to it.
    pub async fn delete_workflow(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        self.delete_routed(Change::of(scope, actor, "workflow", id), |mut tx| {
            Box::pin(async move {
                let routed = number_routing_to(&mut tx, scope, "workflow_id", id).await?;
                let exists: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM workflows WHERE workspace_id = $1 AND id = $2",
                )
                .bind(&scope.workspace_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                if let Some(number) = routed {
                    return Err(routed_here(&number, "workflow"));
                }
                delete_scoped(&mut tx, scope, "workflow_versions", "workflow_id", id).await?;
                delete_scoped(&mut tx, scope, "workflows", "id", id).await?;
                Ok(tx)
            })
        })
        .await
    }

    /// Publishes `definition` (the draft, already validated) as the workflow's next version.
    pub async fn publish_workflow(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        definition: &Workflow,
    ) -> Result<WorkflowVersion, StoreError> {
        let text = to_text(definition)?;
        let (config_version, number) = retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let updated = sqlx::query(
                "UPDATE workflows SET latest_version = latest_version + 1 \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(&scope.workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            let number: i64 =
                sqlx::query_scalar("SELECT latest_version FROM workflows WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            sqlx::query(
                "INSERT INTO workflow_versions (workflow_id, version, workspace_id, definition, published_by, published_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(number)
            .bind(&scope.workspace_id)
            .bind(&text)
            .bind(actor)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let config_version = Change::of(scope, actor, "workflow", id)
                .commit_config(tx, "workflow.published", serde_json::json!({"version": number}))
                .await?;
            Ok((config_version, number))
        })
        .await?;
        self.notify_config_changed(config_version);
        self.workflow_version(scope, id, version_number(number))
            .await
    }

    /// Every published version of a workflow, newest first.
    pub async fn workflow_versions(
        &self,
        scope: &WorkspaceScope,
        id: &str,
    ) -> Result<Vec<WorkflowVersion>, StoreError> {
        // The workflow itself must be in scope: an empty list is not a 404.
        self.workflow(scope, id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM workflow_versions \
             WHERE workspace_id = $1 AND workflow_id = $2 ORDER BY version DESC"
        ))
        .bind(&scope.workspace_id)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// One published version of a workflow.
    pub async fn workflow_version(
        &self,
        scope: &WorkspaceScope,
        id: &str,
        version: u32,
    ) -> Result<WorkflowVersion, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM workflow_versions \
             WHERE workspace_id = $1 AND workflow_id = $2 AND version = $3"
        ))
        .bind(&scope.workspace_id)
        .bind(id)
        .bind(i64::from(version))
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        version_from_row(&row)
    }

    /// Ids of the scoped workspace's agents, for validating the `agent` nodes of a workflow.
    pub async fn agent_ids(&self, scope: &WorkspaceScope) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM agents WHERE workspace_id = $1 ORDER BY id")
                .bind(&scope.workspace_id)
                .fetch_all(self.pool())
                .await?,
        )
    }
}

/// The name of a workflow of the scoped workspace whose draft or latest published version hands
/// calls to agent `agent_id`, if any: such an agent cannot be deleted.
pub(crate) async fn workflow_naming_agent(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &WorkspaceScope,
    agent_id: &str,
) -> Result<Option<String>, StoreError> {
    // The text match only narrows the candidates; the parsed nodes decide.
    let rows = sqlx::query(
        "SELECT w.name, w.definition, v.definition AS published FROM workflows w \
         LEFT JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.latest_version \
         WHERE w.workspace_id = $1 AND (w.definition LIKE $2 OR v.definition LIKE $2)",
    )
    .bind(&scope.workspace_id)
    .bind(format!("%{agent_id}%"))
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        for column in ["definition", "published"] {
            let Some(text) = row.try_get::<Option<String>, _>(column)? else {
                continue;
            };
            let workflow: Workflow = parse_json("workflow definition", &text)?;
            let names = workflow
                .nodes
                .iter()
                .any(|n| matches!(n, Node::Agent(a) if a.agent_id == agent_id));
            if names {
                return Ok(Some(row.try_get("name")?));
            }
        }
    }
    Ok(None)
}

//! Agents in the store: the spec is a JSON document, so the agent model can grow without a
//! migration; the name has a column of its own for listing. Its secrets (provider API keys, the
//! tool-signing secret) are sealed inside the stored document, each bound to its agent and place,
//! and opened when read.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::changed_fields;
use super::change::{Change, NamedDocument, NewDocument, Reach, RowResource};
use super::columns::from_columns;
use super::numbers::{number_routing_to, routed_here};
use super::scoped::{PagePosition, ScopedResource, ScopedTable};
use super::{parse_json, Sealer, Store, StoreError, WorkspaceScope};
use freya_shared::ids::new_id;
use freya_shared::model::AgentSpec;

/// A stored agent.
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: String,
    pub workspace_id: String,
    #[serde(flatten)]
    pub spec: AgentSpec,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The agent in `row`, its secrets opened (the store's sealer is needed only if it has some).
impl ScopedResource for Agent {
    const TABLE: &'static ScopedTable = &AGENTS;

    fn from_row(store: &Store, row: &AnyRow) -> Result<Self, StoreError> {
        let spec_text: String = row.try_get("spec")?;
        let id: String = row.try_get("id")?;
        let spec = opened_spec(store, &id, &spec_text)?;
        Ok(from_columns!(row => Agent {
            workspace_id, created_at_ms, updated_at_ms;
            id,
            spec,
        }))
    }

    fn position(&self) -> PagePosition {
        PagePosition::of(self.created_at_ms, &self.id)
    }
}

/// The stored spec `text` of agent `id` with its secrets opened.
fn opened_spec(store: &Store, id: &str, text: &str) -> Result<AgentSpec, StoreError> {
    let mut spec: AgentSpec = parse_json("agent spec", text)?;
    for (place, secret) in secrets(&mut spec) {
        if let Some(stored) = secret.as_deref().filter(|s| Sealer::is_sealed(s)) {
            *secret = Some(store.sealer()?.open(&aad(id, place), stored)?);
        }
    }
    Ok(spec)
}

/// `spec` as JSON, for the audit log's comparison of before and after.
fn spec_json(spec: &AgentSpec) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(spec).map_err(|e| StoreError::Corrupt {
        what: "agent spec",
        message: e.to_string(),
    })
}

/// Every secret of an agent spec, with the place it is bound to when sealed.
fn secrets(spec: &mut AgentSpec) -> Vec<(&'static str, &mut Option<String>)> {
    let mut all = Vec::new();
    for (place, provider) in [
        ("stt", spec.stt.as_mut()),
        ("llm", spec.llm.as_mut()),
        ("llm_fallback", spec.llm_fallback.as_mut()),
        ("tts", spec.tts.as_mut()),
    ] {
        if let Some(provider) = provider {
            all.push((place, &mut provider.api_key));
        }
    }
    all.push(("tool_secret", &mut spec.tool_secret));
    all
}

fn aad(agent_id: &str, place: &str) -> String {
    format!("agent:{agent_id}:{place}")
}

/// `spec` as stored: JSON with every secret sealed for agent `id`.
fn stored_spec(store: &Store, id: &str, spec: &AgentSpec) -> Result<String, StoreError> {
    let mut spec = spec.clone();
    for (place, secret) in secrets(&mut spec) {
        if let Some(plain) = secret.as_deref() {
            *secret = Some(store.sealer()?.seal(&aad(id, place), plain)?);
        }
    }
    serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt {
        what: "agent spec",
        message: e.to_string(),
    })
}

const AGENT_DOCUMENT: NamedDocument = NamedDocument {
    kind: RowResource {
        resource: "agent",
        table: "agents",
        reach: Reach::Edges,
    },
    column: "spec",
};

const AGENTS: ScopedTable = ScopedTable {
    table: "agents",
    columns: "id, workspace_id, spec, created_at_ms, updated_at_ms",
    order: None,
};

impl Store {
    /// Stores a new agent (already validated) and tells edges.
    pub async fn create_agent(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        spec: &AgentSpec,
    ) -> Result<Agent, StoreError> {
        let id = new_id();
        let spec_text = stored_spec(self, &id, spec)?;
        self.insert_document(&AGENT_DOCUMENT, scope, actor, &id, &spec.name, &spec_text)
            .await
    }

    /// One agent of the scoped workspace.
    pub async fn agent(&self, scope: &WorkspaceScope, id: &str) -> Result<Agent, StoreError> {
        self.scoped_get(scope, id).await
    }

    /// Replaces an agent's spec (already validated) and tells edges; the audit entry names each
    /// changed field (a secret only as `"changed"`).
    pub async fn update_agent(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
        spec: &AgentSpec,
    ) -> Result<Agent, StoreError> {
        let spec_text = stored_spec(self, id, spec)?;
        let after = spec_json(spec)?;
        let changes = |before: &str| {
            let before = spec_json(&opened_spec(self, id, before)?)?;
            Ok(changed_fields(&before, &after))
        };
        self.replace_document(
            &AGENT_DOCUMENT,
            scope,
            actor,
            id,
            &NewDocument {
                name: &spec.name,
                text: &spec_text,
                changes: &changes,
            },
        )
        .await
    }

    /// Deletes an agent and tells edges; refused while a number routes to it or a workflow
    /// hands calls to it.
    pub async fn delete_agent(
        &self,
        scope: &WorkspaceScope,
        actor: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        self.delete_routed(Change::of(scope, actor, "agent", id), |mut tx| {
            Box::pin(async move {
                let routed = number_routing_to(&mut tx, scope, "agent_id", id).await?;
                if let Some(workflow) =
                    super::workflows::workflow_naming_agent(&mut tx, scope, id).await?
                {
                    return Err(StoreError::Conflict(format!(
                        "workflow `{workflow}` hands calls to this agent; change it first"
                    )));
                }
                let deleted = sqlx::query("DELETE FROM agents WHERE workspace_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM phone_numbers WHERE agent_id = $2)")
                    .bind(&scope.workspace_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Err(match routed {
                        Some(number) => routed_here(&number, "agent"),
                        None => StoreError::NotFound,
                    });
                }
                Ok(tx)
            })
        })
        .await
    }
}

//! Which personal data a call's stored events and webhooks have redacted. An agent's call
//! follows its agent's `privacy.redact`. A workflow's call follows its flow's `privacy.redact`
//! and, because an `agent` node hands the conversation (and its transcript) to an agent, the
//! `privacy.redact` of every agent its nodes name: the union, for every event of the call, since
//! the control plane cannot tell which node spoke a line and redacting a kind too many is the
//! safe side. Agents and flows since deleted add nothing.

use std::collections::BTreeSet;

use sqlx::Row;

use super::StoreError;
use freya_shared::model::{CallEvent, CallEventData, PrivacySpec};
use freya_shared::redact::Redactor;

/// What answered a call: an agent, or a workflow (at a published version when it said which).
#[derive(Debug, Default)]
struct Answerer {
    agent_id: Option<String>,
    workflow_id: Option<String>,
    workflow_version: Option<i64>,
}

/// The redactor of `event`'s call: what answered it is named by a `call.started` itself, else
/// by the call's row (stored by an earlier event, perhaps earlier in this transaction).
pub(super) async fn call_redactor(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
) -> Result<Redactor, StoreError> {
    let answerer = match event.data() {
        CallEventData::Started(started) => Answerer {
            agent_id: started.agent_id.clone().flatten(),
            workflow_id: started.workflow_id.clone().flatten(),
            workflow_version: started
                .workflow_version
                .flatten()
                .and_then(|v| i64::try_from(v).ok()),
        },
        _ => stored_answerer(tx, event).await?,
    };
    let ws = &event.workspace_id;
    let mut kinds = BTreeSet::new();
    if let Some(agent_id) = &answerer.agent_id {
        kinds.extend(agent_privacy(tx, ws, agent_id).await?.redact);
    }
    if let Some(workflow_id) = &answerer.workflow_id {
        if let Some(flow) =
            workflow_definition(tx, ws, workflow_id, answerer.workflow_version).await?
        {
            kinds.extend(privacy_of(&flow, "workflow privacy")?.redact);
            for agent_id in agent_node_agents(&flow) {
                kinds.extend(agent_privacy(tx, ws, &agent_id).await?.redact);
            }
        }
    }
    let spec = PrivacySpec {
        redact: kinds.into_iter().collect(),
        redact_before_llm: false,
    };
    Ok(spec.redactor())
}

/// What answered the call, as its row says (nothing when there is no row yet).
async fn stored_answerer(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
) -> Result<Answerer, StoreError> {
    let row = sqlx::query(
        "SELECT agent_id, workflow_id, workflow_version FROM calls \
         WHERE id = $1 AND workspace_id = $2",
    )
    .bind(&event.call_id)
    .bind(&event.workspace_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Answerer::default());
    };
    Ok(Answerer {
        agent_id: row.try_get("agent_id")?,
        workflow_id: row.try_get("workflow_id")?,
        workflow_version: row.try_get("workflow_version")?,
    })
}

/// An agent's `privacy` section; empty when the agent is gone.
async fn agent_privacy(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workspace_id: &str,
    agent_id: &str,
) -> Result<PrivacySpec, StoreError> {
    let spec: Option<String> =
        sqlx::query_scalar("SELECT spec FROM agents WHERE id = $1 AND workspace_id = $2")
            .bind(agent_id)
            .bind(workspace_id)
            .fetch_optional(&mut **tx)
            .await?;
    match spec {
        // Only the privacy section: the rest (and its sealed secrets) is not needed here.
        Some(spec) => privacy_of(&super::parse_json("agent spec", &spec)?, "agent privacy"),
        None => Ok(PrivacySpec::default()),
    }
}

/// The definition of the workflow's published `version`, or of its latest published version
/// when the call did not say; `None` when neither exists (deleted, or never published).
async fn workflow_definition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workspace_id: &str,
    workflow_id: &str,
    version: Option<i64>,
) -> Result<Option<serde_json::Value>, StoreError> {
    let definition: Option<String> = match version {
        Some(version) => {
            sqlx::query_scalar(
                "SELECT definition FROM workflow_versions \
             WHERE workflow_id = $1 AND workspace_id = $2 AND version = $3",
            )
            .bind(workflow_id)
            .bind(workspace_id)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?
        }
        None => {
            sqlx::query_scalar(
                "SELECT v.definition FROM workflow_versions v JOIN workflows w \
             ON w.id = v.workflow_id AND w.latest_version = v.version \
             WHERE v.workflow_id = $1 AND v.workspace_id = $2",
            )
            .bind(workflow_id)
            .bind(workspace_id)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    definition
        .map(|d| super::parse_json("workflow definition", &d))
        .transpose()
}

/// The `privacy` field of an agent spec or workflow definition (absent: redacts nothing).
fn privacy_of(document: &serde_json::Value, what: &'static str) -> Result<PrivacySpec, StoreError> {
    document
        .get("privacy")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            what,
            message: e.to_string(),
        })
        .map(Option::unwrap_or_default)
}

/// The agents a workflow definition's `agent` nodes hand the call to, each once.
fn agent_node_agents(flow: &serde_json::Value) -> BTreeSet<String> {
    let nodes = flow.get("nodes").and_then(serde_json::Value::as_array);
    nodes
        .into_iter()
        .flatten()
        .filter(|node| node.get("type").and_then(serde_json::Value::as_str) == Some("agent"))
        .filter_map(|node| node.get("agent_id").and_then(serde_json::Value::as_str))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_node_names_its_agent_once() {
        let flow = serde_json::json!({"nodes": [
            {"id": "a", "type": "agent", "agent_id": "ag-1"},
            {"id": "s", "type": "say", "text": "agent_id"},
            {"id": "b", "type": "agent", "agent_id": "ag-2"},
            {"id": "c", "type": "agent", "agent_id": "ag-1"},
        ]});
        let agents: Vec<String> = agent_node_agents(&flow).into_iter().collect();
        assert_eq!(agents, ["ag-1", "ag-2"]);
        assert!(agent_node_agents(&serde_json::json!({"nodes": 3})).is_empty());
    }

    #[test]
    fn a_document_without_privacy_redacts_nothing_and_a_bad_one_is_named() {
        let none = privacy_of(&serde_json::json!({"name": "x"}), "workflow privacy");
        assert_eq!(none.expect("no section"), PrivacySpec::default());
        let bad = privacy_of(&serde_json::json!({"privacy": 3}), "workflow privacy");
        assert!(
            matches!(
                bad,
                Err(StoreError::Corrupt {
                    what: "workflow privacy",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

//! Building the configuration snapshot an edge serves calls from: the numbers its region answers
//! (numbers with no region are answered everywhere; others in their home region and their
//! further regions, each carrying its home so an edge knows where it is), the agents they route
//! to, the latest
//! published version of each workflow they route to (with every agent of that workflow's
//! workspace, which its `agent` nodes may hand calls to), and the SIP trunks its edges may call
//! out through (passwords opened: the snapshot travels over the edge link only), and the public
//! recording key edges seal recordings to.

use sqlx::Row;

use super::{Agent, ScopedResource, Store, StoreError};
use freya_shared::snapshot::{
    AgentConfig, CallTarget, EdgeConfigSnapshot, RoutedNumber, WorkflowConfig,
};

/// Whether the number `n` is answered in the region bound as `$1`: it has no home region (so
/// every region answers it), this is its home, or this is one of its further regions.
const REACHABLE_IN_REGION: &str = "(n.region IS NULL OR n.region = $1 OR n.id IN \
     (SELECT r.number_id FROM phone_number_regions r WHERE r.region = $1))";

impl Store {
    /// The current configuration version (moves on every change edges care about).
    pub async fn config_version(&self) -> Result<u64, StoreError> {
        let version: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    /// The snapshot for edges of `region`, read in one transaction so version and content agree.
    pub async fn edge_snapshot(&self, region: &str) -> Result<EdgeConfigSnapshot, StoreError> {
        let mut tx = self.pool().begin().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let number_rows = sqlx::query(&format!(
            "SELECT n.number, n.workspace_id, n.region, n.agent_id, n.workflow_id, w.latest_version \
             FROM phone_numbers n LEFT JOIN workflows w ON w.id = n.workflow_id \
             WHERE {REACHABLE_IN_REGION} AND n.normal_form_conflict = 0 \
               AND (n.agent_id IS NOT NULL OR w.latest_version > 0) ORDER BY n.number"
        ))
        .bind(region)
        .fetch_all(&mut *tx)
        .await?;
        let agent_rows = sqlx::query(&format!(
            "SELECT a.id, a.workspace_id, a.spec, a.created_at_ms, a.updated_at_ms FROM agents a \
             WHERE a.id IN (SELECT n.agent_id FROM phone_numbers n \
                            WHERE {REACHABLE_IN_REGION} AND n.agent_id IS NOT NULL) \
                OR a.workspace_id IN (SELECT n.workspace_id FROM phone_numbers n \
                            WHERE {REACHABLE_IN_REGION} AND n.workflow_id IS NOT NULL) \
             ORDER BY a.id"
        ))
        .bind(region)
        .fetch_all(&mut *tx)
        .await?;
        let version_rows = sqlx::query(&format!(
            "SELECT v.workflow_id, v.version, v.workspace_id, v.definition, v.published_by, \
                    v.published_at_ms \
             FROM workflow_versions v JOIN workflows w \
               ON w.id = v.workflow_id AND w.latest_version = v.version \
             WHERE v.workflow_id IN (SELECT n.workflow_id FROM phone_numbers n \
                                     WHERE {REACHABLE_IN_REGION} AND n.workflow_id IS NOT NULL) \
             ORDER BY v.workflow_id"
        ))
        .bind(region)
        .fetch_all(&mut *tx)
        .await?;
        let providers = super::providers::trunks_for_region(self, &mut tx, region).await?;
        let recording_key: Option<String> = sqlx::query_scalar(
            "SELECT id FROM recording_keys ORDER BY created_at_ms DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let numbers = number_rows
            .iter()
            .map(|row| {
                let agent_id: Option<String> = row.try_get("agent_id")?;
                let target = match agent_id {
                    Some(agent_id) => CallTarget::Agent { agent_id },
                    None => CallTarget::Workflow {
                        workflow_id: row.try_get("workflow_id")?,
                        version: u32::try_from(row.try_get::<i64, _>("latest_version")?)
                            .unwrap_or(0),
                    },
                };
                Ok(RoutedNumber {
                    number: row.try_get("number")?,
                    workspace_id: row.try_get("workspace_id")?,
                    target,
                    home_region: row.try_get("region")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let workflows = version_rows
            .iter()
            .map(|row| {
                let version = super::workflows::version_from_row(row)?;
                Ok(WorkflowConfig {
                    id: version.workflow_id,
                    workspace_id: row.try_get("workspace_id")?,
                    version: version.version,
                    definition: version.definition.without_layout(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let agents = agent_rows
            .iter()
            .map(|row| {
                let agent = Agent::from_row(self, row)?;
                Ok(AgentConfig {
                    id: agent.id,
                    workspace_id: agent.workspace_id,
                    spec: agent.spec,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(EdgeConfigSnapshot {
            version: u64::try_from(version).unwrap_or(0),
            region: region.to_owned(),
            numbers,
            agents,
            providers,
            workflows,
            recording_key,
        })
    }
}

//! Edges as the control plane knows them: registered once, refreshed by every heartbeat. Status
//! is derived when read (from how long ago the edge was heard), never stored, so it cannot go stale.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::columns::from_columns;
use super::{retry, Store, StoreError};
use freya_shared::ids::now_ms;
use freya_shared::model::{EdgeHealth, EdgeStatus};

/// One registration with a PBX or trunk as an edge reported it in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EdgeProviderRegistration {
    pub provider_id: String,
    /// `registering`, `registered`, `failed` or `stopped`.
    pub state: String,
    /// Unix milliseconds when the binding lapses unless refreshed; `None` when not registered.
    pub expires_at_ms: Option<u64>,
    pub last_error: Option<String>,
}

impl EdgeProviderRegistration {
    /// How much a report says the provider is reachable: a registered edge beats one still
    /// trying, which beats one that failed, so a provider several edges register with shows
    /// registered while any of them is.
    fn rank(&self) -> u8 {
        match self.state.as_str() {
            "registered" => 3,
            "registering" => 2,
            "failed" => 1,
            _ => 0,
        }
    }
}

/// What an edge announces about itself when it registers.
#[derive(Debug, Clone)]
pub struct EdgeRegistration {
    pub id: String,
    pub region: String,
    pub sip_addr: String,
    pub rtp_addr: String,
    pub http_addr: String,
    pub version: String,
    pub health: EdgeHealth,
}

/// An edge as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeRecord {
    pub id: String,
    pub region: String,
    pub sip_addr: String,
    pub http_addr: String,
    pub version: String,
    pub status: EdgeStatus,
    pub active_calls: u32,
    pub capacity: u32,
    pub cpu_permille: u32,
    pub last_seen_ms: i64,
}

fn u32_of(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

fn edge_from_row(row: &AnyRow, now: i64, offline_after_ms: i64) -> Result<EdgeRecord, StoreError> {
    let last_seen_ms: i64 = row.try_get("last_seen_ms")?;
    let draining: i64 = row.try_get("draining")?;
    Ok(from_columns!(row => EdgeRecord {
        id, region, sip_addr, http_addr, version;
        status: EdgeStatus::derive(last_seen_ms, now, offline_after_ms, draining != 0),
        active_calls: u32_of(row.try_get("active_calls")?),
        capacity: u32_of(row.try_get("capacity")?),
        cpu_permille: u32_of(row.try_get("cpu_permille")?),
        last_seen_ms,
    }))
}

impl Store {
    /// Records (or refreshes) an edge's registration.
    pub async fn register_edge(&self, edge: &EdgeRegistration) -> Result<(), StoreError> {
        retry(&self.health, || async {
            let now = now_ms();
            sqlx::query(
                "INSERT INTO edges (id, region, sip_addr, rtp_addr, http_addr, version, capacity, \
                 active_calls, cpu_permille, draining, registered_at_ms, last_seen_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                 ON CONFLICT (id) DO UPDATE SET region = excluded.region, sip_addr = excluded.sip_addr, \
                 rtp_addr = excluded.rtp_addr, http_addr = excluded.http_addr, version = excluded.version, \
                 capacity = excluded.capacity, active_calls = excluded.active_calls, \
                 cpu_permille = excluded.cpu_permille, draining = excluded.draining, \
                 registered_at_ms = excluded.registered_at_ms, last_seen_ms = excluded.last_seen_ms",
            )
            .bind(&edge.id)
            .bind(&edge.region)
            .bind(&edge.sip_addr)
            .bind(&edge.rtp_addr)
            .bind(&edge.http_addr)
            .bind(&edge.version)
            .bind(i64::from(edge.health.capacity))
            .bind(i64::from(edge.health.active_calls))
            .bind(i64::from(edge.health.cpu_permille))
            .bind(i64::from(edge.health.draining))
            .bind(now)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    /// Records a heartbeat and the registrations it reports; `NotFound` when the edge never
    /// registered here.
    pub async fn edge_heartbeat(
        &self,
        id: &str,
        health: &EdgeHealth,
        registrations: &[EdgeProviderRegistration],
    ) -> Result<(), StoreError> {
        let registrations = (!registrations.is_empty())
            .then(|| serde_json::to_string(registrations))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                what: "edge registrations",
                message: e.to_string(),
            })?;
        let updated = retry(&self.health, || async {
            Ok(sqlx::query(
                "UPDATE edges SET active_calls = $1, capacity = $2, cpu_permille = $3, draining = $4, \
                 last_seen_ms = $5, registrations = $6 WHERE id = $7",
            )
            .bind(i64::from(health.active_calls))
            .bind(i64::from(health.capacity))
            .bind(i64::from(health.cpu_permille))
            .bind(i64::from(health.draining))
            .bind(now_ms())
            .bind(registrations.as_deref())
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected())
        })
        .await?;
        if updated == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// The registration state of each provider some online edge registers, by provider id:
    /// of several edges' reports for one provider, the most reachable (see
    /// [`EdgeProviderRegistration::rank`]).
    pub async fn provider_registrations(
        &self,
        offline_after_ms: i64,
    ) -> Result<std::collections::HashMap<String, EdgeProviderRegistration>, StoreError> {
        let rows = sqlx::query(
            "SELECT registrations FROM edges WHERE registrations IS NOT NULL AND last_seen_ms >= $1",
        )
        .bind(now_ms() - offline_after_ms)
        .fetch_all(self.pool())
        .await?;
        let mut best = std::collections::HashMap::<String, EdgeProviderRegistration>::new();
        for row in &rows {
            let text: String = row.try_get("registrations")?;
            // An unreadable report is a newer edge's shape; skipped rather than failing reads.
            let Ok(reports) = serde_json::from_str::<Vec<EdgeProviderRegistration>>(&text) else {
                continue;
            };
            for report in reports {
                let better = best
                    .get(&report.provider_id)
                    .is_none_or(|b| report.rank() > b.rank());
                if better {
                    best.insert(report.provider_id.clone(), report);
                }
            }
        }
        Ok(best)
    }

    /// Every known edge with its derived status.
    /// Notes the gossip address `edge_id` registered with (empty: it gossips with nobody).
    pub async fn set_edge_gossip_addr(&self, edge_id: &str, addr: &str) -> Result<(), StoreError> {
        let addr = (!addr.is_empty()).then_some(addr);
        retry(&self.health, || async {
            sqlx::query("UPDATE edges SET gossip_addr = $1 WHERE id = $2")
                .bind(addr)
                .bind(edge_id)
                .execute(self.pool())
                .await?;
            Ok(())
        })
        .await
    }

    /// The gossip addresses of edges seen within `offline_after_ms`, whichever control-plane
    /// replica they registered with, as (edge id, address).
    pub async fn edge_gossip_addrs(
        &self,
        offline_after_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, gossip_addr FROM edges WHERE gossip_addr IS NOT NULL AND last_seen_ms >= $1 \
             ORDER BY id",
        )
        .bind(now_ms() - offline_after_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("gossip_addr")?)))
            .collect()
    }

    pub async fn edges(&self, offline_after_ms: i64) -> Result<Vec<EdgeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, region, sip_addr, http_addr, version, capacity, active_calls, cpu_permille, \
             draining, last_seen_ms FROM edges ORDER BY region, id",
        )
        .fetch_all(self.pool())
        .await?;
        let now = now_ms();
        rows.iter()
            .map(|row| edge_from_row(row, now, offline_after_ms))
            .collect()
    }
}

impl Store {
    /// Notes in the caller's workspace audit log that `actor` asked `edge_id` to drain and leave
    /// (`POST /v1/edges/{id}/drain`), with the calls it carried then.
    pub async fn audit_edge_drain(
        &self,
        scope: &super::WorkspaceScope,
        actor: &str,
        edge_id: &str,
        active_calls: u32,
    ) -> Result<(), StoreError> {
        super::identity::insert_audit(
            self.pool(),
            scope,
            super::identity::AuditEntry {
                actor,
                action: "drain",
                resource_type: "edge",
                resource_id: edge_id,
                detail: serde_json::json!({ "active_calls": active_calls }),
            },
        )
        .await
    }
}

//! Edges as the control plane knows them: registered once, refreshed by every heartbeat. Status
//! is derived when read (from how long ago the edge was heard), never stored, so it cannot go stale.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{retry, Store, StoreError};
use freya_shared::ids::now_ms;
use freya_shared::model::{EdgeHealth, EdgeStatus};

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
    Ok(EdgeRecord {
        id: row.try_get("id")?,
        region: row.try_get("region")?,
        sip_addr: row.try_get("sip_addr")?,
        http_addr: row.try_get("http_addr")?,
        version: row.try_get("version")?,
        status: EdgeStatus::derive(last_seen_ms, now, offline_after_ms, draining != 0),
        active_calls: u32_of(row.try_get("active_calls")?),
        capacity: u32_of(row.try_get("capacity")?),
        cpu_permille: u32_of(row.try_get("cpu_permille")?),
        last_seen_ms,
    })
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

    /// Records a heartbeat; `NotFound` when the edge never registered here.
    pub async fn edge_heartbeat(&self, id: &str, health: &EdgeHealth) -> Result<(), StoreError> {
        let updated = retry(&self.health, || async {
            Ok(sqlx::query(
                "UPDATE edges SET active_calls = $1, capacity = $2, cpu_permille = $3, draining = $4, \
                 last_seen_ms = $5 WHERE id = $6",
            )
            .bind(i64::from(health.active_calls))
            .bind(i64::from(health.capacity))
            .bind(i64::from(health.cpu_permille))
            .bind(i64::from(health.draining))
            .bind(now_ms())
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

    /// Every known edge with its derived status.
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

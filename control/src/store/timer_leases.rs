//! Leases on timed work (`timer_leases`, migration 0013): of the control-plane processes
//! sharing a database, the one holding a name's lease does that work; the others look again
//! at their next tick. Taking a lease is a guarded `UPDATE` (free, expired, or already ours),
//! so two processes never both see a changed row for the same name and moment.
//!
//! Work done under a lease must still be idempotent: a holder paused past its lease (a long
//! GC-free stall, a frozen VM) may finish a pass while its successor starts one. Ending lost
//! edges' calls is (each synthetic end has a fixed event id); the lease spares the database the
//! duplicate passes and the logs their duplicate lines.

use super::{Store, StoreError};

impl Store {
    /// Takes or renews the lease on `name` for `holder` until `now + lease_ms`; true when
    /// `holder` holds it now.
    pub async fn hold_timer_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now.saturating_add(lease_ms);
        let inserted = sqlx::query(
            "INSERT INTO timer_leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(true);
        }
        let taken = sqlx::query(
            "UPDATE timer_leases SET holder = $1, until_ms = $2 \
             WHERE name = $3 AND (holder = $1 OR until_ms < $4)",
        )
        .bind(holder)
        .bind(until)
        .bind(name)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Gives `name`'s lease up if `holder` has it (a graceful stop), so a replica takes over at
    /// its next tick rather than after the lease.
    pub async fn release_timer_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE timer_leases SET until_ms = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

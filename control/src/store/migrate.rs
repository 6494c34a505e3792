//! Applying migrations on either engine. sqlx takes `pg_advisory_lock` around PostgreSQL
//! migrations, which CockroachDB lacks, so locking is off there and concurrent migrators (several
//! control-plane processes starting at once) are serialised by a lock row of our own instead.
//! [`status`] reads sqlx's `_sqlx_migrations` record without changing anything, for
//! `freya doctor`.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Connection};

use super::{Engine, StoreError};

/// A lock row older than this belongs to a migrator that died; it is taken over.
const STALE_LOCK_MS: i64 = 5 * 60 * 1000;
/// How long to wait for another migrator before giving up.
const WAIT_FOR_LOCK: Duration = Duration::from_secs(120);

/// The migrations this binary carries: one tree for both engines, written in the SQL they
/// share (see `migrations/0001_init.sql`).
fn migrator() -> Migrator {
    sqlx::migrate!("./migrations")
}

/// The versions of the migrations this binary carries, in order.
pub(super) fn known_versions() -> Vec<i64> {
    migrator()
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect()
}

/// Counts sqlx's migration record table in the connected database (0 or 1).
pub(super) fn migration_table_count_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    }
}

pub(super) async fn run(pool: &AnyPool, engine: Engine) -> Result<(), StoreError> {
    let mut migrator = migrator();
    migrator.set_locking(false);
    create_lock_table(pool).await?;
    let holder = freya_shared::ids::new_id();
    acquire(pool, &holder).await?;
    let outcome = match migrate(pool, engine, &migrator).await {
        Ok(()) => super::number_forms::normalise_stored_numbers(pool).await,
        Err(e) => Err(e),
    };
    release(pool, &holder).await?;
    outcome
}

/// Under the lock: brings a legacy checksum up to date, then applies what is pending.
async fn migrate(pool: &AnyPool, engine: Engine, migrator: &Migrator) -> Result<(), StoreError> {
    super::legacy_checksums::repair(pool, engine, migrator).await?;
    migrator
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()))
}

async fn create_lock_table(pool: &AnyPool) -> Result<(), StoreError> {
    let ddl = "CREATE TABLE IF NOT EXISTS freya_migration_lock (\
               id BIGINT PRIMARY KEY, holder TEXT NOT NULL, acquired_at_ms BIGINT NOT NULL)";
    // Two processes creating the table at once can collide in PostgreSQL's catalog even with
    // IF NOT EXISTS; the loser simply tries again.
    for attempt in 0..5 {
        match sqlx::query(ddl).execute(pool).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 4 => {
                tracing::debug!(error = %e, "creating the migration lock table again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn acquire(pool: &AnyPool, holder: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_LOCK;
    loop {
        let now = freya_shared::ids::now_ms();
        let taken = sqlx::query(
            "INSERT INTO freya_migration_lock (id, holder, acquired_at_ms) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(holder)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if taken {
            return Ok(());
        }
        let stale =
            sqlx::query("DELETE FROM freya_migration_lock WHERE id = 1 AND acquired_at_ms < $1")
                .bind(now - STALE_LOCK_MS)
                .execute(pool)
                .await?
                .rows_affected();
        if stale > 0 {
            tracing::warn!("took over a stale migration lock");
            continue;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::Migration(
                "another process has held the migration lock for two minutes".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn release(pool: &AnyPool, holder: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM freya_migration_lock WHERE id = 1 AND holder = $1")
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// How a database's applied migrations compare with the ones this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The engine the URL named.
    pub engine: Engine,
    /// How many migrations this binary carries.
    pub known: usize,
    /// Versions this binary carries that the database has not applied (or failed to apply).
    pub pending: Vec<i64>,
    /// Versions the database has applied that this binary does not know: a newer `freya`
    /// migrated it.
    pub unknown: Vec<i64>,
}

impl MigrationStatus {
    /// Whether every migration this binary knows is applied, and no other.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

/// Opens one connection to `url` (no pool, no retries: a refused connection is reported at
/// once) and compares its migration record with this binary's migrations. Changes nothing,
/// beyond what opening the URL itself does (`mode=rwc` creates a missing SQLite file).
pub async fn status(url: &str) -> Result<MigrationStatus, StoreError> {
    sqlx::any::install_default_drivers();
    let engine = Engine::from_url(url)?;
    let mut conn = AnyConnection::connect(url).await?;
    let outcome = read_status(&mut conn, engine).await;
    let _ = conn.close().await;
    outcome
}

async fn read_status(
    conn: &mut AnyConnection,
    engine: Engine,
) -> Result<MigrationStatus, StoreError> {
    let tables: i64 = sqlx::query_scalar(migration_table_count_sql(engine))
        .fetch_one(&mut *conn)
        .await?;
    let applied: Vec<i64> = if tables > 0 {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    let known = known_versions();
    Ok(MigrationStatus {
        engine,
        known: known.len(),
        pending: known
            .iter()
            .copied()
            .filter(|v| !applied.contains(v))
            .collect(),
        unknown: applied
            .iter()
            .copied()
            .filter(|v| !known.contains(v))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PoolSize, Store};

    fn sqlite_url(dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", dir.join("freya.db").display())
    }

    #[tokio::test]
    async fn a_fresh_database_has_every_migration_pending_and_a_migrated_one_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = sqlite_url(dir.path());
        let fresh = status(&url).await.expect("status of a fresh file");
        assert_eq!(fresh.pending.len(), fresh.known);
        assert!(fresh.known > 0 && !fresh.is_current());

        let size = PoolSize {
            min_connections: 1,
            max_connections: 1,
        };
        let store = Store::connect(&url, size).await.expect("connect");
        store.migrate().await.expect("migrate");
        store.close().await;
        let migrated = status(&url).await.expect("status after migrating");
        assert!(migrated.is_current(), "{migrated:?}");
    }

    #[tokio::test]
    async fn a_migration_this_binary_does_not_know_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = sqlite_url(dir.path());
        let size = PoolSize {
            min_connections: 1,
            max_connections: 1,
        };
        let store = Store::connect(&url, size).await.expect("connect");
        store.migrate().await.expect("migrate");
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, installed_on, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
        )
        .execute(store.pool())
        .await
        .expect("record a future migration");
        store.close().await;
        let status = status(&url).await.expect("status");
        assert_eq!(status.unknown, vec![99990101000000]);
        assert!(status.pending.is_empty());
    }
}

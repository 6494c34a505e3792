//! Applying migrations on either engine. sqlx takes `pg_advisory_lock` around PostgreSQL
//! migrations, which CockroachDB lacks, so locking is off there and concurrent migrators (several
//! control-plane processes starting at once) are serialised by a lock row of our own instead.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use super::{Engine, StoreError};

/// A lock row older than this belongs to a migrator that died; it is taken over.
const STALE_LOCK_MS: i64 = 5 * 60 * 1000;
/// How long to wait for another migrator before giving up.
const WAIT_FOR_LOCK: Duration = Duration::from_secs(120);

pub(super) async fn run(pool: &AnyPool, engine: Engine) -> Result<(), StoreError> {
    let mut migrator: Migrator = match engine {
        Engine::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Engine::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_locking(false);
    create_lock_table(pool).await?;
    let holder = freya_shared::ids::new_id();
    acquire(pool, &holder).await?;
    let outcome = migrator
        .run(pool)
        .await
        .map_err(|e| StoreError::Migration(e.to_string()));
    release(pool, &holder).await?;
    outcome
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

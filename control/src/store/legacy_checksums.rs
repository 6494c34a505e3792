//! The first migration's checksum as databases migrated before the two engines shared one
//! migration tree recorded it. The two trees differed only in a comment at the top of
//! `0001_init.sql`, so the schema such a database holds is exactly what the shared file creates;
//! but sqlx compares each applied migration's SHA-384 with the file's and refuses to start on a
//! mismatch. Before migrating, a recorded checksum that is one of these two known values is
//! replaced with the shared file's, and nothing else is touched: a migration changed in any
//! other way still stops the start-up, as it should.

use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use super::{Engine, StoreError};

/// SHA-384 of `0001_init.sql` as the SQLite tree carried it.
const SQLITE_TREE: &str = "42bc686c16b4c06c16c631e2ee7a694c713b03a826619224d9c494945a45c5d9\
                           280ef9c7e8fffe0ebb7fd513fa7b61ce";
/// SHA-384 of `0001_init.sql` as the PostgreSQL tree carried it.
const POSTGRES_TREE: &str = "e4784b944bbf1b24daee55a2c8edf0e89bfd8f3c67260a1b9ae47a0a5fdf6691\
                             25778522f026917abcc042a430049c9e";

/// Rewrites a legacy checksum of migration 1 to the shared tree's; returns whether it did.
pub(super) async fn repair(
    pool: &AnyPool,
    engine: Engine,
    migrator: &Migrator,
) -> Result<bool, StoreError> {
    if !has_migration_table(pool, engine).await? {
        return Ok(false);
    }
    let Some(first) = migrator.iter().find(|m| m.version == 1) else {
        return Ok(false);
    };
    let mut repaired = 0;
    for legacy in [SQLITE_TREE, POSTGRES_TREE] {
        repaired += sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1 AND checksum = $2",
        )
        .bind(first.checksum.to_vec())
        .bind(from_hex(legacy))
        .execute(pool)
        .await?
        .rows_affected();
    }
    if repaired > 0 {
        tracing::info!("recorded the shared migration tree's checksum for migration 1");
    }
    Ok(repaired > 0)
}

async fn has_migration_table(pool: &AnyPool, engine: Engine) -> Result<bool, StoreError> {
    let count = super::migrate::migration_table_count_sql(engine);
    let tables: i64 = sqlx::query_scalar(count).fetch_one(pool).await?;
    Ok(tables > 0)
}

/// A checksum constant as bytes (the constants are hex this file spells out, so decoding them
/// cannot fail in practice; an empty value matches no row).
fn from_hex(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap_or_default()
}

//! One migration tree for both engines. Databases migrated before the trees were merged recorded
//! the first migration's checksum of their engine's own copy (the copies differed only in a
//! comment); such a database starts, keeps its data and records the shared file's checksum, on
//! SQLite and PostgreSQL. A first migration changed in any other way still stops the start.

use crate::support::{on_both_engines, Backend, TestDb};
use freya_control::store::{PoolSize, Store, StoreError};
use sqlx::Connection;

/// What releases with two migration trees recorded for migration 1 (SHA-384 of each copy).
const LEGACY: [&str; 2] = [
    "42bc686c16b4c06c16c631e2ee7a694c713b03a826619224d9c494945a45c5d9280ef9c7e8fffe0ebb7fd513fa7b61ce",
    "e4784b944bbf1b24daee55a2c8edf0e89bfd8f3c67260a1b9ae47a0a5fdf669125778522f026917abcc042a430049c9e",
];

/// Opens the database and migrates it, as a control plane does at start-up.
async fn start(url: &str) -> Result<Store, StoreError> {
    let size = PoolSize {
        min_connections: 1,
        max_connections: 2,
    };
    let store = Store::connect(url, size).await?;
    store.migrate().await?;
    Ok(store)
}

async fn checksum_of_migration_1(url: &str) -> Vec<u8> {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 1")
        .fetch_one(&mut conn)
        .await
        .expect("migration 1 recorded")
}

async fn set_checksum_of_migration_1(url: &str, checksum: Vec<u8>) {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1")
        .bind(checksum)
        .execute(&mut conn)
        .await
        .expect("rewrite the record");
}

async fn a_database_from_either_old_tree_starts_and_keeps_its_data(backend: Backend) {
    for legacy in LEGACY {
        let db = TestDb::new(backend).await;
        let store = start(&db.url).await.expect("first start");
        let workspace = store.create_workspace("Kept").await.expect("workspace");
        let shared = checksum_of_migration_1(&db.url).await;
        store.close().await;

        set_checksum_of_migration_1(&db.url, hex::decode(legacy).expect("hex")).await;
        let store = start(&db.url)
            .await
            .expect("a database an older release migrated starts");
        assert_eq!(checksum_of_migration_1(&db.url).await, shared);
        assert_eq!(
            db.read_text("SELECT name FROM workspaces WHERE id = $1", &workspace)
                .await,
            "Kept"
        );
        store.close().await;
        db.cleanup().await;
    }
}

async fn a_first_migration_changed_otherwise_stops_the_start(backend: Backend) {
    let db = TestDb::new(backend).await;
    start(&db.url).await.expect("first start").close().await;
    set_checksum_of_migration_1(&db.url, vec![7; 48]).await;
    match start(&db.url).await {
        Err(StoreError::Migration(message)) => {
            assert!(message.contains('1'), "names the migration: {message}")
        }
        Err(other) => panic!("a migration error, not {other}"),
        Ok(_) => panic!("a database whose migration 1 differs must not start"),
    }
    db.cleanup().await;
}

on_both_engines!(
    a_database_from_either_old_tree_starts_and_keeps_its_data,
    a_first_migration_changed_otherwise_stops_the_start,
);

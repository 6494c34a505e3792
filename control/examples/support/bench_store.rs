//! The database of a benchmark example's own run: a SQLite file in the run's temporary
//! directory, and for the examples that drive the store alone (no control plane) that store,
//! migrated, with a workspace owned by a bench user. Each example uses the part it needs.

#![allow(dead_code)]

use std::path::Path;

use freya_control::store::{PoolSize, Store, WorkspaceScope};

/// The URL of SQLite file `file` in `dir`, created on first use.
pub fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.join(file).display())
}

/// A migrated store on a fresh SQLite file `freya.db` in `dir`, pooling up to
/// `max_connections` (at least one kept open).
pub async fn sqlite_store(dir: &Path, max_connections: u32) -> anyhow::Result<Store> {
    let pool = PoolSize {
        min_connections: 1,
        max_connections,
    };
    let store = Store::connect(&sqlite_url(dir, "freya.db"), pool).await?;
    store.migrate().await?;
    Ok(store)
}

/// A workspace owned by a new bench user, as a signed-up user's first workspace is.
pub async fn bench_workspace(store: &Store) -> anyhow::Result<WorkspaceScope> {
    let user = store.create_user("bench@example.com", "Bench", "x").await?;
    let workspace = store
        .create_owned_workspace(&user, "user:bench", "Bench")
        .await?;
    Ok(WorkspaceScope {
        workspace_id: workspace.id,
    })
}

//! The control plane's store: one schema on two engines through sqlx's `Any` driver — SQLite
//! embedded for one machine, the PostgreSQL wire protocol for CockroachDB in production and
//! PostgreSQL in tests. SQL here stays portable (see ARCHITECTURE.md "Data"); write transactions
//! go through [`retry`] because CockroachDB answers contention with SQLSTATE 40001.
//!
//! Every query on customer data takes a [`WorkspaceScope`], so a handler cannot forget the
//! tenant: there is no function that reads an agent or number without one.
//!
//! A SQLite database file (and its journal) is the owner's only, 0600, whatever the umask.
//!
//! Durability: a write returns only after its transaction committed, and SQLite runs in WAL mode
//! with `synchronous = FULL` on every connection, so a commit is on disk before it is
//! acknowledged. A write the storage cannot take is a [`StorageFault`] (`fault.rs`).

mod agents;
mod analytics;
mod api_keys;
mod audit;
pub mod backup;
mod call_placements;
mod call_privacy;
mod call_retries;
mod call_usage;
mod calls;
mod change;
mod columns;
mod deliveries;
mod edge_commands;
mod edges;
mod erasure;
mod events;
mod fault;
mod identity;
mod legacy_checksums;
mod lost_edges;
mod members;
mod migrate;
mod number_forms;
mod numbers;
mod providers;
mod recording_keys;
mod recordings;
pub mod reseal;
mod retention;
mod scoped;
mod sealed;
mod snapshot;
mod timer_leases;
mod trust;
mod webhooks;
mod workflows;
mod workspaces;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use freya_shared::private_files;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use thiserror::Error;
use tokio::sync::watch;

pub use agents::Agent;
pub use analytics::{
    AnalyticsGroup, AnalyticsQuery, AnswerTimes, CallBucket, CallUsage, LatencySummary,
};
pub use api_keys::ApiKeyInfo;
pub use audit::{AuditFilter, AuditRecord};
pub use call_placements::WaitingPlacement;
pub use call_retries::{EdgeAttempt, RetryClaim};
pub use call_usage::CallUsageRecord;
pub use calls::{CallFilter, CallPage, IdempotencyClaim, NewOutboundCall};
pub use deliveries::{DeliveryAttempt, DueDelivery, WebhookDelivery, RETRY_WINDOW_MS};
pub use edge_commands::{
    CommandOutcome, NewEdgeCommand, QueueError, QueuedEdgeCommand, MAX_ANSWER_BYTES,
};
pub use edges::{EdgeProviderRegistration, EdgeRecord, EdgeRegistration};
pub use erasure::{CallErasure, CallerErasure};
pub use events::{CallRecord, RecordedEvents, StoredEvent};
pub use fault::{FaultReport, StorageFault, StorageHealth};
pub(crate) use identity::request_source;
pub use identity::{with_request_source, ApiKeyIdentity, NewApiKey, Role};
pub use lost_edges::{LostCalls, EDGE_LOST};
pub use members::Member;
pub use migrate::{status as migration_status, MigrationStatus};
pub use numbers::PhoneNumber;
pub use providers::{Provider, SecretChange};
pub use recordings::{CallRecordingInfo, RecordingTarget};
pub use retention::{Retention, RetentionSweep, CONTENT_EVENT_KINDS, MAX_RETENTION_DAYS};
pub use scoped::PagePosition;
pub(crate) use scoped::ScopedResource;
pub use sealed::{key_id, Sealer};
pub use trust::{NewJoinToken, StoredCa, TokenRefusal, TrustAuditRecord, TrustEvent};
pub use webhooks::{NewWebhook, Webhook, WEBHOOK_EVENTS};
pub use workflows::{StoredWorkflow, WorkflowVersion};
pub use workspaces::{UserCredentials, Workspace};

/// Why a store operation failed, in terms a handler can map to a response.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    InvalidReference {
        field: &'static str,
        message: String,
    },
    #[error("stored {what} is unreadable: {message}")]
    Corrupt { what: &'static str, message: String },
    #[error("migration: {0}")]
    Migration(String),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database.replica_url needs postgres:// URLs for it and for database.url")]
    ReplicaNeedsPostgres,
    #[error(
        "database file {} is being replaced by `freya restore`; start again once it is done",
        .0.display()
    )]
    BeingRestored(std::path::PathBuf),
    #[error("database file {}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Which engine a URL names; a few statements differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.into()))
        }
    }
}

/// The file a `sqlite:` URL names (`sqlite://PATH?...` or `sqlite:PATH`); `None` for other
/// engines and in-memory databases.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Pool sizing, from the `[database]` config section.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    pub min_connections: u32,
    pub max_connections: u32,
}

/// The tenant every customer-data query is confined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceScope {
    pub workspace_id: String,
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// Signals this process's configuration watchers at once when a change commits here; other
    /// processes notice through the version row.
    config_changed: watch::Sender<u64>,
    /// Seals provider passwords and webhook secrets; `None` until [`Store::with_encryption_key`].
    sealer: Option<Sealer>,
    /// Whether writes are being taken, for `/readyz`: set by a storage fault, cleared by a
    /// successful [`Store::probe_write`].
    health: StorageHealth,
    /// A streaming replica (`database.replica_url`) for analytics and list queries, which can
    /// be a moment behind; everything else, and every write, goes to `pool`.
    replica: Option<AnyPool>,
    /// A SQLite file's shared hold, so that `freya restore` knows the database is in use;
    /// given up by [`Store::close`].
    in_use: Arc<std::sync::Mutex<Option<backup::InUseLock>>>,
}

impl Store {
    /// Connects without migrating (see [`Store::migrate`]).
    pub async fn connect(url: &str, size: PoolSize) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = Engine::from_url(url)?;
        let sqlite_file = sqlite_file(url);
        if let Some(path) = &sqlite_file {
            // The database holds customer data and sealed secrets: create it owner-only before
            // SQLite does (its journal files copy the mode), and correct an older, looser one.
            if url.contains("mode=rwc") && !path.exists() {
                private_files::open_options()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| StoreError::File {
                        path: path.clone(),
                        source: e,
                    })?;
            }
            private_files::restrict_file(path).map_err(|e| StoreError::File {
                path: path.clone(),
                source: e,
            })?;
        }
        let in_use = match &sqlite_file {
            Some(path) if path.exists() => match backup::InUseLock::try_shared(path)? {
                Some(lock) => Some(lock),
                None => return Err(StoreError::BeingRestored(path.clone())),
            },
            _ => None,
        };
        let pool = AnyPoolOptions::new()
            .min_connections(size.min_connections)
            .max_connections(size.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // FULL syncs the WAL at every commit: a 2xx is never answered for a
                        // change a power cut could take back. It is per connection, not per file.
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if engine == Engine::Sqlite {
            // WAL lets readers proceed while a writer commits; it is a property of the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        if let Some(path) = &sqlite_file {
            for suffix in ["-wal", "-shm"] {
                let mut journal = path.clone().into_os_string();
                journal.push(suffix);
                let journal = std::path::PathBuf::from(journal);
                private_files::restrict_file(&journal).map_err(|e| StoreError::File {
                    path: journal.clone(),
                    source: e,
                })?;
            }
        }
        let (config_changed, _) = watch::channel(0);
        Ok(Self {
            pool,
            engine,
            config_changed,
            sealer: None,
            health: StorageHealth::default(),
            replica: None,
            in_use: Arc::new(std::sync::Mutex::new(in_use)),
        })
    }

    /// This store, reading analytics and lists from the streaming replica at `url`
    /// (`database.replica_url`). Only a PostgreSQL-protocol replica of the same engine makes
    /// sense; SQLite has none.
    pub async fn with_replica(mut self, url: &str, size: PoolSize) -> Result<Self, StoreError> {
        if Engine::from_url(url)? != Engine::Postgres || self.engine != Engine::Postgres {
            return Err(StoreError::ReplicaNeedsPostgres);
        }
        let replica = AnyPoolOptions::new()
            .min_connections(size.min_connections)
            .max_connections(size.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        self.replica = Some(replica);
        Ok(self)
    }

    /// This store, sealing and opening secrets with `key` (`auth.encryption_key`).
    pub fn with_encryption_key(mut self, key: &[u8; 32]) -> Self {
        self.sealer = Some(Sealer::new(key));
        self
    }

    /// This store, sealing with `current` and also opening values sealed under `previous`
    /// (`auth.previous_encryption_keys`): how every process runs while the key is rotated.
    pub fn with_encryption_keys(mut self, current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        self.sealer = Some(Sealer::with_previous(current, previous));
        self
    }

    /// Applies pending migrations for this engine; safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.pool, self.engine).await?;
        // Outside the versioned migrations: a scratch row, not data, that any version may own.
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS freya_storage_probe (\
             id BIGINT PRIMARY KEY, written_at_ms BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the store is taking writes (see [`StorageHealth`]).
    pub fn storage_health(&self) -> &StorageHealth {
        &self.health
    }

    /// Commits one tiny write, to learn whether the storage takes writes again after a fault:
    /// success clears [`Store::storage_health`], a storage fault sets it.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        let written = sqlx::query(
            "INSERT INTO freya_storage_probe (id, written_at_ms) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET written_at_ms = excluded.written_at_ms",
        )
        .bind(freya_shared::ids::now_ms())
        .execute(&self.pool)
        .await
        .map_err(StoreError::from);
        match &written {
            Ok(_) => self.health.clear(),
            Err(e) => {
                self.health.record(e);
            }
        }
        written.map(|_| ())
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A receiver woken whenever this process commits a configuration change.
    pub fn subscribe_config_changes(&self) -> watch::Receiver<u64> {
        self.config_changed.subscribe()
    }

    /// Closes the pools, waiting for connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
        if let Ok(mut held) = self.in_use.lock() {
            held.take();
        }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where analytics and list queries read: the replica when one is configured. Its rows may
    /// lag the primary by the replication delay, which a list or a chart tolerates; a read that
    /// must see a write just made (get by id, anything inside a transaction) uses [`Self::pool`].
    pub(crate) fn read_pool(&self) -> &AnyPool {
        self.replica.as_ref().unwrap_or(&self.pool)
    }

    pub(crate) fn sealer(&self) -> Result<&Sealer, StoreError> {
        self.sealer.as_ref().ok_or(StoreError::Corrupt {
            what: "sealed secret",
            message: "no encryption key configured (auth.encryption_key)".into(),
        })
    }

    pub(crate) fn notify_config_changed(&self, version: u64) {
        self.config_changed.send_replace(version);
    }
}

/// Runs `attempt` again when the database reports a serialization conflict (CockroachDB's
/// SQLSTATE 40001, or SQLite's busy file), with a short growing pause, up to five tries.
/// Each retry and each failure for good is counted in `health` (`/metrics`).
pub(crate) async fn retry<T, F, Fut>(
    health: &StorageHealth,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(10);
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(StoreError::Database(e)) if tries < 5 && is_retryable(&e) => {
                tracing::debug!(error = %e, tries, "retrying transaction after a conflict");
                health.retries.inc();
                tokio::time::sleep(pause).await;
                pause *= 3;
            }
            Err(StoreError::Database(e)) => {
                health.errors.inc();
                return Err(StoreError::Database(e));
            }
            other => return other,
        }
    }
}

fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001") | Some("5") | Some("517") | Some("6")
        ),
        _ => false,
    }
}

/// Whether `error` is a unique-constraint violation (a duplicate number, email, ...).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Increments the configuration version inside `tx` and returns the new value.
pub(crate) async fn bump_config_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<u64, StoreError> {
    sqlx::query("UPDATE config_state SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    Ok(u64::try_from(version).unwrap_or(0))
}

/// Ends a change to what edges serve, inside its transaction: the audit entry naming who did
/// it, the configuration-version bump edges watch, and the commit — one step, so no change can
/// be made without the other two. Returns the new version, for [`Store::notify_config_changed`].
pub(crate) async fn commit_config_change(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    scope: &WorkspaceScope,
    entry: identity::AuditEntry<'_>,
) -> Result<u64, StoreError> {
    identity::insert_audit(&mut *tx, scope, entry).await?;
    let version = bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(version)
}

/// Parses a JSON document column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_sqlite_connection_syncs_each_commit_in_wal_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
        let size = PoolSize {
            min_connections: 0,
            max_connections: 3,
        };
        let store = Store::connect(&url, size).await.expect("connect");
        // Three at once, so each is a connection of its own.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(store.pool().acquire().await.expect("connection"));
        }
        for conn in &mut held {
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .expect("read synchronous");
            assert_eq!(synchronous, 2, "synchronous = FULL");
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .expect("read journal_mode");
            assert_eq!(journal, "wal");
        }
    }
}

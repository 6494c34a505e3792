//! `[database]`: where the store lives (SQLite or PostgreSQL, with an optional read replica)
//! and its connection pool.

use serde::Deserialize;

/// Where the store lives and how many connections it may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH?mode=rwc` or `postgres://USER:PASS@HOST:PORT/DB`.
    pub url: String,
    /// A PostgreSQL streaming replica of `url` (`postgres://...`), optional: call lists,
    /// resource lists and analytics read from it, to keep those scans off the primary; they may
    /// trail the primary by the replication delay. Writes and reads by id stay on `url`.
    #[serde(default)]
    pub replica_url: Option<String>,
    #[serde(default = "default_min_connections")]
    pub min_connections: u32,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_min_connections() -> u32 {
    1
}

fn default_max_connections() -> u32 {
    10
}

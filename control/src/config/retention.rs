//! `[retention]`: how often the retention sweep runs and how much one run deletes.

use serde::Deserialize;

/// The retention sweep (each workspace's `retention` windows): how often it runs and how much
/// it deletes per workspace and kind in one run, so one run stays a short burst of small
/// transactions; a backlog drains over the following runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between sweeps (on every replica; they do not conflict).
    #[serde(default = "default_retention_interval_secs")]
    pub interval_secs: u32,
    /// Most recordings, transcript events and call records deleted per workspace per sweep.
    #[serde(default = "default_retention_batch")]
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_retention_interval_secs(),
            batch: default_retention_batch(),
        }
    }
}

fn default_retention_interval_secs() -> u32 {
    300
}

fn default_retention_batch() -> u32 {
    500
}

//! `[recordings]`: where the call recordings edges upload are kept.

use std::path::PathBuf;

use serde::Deserialize;

/// Where call recordings uploaded by edges are kept (one folder per workspace below `dir`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Created at start if missing; relative paths are relative to the working directory.
    #[serde(default = "default_recordings_dir")]
    pub dir: PathBuf,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            dir: default_recordings_dir(),
        }
    }
}

fn default_recordings_dir() -> PathBuf {
    PathBuf::from("recordings")
}

//! `[legs]`: limits on the parties added to a call (warm transfer, add participant).

use serde::Deserialize;

/// Limits on a call's added parties. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LegsConfig {
    /// Most legs a call has up or dialling at once, its first party included (2-16).
    pub max_per_call: u8,
    /// How long a dialled party may ring before the dial is cancelled (`no_answer`).
    pub dial_timeout_ms: u32,
    /// How long a leg dialled on another edge may send no audio over the mesh before it is
    /// ended (`mesh_lost`): a dropped mesh connection or a dead peer never hangs the call.
    pub remote_silence_ms: u32,
}

impl Default for LegsConfig {
    fn default() -> Self {
        Self {
            max_per_call: 4,
            dial_timeout_ms: 30_000,
            remote_silence_ms: 3_000,
        }
    }
}

//! `[drain]`: how the edge stops on SIGTERM, calls in progress finishing while new ones go to
//! peers.

use serde::Deserialize;

/// Draining before a stop. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// How long calls in progress may continue after SIGTERM (or a drain) before the edge ends
    /// them (`edge_shutdown`) and leaves; new INVITEs meanwhile get 302 to a peer (or 503).
    pub deadline_seconds: u32,
    /// A draining edge that finds no live peer with room for a new INVITE takes the call itself
    /// rather than fail it (503), as long as at least this much of its drain deadline is left;
    /// after that it answers 503 with `Retry-After`. 0 takes such calls up to the deadline.
    pub last_resort_seconds: u32,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            deadline_seconds: 300,
            last_resort_seconds: 60,
        }
    }
}

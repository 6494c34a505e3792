//! What an edge says about itself and what the control plane concludes from it.

use serde::{Deserialize, Serialize};

/// The load and state an edge reports in every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeHealth {
    pub active_calls: u32,
    pub capacity: u32,
    /// CPU use of the edge process in per mille of one core.
    pub cpu_permille: u32,
    pub draining: bool,
}

/// An edge as the API shows it: derived from its last heartbeat and how long ago that was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeStatus {
    Online,
    Draining,
    Offline,
}

impl EdgeStatus {
    /// Online if heard from within `offline_after_ms`, draining if it said so.
    pub fn derive(last_seen_ms: i64, now_ms: i64, offline_after_ms: i64, draining: bool) -> Self {
        if now_ms.saturating_sub(last_seen_ms) > offline_after_ms {
            EdgeStatus::Offline
        } else if draining {
            EdgeStatus::Draining
        } else {
            EdgeStatus::Online
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_beats_draining() {
        assert_eq!(
            EdgeStatus::derive(0, 20_000, 10_000, true),
            EdgeStatus::Offline
        );
        assert_eq!(
            EdgeStatus::derive(15_000, 20_000, 10_000, true),
            EdgeStatus::Draining
        );
        assert_eq!(
            EdgeStatus::derive(15_000, 20_000, 10_000, false),
            EdgeStatus::Online
        );
    }
}

//! `/metrics` settings: how many agents get a label of their own, and the targets behind the
//! headroom gauge.

use serde::Deserialize;

/// `/metrics` settings. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Most agents with a label of their own on `freya_edge_voice_to_voice_seconds`; the
    /// calls of any later agent count as `agent="other"` (keeps the series count bounded).
    pub agent_label_limit: usize,
    /// The voice-to-voice p95 the edge promises: while the last five minutes' p95 is over it,
    /// `freya_edge_headroom_calls` is 0.
    pub target_v2v_ms: u32,
    /// The share of all cores the edge should stay under; the headroom counts the calls that
    /// fit under it at the CPU each current call uses.
    pub target_cpu_percent: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            agent_label_limit: 50,
            target_v2v_ms: 1500,
            target_cpu_percent: 80,
        }
    }
}

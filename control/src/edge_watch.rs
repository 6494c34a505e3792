//! The task that notices edges that stopped heartbeating and ends their calls as `edge_lost`
//! (`store/lost_edges.rs`). Every control-plane process runs it; the store makes their work
//! idempotent. An edge counts as offline after `edges.offline_after_ms` of silence, the same
//! rule `GET /v1/edges` shows; the task looks four times per that window, so a lost edge's calls
//! end at most a quarter of it late.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Shortest pause between two looks, however short the offline window is configured.
const MIN_PERIOD: Duration = Duration::from_millis(250);

/// Ends lost edges' calls until `shutdown`.
pub(crate) async fn run(
    store: Store,
    offline_after_ms: u32,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let period = (Duration::from_millis(u64::from(offline_after_ms)) / 4).max(MIN_PERIOD);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticks.tick() => {
                if let Err(e) = store.end_calls_of_lost_edges(i64::from(offline_after_ms)).await {
                    tracing::warn!(error = %e, "could not end the calls of lost edges; trying again");
                }
            }
        }
    }
}

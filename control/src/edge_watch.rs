//! The task that notices edges that stopped heartbeating and ends their calls as `edge_lost`
//! (`store/lost_edges.rs`). Every control-plane process runs it, but with replicas on one
//! database only the holder of the `lost_edges` timer lease (`store/timer_leases.rs`) makes
//! the passes; another replica takes over within one lease of the holder's death. The store
//! makes the work idempotent besides. An edge counts as offline after
//! `edges.offline_after_ms` of silence, the same rule `GET /v1/edges` shows; the task looks
//! four times per that window, so a lost edge's calls end at most a quarter of it late (plus,
//! after a replica dies holding the lease, the lease: two periods). An outbound call a lost
//! edge had not started yet is placed once more on another edge (`grpc/retry.rs`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::grpc::CallRetrier;
use freya_shared::ids::{new_id, now_ms};

/// Shortest pause between two looks, however short the offline window is configured.
const MIN_PERIOD: Duration = Duration::from_millis(250);

/// The name of this work's row in `timer_leases`.
const LEASE: &str = "lost_edges";

/// Ends lost edges' calls until `shutdown`.
pub(crate) async fn run(
    retrier: CallRetrier,
    offline_after_ms: u32,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = retrier.store.clone();
    let period = (Duration::from_millis(u64::from(offline_after_ms)) / 4).max(MIN_PERIOD);
    let lease_ms = i64::try_from((2 * period).as_millis()).unwrap_or(i64::MAX);
    // This process, as a lease holder: a new name per start.
    let holder = new_id();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                match store.hold_timer_lease(LEASE, &holder, now_ms(), lease_ms).await {
                    Ok(true) => {}
                    // Another replica holds it: it makes this pass.
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not take the lost-edges lease; trying again");
                        continue;
                    }
                }
                match store.end_calls_of_lost_edges(i64::from(offline_after_ms)).await {
                    Ok(lost) => retrier.place_again_later(lost.retries),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not end the calls of lost edges; trying again");
                    }
                }
            }
        }
    }
    if let Err(e) = store.release_timer_lease(LEASE, &holder).await {
        tracing::debug!(error = %e, "could not give the lost-edges lease back; it will run out");
    }
    Ok(())
}

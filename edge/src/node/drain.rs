//! Draining before a stop (SIGTERM, a rolling restart): new calls go to peers while the
//! edge's own calls finish, up to `drain.deadline_seconds`, and their ends are published before
//! the edge leaves its cluster.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Edge;
use crate::sip::transport::SipCommand;

/// Longest wait, after a drain's deadline ended the calls left, for their ends to be published.
const DRAIN_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// How often a draining edge looks whether its last call has ended.
const DRAIN_POLL: Duration = Duration::from_millis(100);

impl Edge {
    /// Drains, then stops — what SIGTERM does, so that a rolling restart loses no call: the
    /// edge says `draining` in its gossip health (peers stop choosing it) and redirects new
    /// INVITEs to peers; calls in progress continue until they end or `drain.deadline_seconds`
    /// passes, when those left are hung up (`edge_shutdown`); then the edge leaves the cluster
    /// (peers mark it down at once) and its tasks stop. `stop` cuts the wait short.
    pub async fn drain_and_stop(self, stop: CancellationToken) {
        self.state.set_draining(true);
        let deadline = tokio::time::Instant::now() + self.drain_deadline;
        self.state.set_drain_deadline(deadline.into_std());
        tracing::info!(
            active_calls = self.state.active_calls(),
            deadline_seconds = self.drain_deadline.as_secs(),
            "draining before the stop"
        );
        while self.state.active_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = stop.cancelled() => break,
                _ = self.shutdown.cancelled() => break,
            }
        }
        if stop.is_cancelled() {
            self.stop().await;
            return;
        }
        let left = self.state.active_calls();
        if left > 0 {
            tracing::warn!(
                calls = left,
                "drain over with calls in progress: ending them"
            );
            // Ended while the publisher runs, so the calls' own ends (`edge_shutdown`) reach
            // the control plane before the edge leaves.
            let _ = self.sip_commands.send(SipCommand::EndAll).await;
        }
        // Whether the calls ended by themselves or at the deadline, their ends are published
        // before the edge leaves: its peers' `down` would otherwise end them as `edge_lost`.
        let flush = async {
            while self.state.active_calls() > 0 {
                tokio::time::sleep(DRAIN_POLL).await;
            }
            // The last call's end travels from its task to the spool.
            tokio::time::sleep(2 * DRAIN_POLL).await;
            while self.events_spooled.get() > 0 {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(DRAIN_FLUSH_LIMIT, flush) => {}
            _ = stop.cancelled() => {}
        }
        self.stop().await;
    }
}

//! What the edge's tasks share about the edge as a whole: its current configuration snapshot
//! (a watch channel: readers take the latest, never block a writer), whether it is draining (and
//! until when), whether it has joined its cluster, and how many calls it carries.
//!
//! An edge is *ready* for new calls once it holds a configuration (a snapshot from the control
//! plane or its disk cache) and has joined its cluster (an edge without a cluster has from the
//! start): before that it would answer from nothing or redirect on a view of peers it has not
//! learnt yet, so it answers 503 with `Retry-After` and gossips itself as not taking calls.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use freya_shared::model::EdgeHealth;
use freya_shared::snapshot::EdgeConfigSnapshot;

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct EdgeState {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: watch::Sender<Arc<EdgeConfigSnapshot>>,
    draining: AtomicBool,
    /// When a drain-and-stop ends the calls left (`drain.deadline_seconds` after it began).
    drain_deadline: Mutex<Option<Instant>>,
    /// Whether the cluster task has seen this edge join (true from the start without a cluster).
    joined: AtomicBool,
    /// Cancelled when the control plane asks this edge to drain and then leave
    /// (`POST /v1/edges/{id}/drain`): whoever runs the edge drains it as on SIGTERM.
    leave: CancellationToken,
    active_calls: AtomicU32,
    capacity: u32,
}

impl EdgeState {
    /// A fresh state holding `snapshot` (the disk cache, or empty).
    pub fn new(snapshot: EdgeConfigSnapshot, capacity: u32) -> Self {
        let (snapshot, _) = watch::channel(Arc::new(snapshot));
        Self {
            inner: Arc::new(Inner {
                snapshot,
                draining: AtomicBool::new(false),
                drain_deadline: Mutex::new(None),
                joined: AtomicBool::new(true),
                leave: CancellationToken::new(),
                active_calls: AtomicU32::new(0),
                capacity,
            }),
        }
    }

    /// The configuration calls are answered from right now.
    pub fn snapshot(&self) -> Arc<EdgeConfigSnapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn watch_snapshot(&self) -> watch::Receiver<Arc<EdgeConfigSnapshot>> {
        self.inner.snapshot.subscribe()
    }

    /// Installs a newer snapshot.
    pub fn set_snapshot(&self, snapshot: EdgeConfigSnapshot) {
        self.inner.snapshot.send_replace(Arc::new(snapshot));
    }

    /// Whether the edge refuses new calls (to be emptied for maintenance).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }

    /// Starts or stops draining.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::Relaxed);
    }

    /// Records when the drain under way ends the calls left (`Edge::drain_and_stop`).
    pub fn set_drain_deadline(&self, deadline: Instant) {
        *self.drain_deadline_slot() = Some(deadline);
    }

    fn drain_deadline_slot(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // A plain value behind the lock: a panic elsewhere cannot leave it half-written.
        self.inner
            .drain_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this draining edge should still take a new call that no peer can take (the
    /// last resort of a drain, so that a rolling restart with no peer to spare fails no call):
    /// only in a drain-and-stop whose deadline is at least `margin` away, so the call has time
    /// to run. A drain without a stop (an operator's `POST /drain`) takes none.
    pub fn takes_last_resort_calls(&self, now: Instant, margin: Duration) -> bool {
        self.is_draining()
            && self
                .drain_deadline_slot()
                .is_some_and(|deadline| now + margin <= deadline)
    }

    /// Whether the edge has joined its cluster (always, without one).
    pub fn is_joined(&self) -> bool {
        self.inner.joined.load(Ordering::Relaxed)
    }

    /// Set by the cluster: false when it starts, true once the edge has joined.
    pub fn set_joined(&self, joined: bool) {
        self.inner.joined.store(joined, Ordering::Relaxed);
    }

    /// Whether the edge takes (or redirects) new calls at all: it holds a configuration and has
    /// joined its cluster. Draining is separate.
    pub fn is_ready(&self) -> bool {
        self.snapshot().version > 0 && self.is_joined()
    }

    /// Asks the edge to drain, then stop and leave the cluster, as SIGTERM does.
    pub fn request_leave(&self) {
        self.set_draining(true);
        self.inner.leave.cancel();
    }

    /// Cancelled once a drain-and-leave was asked for (see [`EdgeState::request_leave`]); the
    /// process running the edge waits on it beside its signals.
    pub fn leave_requested(&self) -> CancellationToken {
        self.inner.leave.clone()
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> u32 {
        self.inner.active_calls.load(Ordering::Relaxed)
    }

    /// Counts a call in; returns the new number of calls.
    pub fn call_started(&self) -> u32 {
        self.inner.active_calls.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a call out.
    pub fn call_ended(&self) {
        let _ = self
            .inner
            .active_calls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Most concurrent calls before new ones are refused.
    pub fn capacity(&self) -> u32 {
        self.inner.capacity
    }

    /// Health as reported to the control plane.
    pub fn health(&self, cpu_permille: u32) -> EdgeHealth {
        EdgeHealth {
            active_calls: self.active_calls(),
            capacity: self.inner.capacity,
            cpu_permille,
            draining: self.is_draining(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_a_configuration_and_the_cluster_joined() {
        let state = EdgeState::new(EdgeConfigSnapshot::default(), 4);
        assert!(!state.is_ready(), "no configuration yet");
        let spec = serde_json::from_str(r#"{"name":"Demo"}"#).expect("agent");
        state.set_snapshot(EdgeConfigSnapshot::single_agent(2, "demo", spec));
        assert!(state.is_ready());
        state.set_joined(false);
        assert!(!state.is_ready(), "not joined yet");
    }

    #[test]
    fn a_draining_edge_takes_a_last_resort_call_only_with_enough_of_its_deadline_left() {
        let state = EdgeState::new(EdgeConfigSnapshot::default(), 4);
        let t0 = Instant::now();
        let margin = Duration::from_secs(60);
        assert!(!state.takes_last_resort_calls(t0, margin), "not draining");
        state.set_draining(true);
        assert!(
            !state.takes_last_resort_calls(t0, margin),
            "a drain without a stop has no deadline: it takes none"
        );
        state.set_drain_deadline(t0 + Duration::from_secs(300));
        assert!(state.takes_last_resort_calls(t0, margin));
        assert!(state.takes_last_resort_calls(t0 + Duration::from_secs(240), margin));
        assert!(!state.takes_last_resort_calls(t0 + Duration::from_secs(241), margin));
    }
}

//! What the edge's tasks share about the edge as a whole: its current configuration snapshot
//! (a watch channel: readers take the latest, never block a writer), whether it is draining, and
//! how many calls it carries.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

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

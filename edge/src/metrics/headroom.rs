//! The edge's headroom: how many more calls it can take while staying at its target latency,
//! exported as `freya_edge_headroom_calls` for an autoscaler (see
//! `deploy/kubernetes/autoscaled/edge-hpa.yaml`). Computed at each scrape from plain inputs, so
//! the rule is a function tests call with numbers:
//!
//! - never more than `capacity` minus the calls in progress;
//! - none at all while the recent voice-to-voice p95 is over its target (the edge is already
//!   slower than promised: more calls would make it worse);
//! - with calls in progress, no more than the CPU left under `target_cpu` allows at the CPU the
//!   current calls use each (measured, not guessed).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Voice-to-voice figures of the last few minutes.
#[derive(Debug, Default)]
pub(crate) struct LatencyWindow {
    samples: VecDeque<(Instant, Duration)>,
}

/// Figures older than this do not describe the edge now.
const WINDOW_AGE: Duration = Duration::from_secs(300);
/// Most figures kept (the newest).
const WINDOW_LEN: usize = 512;

impl LatencyWindow {
    pub(crate) fn push(&mut self, now: Instant, v2v: Duration) {
        if self.samples.len() == WINDOW_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back((now, v2v));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// The 95th percentile of the figures younger than five minutes at `now`; `None` without
    /// any.
    pub(crate) fn p95(&mut self, now: Instant) -> Option<Duration> {
        while let Some((at, _)) = self.samples.front() {
            if now.saturating_duration_since(*at) > WINDOW_AGE {
                self.samples.pop_front();
            } else {
                break;
            }
        }
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.samples.iter().map(|(_, d)| *d).collect();
        sorted.sort_unstable();
        let rank = (sorted.len() * 95).div_ceil(100).saturating_sub(1);
        sorted.get(rank).copied()
    }
}

/// What the headroom is computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadroomInputs {
    pub capacity: u32,
    pub active: u32,
    /// CPU this process used lately, per mille of one core.
    pub cpu_permille: u32,
    pub cores: u32,
    /// Share of all cores the edge should stay under, per cent.
    pub target_cpu_percent: u32,
    pub v2v_p95: Option<Duration>,
    pub target_v2v: Duration,
}

/// Calls the edge can still take at its target latency (see the module's paragraph).
pub(crate) fn headroom(i: HeadroomInputs) -> u32 {
    let by_capacity = i.capacity.saturating_sub(i.active);
    if i.v2v_p95.is_some_and(|p95| p95 > i.target_v2v) {
        return 0;
    }
    if i.active == 0 || i.cpu_permille == 0 {
        return by_capacity;
    }
    let budget = u64::from(i.cores) * 10 * u64::from(i.target_cpu_percent);
    let used = u64::from(i.cpu_permille);
    let per_call = (used / u64::from(i.active)).max(1);
    let by_cpu = budget.saturating_sub(used) / per_call;
    by_capacity.min(u32::try_from(by_cpu).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> HeadroomInputs {
        HeadroomInputs {
            capacity: 100,
            active: 10,
            cpu_permille: 500,
            cores: 2,
            target_cpu_percent: 80,
            v2v_p95: Some(Duration::from_millis(900)),
            target_v2v: Duration::from_millis(1500),
        }
    }

    #[test]
    fn an_idle_edge_has_its_whole_capacity() {
        let idle = HeadroomInputs {
            active: 0,
            cpu_permille: 20,
            v2v_p95: None,
            ..inputs()
        };
        assert_eq!(headroom(idle), 100);
    }

    #[test]
    fn cpu_bounds_the_headroom_at_the_measured_cost_per_call() {
        // 10 calls use half a core: 50 per mille each; 1600 - 500 = 1100 left: 22 more calls.
        assert_eq!(headroom(inputs()), 22);
        let roomy = HeadroomInputs {
            cores: 64,
            ..inputs()
        };
        assert_eq!(headroom(roomy), 90, "capacity bounds it too");
    }

    #[test]
    fn a_missed_latency_target_leaves_no_headroom() {
        let slow = HeadroomInputs {
            v2v_p95: Some(Duration::from_millis(2000)),
            ..inputs()
        };
        assert_eq!(headroom(slow), 0);
        let full = HeadroomInputs {
            active: 120,
            ..inputs()
        };
        assert_eq!(headroom(full), 0);
    }

    #[test]
    fn the_window_forgets_old_figures_and_takes_the_95th_percentile() {
        let t0 = Instant::now();
        let mut window = LatencyWindow::default();
        window.push(t0, Duration::from_secs(9));
        for ms in 1..=100 {
            window.push(t0 + WINDOW_AGE, Duration::from_millis(ms));
        }
        let later = t0 + WINDOW_AGE + Duration::from_secs(1);
        assert_eq!(window.p95(later), Some(Duration::from_millis(95)));
        assert_eq!(window.p95(later + WINDOW_AGE * 2), None);
    }
}

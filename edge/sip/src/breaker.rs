//! A circuit breaker per SIP trunk, sans-IO: after `failures` consecutive trunk failures (5xx,
//! 408, no response) outbound calls skip the trunk for `cool_down`, then one call is let
//! through as a trial. A trial that succeeds closes the breaker; one that fails opens it again.
//!
//! What counts as a failure is decided by the caller ([`super::uac::AttemptFailure`] says which
//! outcomes are the trunk's fault); the breaker only counts. Time comes in as `now`, so the
//! tests walk through a cool-down without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long an open breaker skips its trunk before a trial call.
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 3,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// One trunk's breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; counting consecutive failures.
    Closed { failures: u32 },
    /// Calls skip the trunk until `until`.
    Open { until: Instant },
    /// One trial call is in flight; others skip the trunk until it ends (or, should its
    /// outcome never be recorded, until `until`).
    HalfOpen { until: Instant },
}

/// The breakers of every trunk this edge calls through, by trunk (provider) id.
#[derive(Debug, Default)]
pub struct TrunkBreakers {
    policy: BreakerPolicy,
    trunks: HashMap<String, BreakerState>,
}

impl TrunkBreakers {
    /// Breakers that open as `policy` says.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            trunks: HashMap::new(),
        }
    }

    /// The state of `trunk`'s breaker (closed if never used).
    pub fn state(&self, trunk: &str) -> BreakerState {
        self.trunks
            .get(trunk)
            .copied()
            .unwrap_or(BreakerState::Closed { failures: 0 })
    }

    /// May a call be tried through `trunk` now? Past its cool-down an open breaker lets this
    /// one call through as the trial (and turns half-open).
    pub fn try_acquire(&mut self, now: Instant, trunk: &str) -> bool {
        match self.state(trunk) {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } | BreakerState::HalfOpen { until } if now >= until => {
                let until = now + self.policy.cool_down;
                self.trunks
                    .insert(trunk.to_owned(), BreakerState::HalfOpen { until });
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => false,
        }
    }

    /// The trunk answered in a way that shows it works (any final response that is not its
    /// own failure).
    pub fn record_success(&mut self, trunk: &str) {
        self.trunks
            .insert(trunk.to_owned(), BreakerState::Closed { failures: 0 });
    }

    /// The trunk failed a call; opens the breaker at the threshold or after a failed trial.
    pub fn record_failure(&mut self, now: Instant, trunk: &str) {
        let open = BreakerState::Open {
            until: now + self.policy.cool_down,
        };
        let next = match self.state(trunk) {
            BreakerState::Closed { failures } if failures + 1 >= self.policy.failures => open,
            BreakerState::Closed { failures } => BreakerState::Closed {
                failures: failures + 1,
            },
            BreakerState::HalfOpen { .. } | BreakerState::Open { .. } => open,
        };
        if matches!(next, BreakerState::Open { .. }) {
            tracing::warn!(
                trunk,
                cool_down_s = self.policy.cool_down.as_secs(),
                "trunk circuit breaker opened"
            );
        }
        self.trunks.insert(trunk.to_owned(), next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> TrunkBreakers {
        TrunkBreakers::new(BreakerPolicy {
            failures: 3,
            cool_down: Duration::from_secs(30),
        })
    }

    #[test]
    fn three_consecutive_failures_skip_the_trunk_for_the_cool_down() {
        let t0 = Instant::now();
        let mut b = breakers();
        for _ in 0..2 {
            b.record_failure(t0, "a");
            assert!(b.try_acquire(t0, "a"), "below the threshold");
        }
        b.record_failure(t0, "a");
        assert!(!b.try_acquire(t0 + Duration::from_secs(29), "a"));
        assert!(b.try_acquire(t0, "b"), "other trunks are unaffected");
        assert!(b.try_acquire(t0 + Duration::from_secs(30), "a"), "trial");
        assert!(matches!(b.state("a"), BreakerState::HalfOpen { .. }));
        assert!(
            !b.try_acquire(t0 + Duration::from_secs(30), "a"),
            "one trial at a time"
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = breakers();
        b.record_failure(t0, "a");
        b.record_failure(t0, "a");
        b.record_success("a");
        b.record_failure(t0, "a");
        assert_eq!(b.state("a"), BreakerState::Closed { failures: 1 });
    }

    #[test]
    fn a_failed_trial_reopens_and_a_good_one_closes() {
        let t0 = Instant::now();
        let mut b = breakers();
        for _ in 0..3 {
            b.record_failure(t0, "a");
        }
        let t1 = t0 + Duration::from_secs(30);
        assert!(b.try_acquire(t1, "a"));
        b.record_failure(t1, "a");
        assert_eq!(
            b.state("a"),
            BreakerState::Open {
                until: t1 + Duration::from_secs(30)
            }
        );
        let t2 = t1 + Duration::from_secs(30);
        assert!(b.try_acquire(t2, "a"));
        b.record_success("a");
        assert_eq!(b.state("a"), BreakerState::Closed { failures: 0 });
    }
}

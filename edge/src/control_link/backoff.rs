//! Reconnection pacing: exponential backoff with full jitter, so a control plane coming back
//! after an outage is not hit by every edge at the same instant.

use std::time::Duration;

use rand::Rng;

/// Pauses that double from `base` up to `max`, each drawn at random below the current ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Starts at `base`, never exceeds `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            ceiling: base,
        }
    }

    /// The next pause; each call doubles the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(50));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_millis(1000));
        }
        assert!(
            b.next_delay() >= Duration::from_millis(500),
            "capped ceiling keeps half"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}

//! When to order an ACME certificate: now when none is held, at two thirds of the held one's
//! lifetime otherwise (Let's Encrypt's 90 days renew at 60, 30 days before expiry), and after a
//! failed order again with a doubling backoff — the held certificate keeps serving meanwhile.
//! A plain value driven with wall-clock `now`, since certificates are dated in wall-clock time.

use std::time::{Duration, SystemTime};

/// First wait after a failed order; doubled per further failure.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// Longest wait between attempts: a CA outage of a day still leaves weeks of validity.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// A certificate's validity period (its `notBefore` and `notAfter`), renewed at two thirds
/// like the cluster certificate.
pub use crate::trust::Validity;

/// The renewal schedule of one certificate.
#[derive(Debug, Clone)]
pub struct Renewal {
    held: Option<Validity>,
    failures: u32,
    retry_at: Option<SystemTime>,
}

impl Renewal {
    /// A schedule for the certificate already held (from the cache), if any.
    pub fn new(held: Option<Validity>) -> Self {
        Self {
            held,
            failures: 0,
            retry_at: None,
        }
    }

    /// When the next order is due: after a failure, its backoff; otherwise the held
    /// certificate's renewal time, or at once when there is none.
    pub fn poll_timeout(&self) -> SystemTime {
        match (self.retry_at, self.held) {
            (Some(retry), _) => retry,
            (None, Some(held)) => held.renew_at(),
            (None, None) => SystemTime::UNIX_EPOCH,
        }
    }

    /// An order succeeded: the new certificate is held and the backoff forgotten.
    pub fn handle_issued(&mut self, validity: Validity) {
        self.held = Some(validity);
        self.failures = 0;
        self.retry_at = None;
    }

    /// An order failed at `now`: the next try waits the returned backoff.
    pub fn handle_failure(&mut self, now: SystemTime) -> Duration {
        let backoff = FIRST_BACKOFF
            .saturating_mul(1u32 << self.failures.min(16))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + backoff);
        backoff
    }

    /// The certificate held, if any.
    pub fn held(&self) -> Option<Validity> {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn ninety_days(from: SystemTime) -> Validity {
        Validity {
            not_before: from,
            not_after: from + 90 * DAY,
        }
    }

    #[test]
    fn without_a_certificate_the_order_is_due_at_once() {
        let renewal = Renewal::new(None);
        assert!(renewal.poll_timeout() <= SystemTime::now());
    }

    #[test]
    fn a_certificate_is_renewed_at_two_thirds_of_its_lifetime() {
        let issued = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let renewal = Renewal::new(Some(ninety_days(issued)));
        assert_eq!(renewal.poll_timeout(), issued + 60 * DAY);
    }

    #[test]
    fn failures_back_off_doubling_to_the_cap_and_success_resets() {
        let issued = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let mut renewal = Renewal::new(Some(ninety_days(issued)));
        let mut now = issued + 60 * DAY;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let backoff = renewal.handle_failure(now);
            assert_eq!(renewal.poll_timeout(), now + backoff);
            waits.push(backoff.as_secs());
            now += backoff;
        }
        assert_eq!(&waits[..5], &[60, 120, 240, 480, 960]);
        assert!(waits.iter().all(|&w| w <= MAX_BACKOFF.as_secs()));
        assert_eq!(*waits.last().expect("waits"), MAX_BACKOFF.as_secs());
        // The old certificate is still the one held while the orders fail.
        assert_eq!(renewal.held(), Some(ninety_days(issued)));

        let renewed = ninety_days(now);
        renewal.handle_issued(renewed);
        assert_eq!(renewal.poll_timeout(), now + 60 * DAY);
        assert_eq!(renewal.handle_failure(now).as_secs(), 60);
    }
}

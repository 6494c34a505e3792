//! Who may try a password now: after `FAILURES_BEFORE_LOCKOUT` consecutive wrong passwords for
//! one account (email) or from one client address, further attempts are refused for a delay that
//! doubles with each further failure (1 s, 2 s, 4 s … capped at 15 minutes); a success clears the
//! account and the address it came from. A refused attempt is answered before any password is
//! hashed, so guessing costs the server nothing once a subject is locked.
//!
//! Sans-IO, like every core here: the caller passes `now`, reports each outcome with
//! `handle_failure` / `handle_success`, and drains `poll_lockout` for the moments a subject
//! became locked (the login handler audits them). Memory is bounded: a subject not failed for
//! `FORGET_AFTER` starts afresh, and at `capacity` stale subjects are swept, then the oldest
//! unlocked ones evicted.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Consecutive failures a subject may have before it is locked.
pub(super) const FAILURES_BEFORE_LOCKOUT: u32 = 5;
/// How long the first lockout lasts; each further failure doubles it.
pub(super) const FIRST_LOCKOUT: Duration = Duration::from_secs(1);
/// The longest lockout.
pub(super) const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// A subject with no failure for this long is forgotten (longer than any lockout).
pub(super) const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Subjects remembered at most, by default.
pub(super) const DEFAULT_CAPACITY: usize = 100_000;

/// What a login attempt is throttled by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Subject {
    /// An account, by its email in lower case (as the store looks it up).
    Account(String),
    /// The client address the attempt came from.
    Address(IpAddr),
}

impl Subject {
    /// The account `email` names, however it is capitalised.
    pub(super) fn account(email: &str) -> Self {
        Self::Account(email.to_ascii_lowercase())
    }
}

/// The moment a subject became locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lockout {
    pub subject: Subject,
    /// Consecutive failures so far.
    pub failures: u32,
    /// How long attempts are refused from now.
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

impl Record {
    fn locked_at(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    fn stale_at(&self, now: Instant) -> bool {
        self.locked_at(now).is_none() && now.duration_since(self.last_failure) >= FORGET_AFTER
    }
}

/// The lockout after `failures` consecutive failures, if any.
fn lockout_for(failures: u32) -> Option<Duration> {
    let beyond = failures.checked_sub(FAILURES_BEFORE_LOCKOUT)?;
    // 2^beyond seconds, saturating long before the cap matters.
    let factor = 1u32.checked_shl(beyond.min(31)).unwrap_or(u32::MAX);
    Some(FIRST_LOCKOUT.saturating_mul(factor).min(MAX_LOCKOUT))
}

/// The failure counts and lockouts of one process.
#[derive(Debug)]
pub(super) struct LoginThrottle {
    records: HashMap<Subject, Record>,
    capacity: usize,
    lockouts: VecDeque<Lockout>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl LoginThrottle {
    /// A throttle remembering at most `capacity` subjects (at least 1).
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            records: HashMap::new(),
            capacity: capacity.max(1),
            lockouts: VecDeque::new(),
        }
    }

    /// `Err(wait)` when any of `subjects` is locked at `now`: refuse the attempt without
    /// checking the password, and tell the client to retry after `wait`.
    pub(super) fn check(&self, now: Instant, subjects: &[Subject]) -> Result<(), Duration> {
        let wait = subjects
            .iter()
            .filter_map(|s| self.records.get(s)?.locked_at(now))
            .max();
        wait.map_or(Ok(()), Err)
    }

    /// A wrong password (or unknown email) for `subjects` at `now`. Each subject that this
    /// failure locks, having been unlocked, is queued for `poll_lockout`.
    pub(super) fn handle_failure(&mut self, now: Instant, subjects: &[Subject]) {
        for subject in subjects {
            if !self.records.contains_key(subject) && self.records.len() >= self.capacity {
                self.make_room(now);
            }
            let record = self.records.entry(subject.clone()).or_insert(Record {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if record.stale_at(now) {
                record.failures = 0;
                record.locked_until = None;
            }
            let was_locked = record.locked_at(now).is_some();
            record.failures = record.failures.saturating_add(1);
            record.last_failure = now;
            if let Some(duration) = lockout_for(record.failures) {
                let until = now + duration;
                record.locked_until = Some(record.locked_until.map_or(until, |u| u.max(until)));
                if !was_locked {
                    self.lockouts.push_back(Lockout {
                        subject: subject.clone(),
                        failures: record.failures,
                        duration,
                    });
                }
            }
        }
    }

    /// The right password for `subjects`: their failures are forgotten.
    pub(super) fn handle_success(&mut self, subjects: &[Subject]) {
        for subject in subjects {
            self.records.remove(subject);
        }
    }

    /// The next subject that became locked, oldest first.
    pub(super) fn poll_lockout(&mut self) -> Option<Lockout> {
        self.lockouts.pop_front()
    }

    /// Subjects remembered now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no subject is remembered.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets stale subjects; when that is not enough, the eighth of the map that failed
    /// longest ago, unlocked subjects before locked ones.
    fn make_room(&mut self, now: Instant) {
        self.records.retain(|_, r| !r.stale_at(now));
        if self.records.len() < self.capacity {
            return;
        }
        let mut order: Vec<(bool, Instant, Subject)> = self
            .records
            .iter()
            .map(|(s, r)| (r.locked_at(now).is_some(), r.last_failure, s.clone()))
            .collect();
        let evict = (self.capacity / 8).max(1).min(order.len());
        order.select_nth_unstable_by(evict - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, subject) in order.into_iter().take(evict) {
            self.records.remove(&subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Subject {
        Subject::account("Ada@Example.com")
    }

    fn addr(last: u8) -> Subject {
        Subject::Address(IpAddr::from([10, 0, 0, last]))
    }

    fn fail(t: &mut LoginThrottle, now: Instant, subjects: &[Subject], times: u32) {
        for _ in 0..times {
            assert!(t.check(now, subjects).is_ok(), "refused before the lockout");
            t.handle_failure(now, subjects);
        }
    }

    #[test]
    fn five_failures_lock_the_account_for_a_second() {
        let mut t = LoginThrottle::default();
        let start = Instant::now();
        fail(&mut t, start, &[ada()], 4);
        assert!(t.check(start, &[ada()]).is_ok());
        assert_eq!(t.poll_lockout(), None);
        fail(&mut t, start, &[ada()], 1);
        assert_eq!(t.check(start, &[ada()]), Err(Duration::from_secs(1)));
        assert_eq!(
            t.poll_lockout(),
            Some(Lockout {
                subject: Subject::account("ada@example.com"),
                failures: 5,
                duration: Duration::from_secs(1),
            })
        );
        assert_eq!(t.poll_lockout(), None);
        let later = start + Duration::from_millis(400);
        assert_eq!(t.check(later, &[ada()]), Err(Duration::from_millis(600)));
        assert!(t.check(start + Duration::from_secs(1), &[ada()]).is_ok());
    }

    #[test]
    fn each_failure_after_a_lockout_doubles_it_up_to_fifteen_minutes() {
        let mut t = LoginThrottle::default();
        let mut now = Instant::now();
        fail(&mut t, now, &[ada()], 5);
        let mut lockouts = Vec::new();
        while let Some(l) = t.poll_lockout() {
            lockouts.push(l.duration.as_secs());
        }
        for _ in 0..12 {
            let wait = t.check(now, &[ada()]).unwrap_err();
            now += wait;
            fail(&mut t, now, &[ada()], 1);
            while let Some(l) = t.poll_lockout() {
                lockouts.push(l.duration.as_secs());
            }
        }
        assert_eq!(
            lockouts,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
    }

    #[test]
    fn a_success_clears_the_account_and_the_address() {
        let mut t = LoginThrottle::default();
        let start = Instant::now();
        let both = [ada(), addr(1)];
        fail(&mut t, start, &both, 4);
        t.handle_success(&both);
        assert!(t.is_empty());
        fail(&mut t, start, &both, 4);
        assert!(t.check(start, &both).is_ok());
    }

    #[test]
    fn an_address_guessing_many_accounts_is_locked() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..5 {
            let subjects = [Subject::account(&format!("user{i}@example.com")), addr(7)];
            fail(&mut t, now, &subjects, 1);
        }
        let next = [Subject::account("user9@example.com"), addr(7)];
        assert_eq!(t.check(now, &next), Err(FIRST_LOCKOUT));
        assert_eq!(t.poll_lockout().map(|l| l.subject), Some(addr(7)));
        // Another address may still try those accounts.
        assert!(t
            .check(now, &[Subject::account("user0@example.com"), addr(8)])
            .is_ok());
    }

    #[test]
    fn a_failure_while_locked_extends_the_lock_without_a_second_lockout() {
        // Attempts that passed the check before the lock and fail after it (in flight together).
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        fail(&mut t, now, &[ada()], 5);
        t.handle_failure(now, &[ada()]);
        assert_eq!(t.check(now, &[ada()]), Err(Duration::from_secs(2)));
        assert!(t.poll_lockout().is_some());
        assert_eq!(t.poll_lockout(), None);
    }

    #[test]
    fn a_subject_not_failed_for_an_hour_starts_afresh() {
        let mut t = LoginThrottle::default();
        let start = Instant::now();
        fail(&mut t, start, &[ada()], 5);
        t.handle_failure(start, &[ada()]);
        t.handle_failure(start, &[ada()]);
        assert!(t.check(start, &[ada()]).is_err());
        let later = start + FORGET_AFTER;
        fail(&mut t, later, &[ada()], 4);
        assert!(t.check(later, &[ada()]).is_ok());
    }

    #[test]
    fn memory_stays_bounded_and_locked_subjects_are_evicted_last() {
        let mut t = LoginThrottle::with_capacity(64);
        let start = Instant::now();
        fail(&mut t, start, &[ada()], 5);
        for i in 0..10_000u32 {
            let now = start + Duration::from_micros(u64::from(i) * 50);
            t.handle_failure(now, &[Subject::account(&format!("u{i}@example.com"))]);
            assert!(t.len() <= 64);
        }
        let now = start + Duration::from_millis(500);
        assert_eq!(t.check(now, &[ada()]), Err(Duration::from_millis(500)));
    }

    #[test]
    fn stale_subjects_are_swept_when_the_map_is_full() {
        let mut t = LoginThrottle::with_capacity(8);
        let start = Instant::now();
        for i in 0..8u8 {
            t.handle_failure(start, &[addr(i)]);
        }
        assert_eq!(t.len(), 8);
        t.handle_failure(start + FORGET_AFTER, &[addr(100)]);
        assert_eq!(t.len(), 1);
    }
}

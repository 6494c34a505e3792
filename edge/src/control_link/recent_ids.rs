//! Ids this edge was recently asked to act on, remembered for a while so that a second ask is
//! ignored: the control plane hands commands over at least once (a replica killed between
//! sending a command and recording the send leaves it to another replica, which sends it again
//! once its lease runs out), and the callee's phone must ring once. The command stream keeps
//! two: the call ids of placements (a placement may come again under a new command id,
//! `retry.rs`) and the command ids of leg commands and hang-ups. Sans-IO: the caller hands in
//! `now`.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long an id is remembered: far longer than any control-plane lease (5 s) and a queued
/// command's life or the wait for a replica to hand a call over (30 s).
pub(super) const REMEMBER_FOR: Duration = Duration::from_secs(10 * 60);

/// Most ids remembered; the oldest is forgotten first. A flood of commands cannot grow this
/// without bound.
pub(super) const MOST_REMEMBERED: usize = 8_192;

/// Ids asked about, oldest first.
#[derive(Debug, Default)]
pub(super) struct RecentIds {
    order: VecDeque<(Instant, String)>,
    ids: HashSet<String>,
}

impl RecentIds {
    /// Records that `id` is asked about at `now`; true the first time, false when this edge
    /// was asked already (the second ask is to be ignored).
    pub(super) fn first_ask(&mut self, id: &str, now: Instant) -> bool {
        while let Some((at, _)) = self.order.front() {
            let stale = now.saturating_duration_since(*at) >= REMEMBER_FOR;
            if !stale && self.order.len() < MOST_REMEMBERED {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_owned());
        self.order.push_back((now, id.to_owned()));
        true
    }

    /// How many ids are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_ask_for_the_same_call_is_refused() {
        let mut placed = RecentIds::default();
        let now = Instant::now();
        assert!(placed.first_ask("call-1", now));
        assert!(!placed.first_ask("call-1", now + Duration::from_secs(6)));
        assert!(placed.first_ask("call-2", now + Duration::from_secs(6)));
    }

    #[test]
    fn a_call_is_forgotten_after_the_remembering_time() {
        let mut placed = RecentIds::default();
        let now = Instant::now();
        assert!(placed.first_ask("call-1", now));
        assert!(!placed.first_ask("call-1", now + REMEMBER_FOR - Duration::from_secs(1)));
        assert!(placed.first_ask("call-1", now + REMEMBER_FOR));
        assert_eq!(placed.len(), 1);
    }

    #[test]
    fn a_flood_of_call_ids_is_bounded() {
        let mut placed = RecentIds::default();
        let now = Instant::now();
        for n in 0..(MOST_REMEMBERED + 100) {
            assert!(placed.first_ask(&format!("call-{n}"), now));
        }
        assert_eq!(placed.len(), MOST_REMEMBERED);
        // The oldest went first; the newest are still refused.
        assert!(placed.first_ask("call-0", now));
        assert!(!placed.first_ask(&format!("call-{}", MOST_REMEMBERED + 99), now));
    }
}

//! The outbound calls this edge was asked to place, remembered for a while so that a second
//! `PlaceCall` for the same call id is ignored: the control plane hands a placement over at
//! least once (a replica killed between sending it and recording the send leaves it to another
//! replica, which sends it again once its lease runs out), and the callee's phone must ring
//! once. Sans-IO: the caller hands in `now`.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a placed call id is remembered: far longer than any control-plane lease (5 s) and
/// the wait for a replica to hand a call over (30 s).
pub(super) const REMEMBER_FOR: Duration = Duration::from_secs(10 * 60);

/// Most call ids remembered; the oldest is forgotten first. A flood of placements cannot grow
/// this without bound.
pub(super) const MOST_REMEMBERED: usize = 8_192;

/// Call ids asked to be placed, oldest first.
#[derive(Debug, Default)]
pub(super) struct PlacedCalls {
    order: VecDeque<(Instant, String)>,
    ids: HashSet<String>,
}

impl PlacedCalls {
    /// Records that `call_id` is asked to be placed at `now`; true the first time, false when
    /// this edge already placed it or is placing it (the second ask is to be ignored).
    pub(super) fn first_ask(&mut self, call_id: &str, now: Instant) -> bool {
        while let Some((at, _)) = self.order.front() {
            let stale = now.saturating_duration_since(*at) >= REMEMBER_FOR;
            if !stale && self.order.len() < MOST_REMEMBERED {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
        if self.ids.contains(call_id) {
            return false;
        }
        self.ids.insert(call_id.to_owned());
        self.order.push_back((now, call_id.to_owned()));
        true
    }

    /// How many call ids are remembered.
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
        let mut placed = PlacedCalls::default();
        let now = Instant::now();
        assert!(placed.first_ask("call-1", now));
        assert!(!placed.first_ask("call-1", now + Duration::from_secs(6)));
        assert!(placed.first_ask("call-2", now + Duration::from_secs(6)));
    }

    #[test]
    fn a_call_is_forgotten_after_the_remembering_time() {
        let mut placed = PlacedCalls::default();
        let now = Instant::now();
        assert!(placed.first_ask("call-1", now));
        assert!(!placed.first_ask("call-1", now + REMEMBER_FOR - Duration::from_secs(1)));
        assert!(placed.first_ask("call-1", now + REMEMBER_FOR));
        assert_eq!(placed.len(), 1);
    }

    #[test]
    fn a_flood_of_call_ids_is_bounded() {
        let mut placed = PlacedCalls::default();
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

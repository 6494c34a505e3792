//! Whether the far end of a call is still there, and whether we may send to it: the stream's
//! direction as last answered (RFC 3264) and the timers that declare a dead call.
//!
//! While the stream is send-receive, a call whose peer sends no RTP for the RTP inactivity
//! timeout is dead. On hold the peer owes us no RTP (`sendonly` toward us is music on hold at
//! most, and many phones send none; `inactive`, or a peer that only receives, is nothing): then
//! a separate, much longer hold timeout applies, and the peer's RTCP reports count as proof of
//! life as well as its RTP. A held phone keeps its call; one that vanished while held is still hung up.
//!
//! Sans-IO: the media core tells it what arrived and when, and asks it for its deadline.

use std::time::{Duration, Instant};

use crate::sip::sdp::Direction;
use freya_shared::model::call_payloads::{Extra, HoldChanged};
use freya_shared::model::CallEventData;

/// A change of whether we may send, for the call's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
    /// We may no longer send: the peer put the call on hold.
    Held,
    /// We may send again.
    Resumed,
}

impl HoldChange {
    /// The call event that records it (`call.held` / `call.resumed`) with our new direction.
    pub fn record(self, direction: Direction) -> CallEventData {
        let change = HoldChanged {
            direction: direction.as_str().to_owned(),
            extra: Extra::new(),
        };
        match self {
            HoldChange::Held => CallEventData::Held(change),
            HoldChange::Resumed => CallEventData::Resumed(change),
        }
    }
}

/// Why the call is declared dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Silence {
    /// No RTP for the inactivity timeout on a send-receive stream.
    RtpTimeout,
    /// Neither RTP nor RTCP for the hold timeout on any other stream.
    HoldTimeout,
}

/// The liveness state of one call's stream.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    direction: Direction,
    /// The last RTP from the peer, or the start of the current window (call start, hold,
    /// resume), whichever is later.
    last_rtp: Instant,
    /// The last RTCP report from the peer.
    last_rtcp: Option<Instant>,
    inactivity_timeout: Duration,
    hold_timeout: Duration,
    reported: bool,
}

impl Liveness {
    /// A send-receive stream starting at `now`.
    pub(crate) fn new(now: Instant, inactivity_timeout: Duration, hold_timeout: Duration) -> Self {
        Self {
            direction: Direction::SendRecv,
            last_rtp: now,
            last_rtcp: None,
            inactivity_timeout,
            hold_timeout,
            reported: false,
        }
    }

    /// RTP (or a provider's audio frame) arrived from the peer.
    pub(crate) fn on_rtp(&mut self, now: Instant) {
        self.last_rtp = now;
    }

    /// A real RTCP report arrived from the peer.
    pub(crate) fn on_rtcp(&mut self, now: Instant) {
        self.last_rtcp = Some(now);
    }

    /// Our direction is now `direction`; says whether that put the call on hold or took it off.
    /// Each change of what we expect starts a fresh window, so a resumed call gets a whole
    /// inactivity timeout for its first packet.
    pub(crate) fn set_direction(
        &mut self,
        now: Instant,
        direction: Direction,
    ) -> Option<HoldChange> {
        let before = self.direction;
        self.direction = direction;
        if expects_rtp(before) != expects_rtp(direction) {
            self.last_rtp = now;
        }
        match (before.sends(), direction.sends()) {
            (true, false) => Some(HoldChange::Held),
            (false, true) => Some(HoldChange::Resumed),
            _ => None,
        }
    }

    /// Whether we may send RTP (not on hold).
    pub(crate) fn sends(&self) -> bool {
        self.direction.sends()
    }

    /// When the call is declared dead if nothing more arrives; `None` once it was.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.reported {
            return None;
        }
        Some(if expects_rtp(self.direction) {
            self.last_rtp + self.inactivity_timeout
        } else {
            let heard = self
                .last_rtcp
                .map_or(self.last_rtp, |r| r.max(self.last_rtp));
            heard + self.hold_timeout
        })
    }

    /// Time passed: the call's death, once, when its deadline has come.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Silence> {
        let due = self.poll_timeout().is_some_and(|at| now >= at);
        if !due {
            return None;
        }
        self.reported = true;
        Some(if expects_rtp(self.direction) {
            Silence::RtpTimeout
        } else {
            Silence::HoldTimeout
        })
    }
}

/// Only a send-receive stream owes us RTP; any other is some kind of hold.
fn expects_rtp(direction: Direction) -> bool {
    direction == Direction::SendRecv
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTP: Duration = Duration::from_secs(2);
    const HOLD: Duration = Duration::from_secs(60);

    #[test]
    fn rtcp_keeps_a_held_call_alive_past_the_rtp_timeout_but_not_past_the_hold_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, RTP, HOLD);
        let held_at = t0 + Duration::from_secs(1);
        assert_eq!(
            l.set_direction(held_at, Direction::Inactive),
            Some(HoldChange::Held)
        );
        assert_eq!(
            l.set_direction(held_at, Direction::Inactive),
            None,
            "a refresh while held changes nothing"
        );
        assert!(!l.sends());
        // Reports every 5 s for ten minutes: far past the RTP timeout, never dead.
        for n in 1..=120 {
            let now = held_at + Duration::from_secs(5) * n;
            l.on_rtcp(now);
            assert_eq!(l.handle_timeout(now), None, "at {n}");
        }
        let last = held_at + Duration::from_secs(600);
        assert_eq!(l.poll_timeout(), Some(last + HOLD));
        assert_eq!(
            l.handle_timeout(last + HOLD - Duration::from_millis(1)),
            None
        );
        assert_eq!(l.handle_timeout(last + HOLD), Some(Silence::HoldTimeout));
        assert_eq!(l.handle_timeout(last + HOLD * 2), None, "once");
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn a_held_call_without_rtcp_ends_at_the_hold_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, RTP, HOLD);
        l.set_direction(t0, Direction::Inactive);
        assert_eq!(l.handle_timeout(t0 + RTP * 10), None);
        assert_eq!(l.handle_timeout(t0 + HOLD), Some(Silence::HoldTimeout));
    }

    #[test]
    fn rtcp_is_no_proof_of_life_while_rtp_is_expected() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, RTP, HOLD);
        l.on_rtcp(t0 + Duration::from_secs(1));
        assert_eq!(l.handle_timeout(t0 + RTP), Some(Silence::RtpTimeout));
    }

    #[test]
    fn resuming_gives_a_fresh_rtp_window_and_the_rtp_timeout_again() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, RTP, HOLD);
        assert_eq!(
            l.set_direction(t0, Direction::RecvOnly),
            Some(HoldChange::Held)
        );
        assert_eq!(l.set_direction(t0, Direction::Inactive), None);
        let back = t0 + Duration::from_secs(30);
        assert_eq!(
            l.set_direction(back, Direction::SendRecv),
            Some(HoldChange::Resumed)
        );
        assert_eq!(
            l.handle_timeout(back + RTP - Duration::from_millis(1)),
            None
        );
        l.on_rtp(back + Duration::from_secs(1));
        assert_eq!(l.handle_timeout(back + RTP), None);
        assert_eq!(
            l.handle_timeout(back + Duration::from_secs(1) + RTP),
            Some(Silence::RtpTimeout)
        );
    }

    #[test]
    fn a_peer_that_only_receives_is_not_held_but_owes_no_rtp() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, RTP, HOLD);
        assert_eq!(l.set_direction(t0, Direction::SendOnly), None);
        assert!(l.sends());
        assert_eq!(l.handle_timeout(t0 + RTP * 5), None);
        assert_eq!(l.handle_timeout(t0 + HOLD), Some(Silence::HoldTimeout));
    }
}

//! Key presses sent by SIP INFO, paced like the RTP ones, sans-IO. A peer that negotiated no
//! telephone-event gets our digits as one INFO request each; sent back to back they arrive
//! within a millisecond, and a phone menu takes them for one key or drops some. So each digit
//! is let out at the spacing of an RFC 4733 press (its packets, then the gap before the next
//! key: see [`DtmfSender`](crate::rtp::dtmf_out::DtmfSender)), one per media tick, and the
//! agent's speech waits until the last one's press has ended.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtp::dtmf::{DtmfDigit, DtmfError};
use crate::rtp::dtmf_out::GAP_FRAMES;

/// A press on the RTP path: five 20 ms updates and the end packet twice more.
pub(crate) const PRESS: Duration = Duration::from_millis(7 * 20);
/// From one digit's start to the next's on the RTP path: the press, then the gap.
pub(crate) const SPACING: Duration = Duration::from_millis(7 * 20 + GAP_FRAMES as u64 * 20);
/// Most keys waiting; more are refused, as on the RTP path.
const MAX_QUEUED: usize = 64;

/// The keys waiting to go out by SIP INFO, and when the next may.
#[derive(Debug, Default)]
pub(crate) struct InfoDigits {
    queue: VecDeque<char>,
    /// Due to go out now, for the call to send.
    ready: VecDeque<char>,
    /// When the next key may go out.
    next_at: Option<Instant>,
    /// When the press of the last key sent ends.
    pressed_until: Option<Instant>,
}

impl InfoDigits {
    /// Queues `digits` (0-9, *, #, A-D) after those waiting; none is queued if one is not a
    /// key, or if too many are waiting.
    pub(crate) fn push(&mut self, digits: &str) -> Result<(), DtmfError> {
        let keys = digits
            .chars()
            .map(|c| DtmfDigit::from_char(c).map(|_| c.to_ascii_uppercase()))
            .collect::<Result<Vec<_>, _>>()?;
        if self.queue.len() + keys.len() > MAX_QUEUED {
            return Err(DtmfError::TooMany(MAX_QUEUED));
        }
        self.queue.extend(keys);
        Ok(())
    }

    /// Time passed: the next key goes out if its time has come.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.next_at.is_some_and(|at| now < at) {
            return;
        }
        if let Some(key) = self.queue.pop_front() {
            self.ready.push_back(key);
            self.next_at = Some(now + SPACING);
            self.pressed_until = Some(now + PRESS);
        }
    }

    /// When the next key is due (`None`: nothing waits, or the very next tick sends it).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_at.filter(|_| !self.queue.is_empty())
    }

    /// The next key to send by SIP INFO now.
    pub(crate) fn poll_digit(&mut self) -> Option<char> {
        self.ready.pop_front()
    }

    /// Whether the agent's speech waits: keys are still to go, or the last one's press lasts.
    pub(crate) fn holds_speech(&self, now: Instant) -> bool {
        !self.queue.is_empty()
            || !self.ready.is_empty()
            || self.pressed_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_out_one_at_a_time_at_the_rtp_spacing() {
        let t0 = Instant::now();
        let mut info = InfoDigits::default();
        info.push("12#").expect("keys");
        let mut sent = Vec::new();
        // A 20 ms tick, as the media's.
        for n in 0..60u32 {
            let now = t0 + Duration::from_millis(20) * n;
            info.handle_timeout(now);
            while let Some(key) = info.poll_digit() {
                sent.push((key, (now - t0).as_millis()));
            }
        }
        assert_eq!(sent, [('1', 0), ('2', 240), ('#', 480)]);
        assert!(info.holds_speech(t0 + Duration::from_millis(600)));
        assert!(!info.holds_speech(t0 + Duration::from_millis(620)));
    }

    #[test]
    fn bad_keys_and_too_many_are_refused_whole() {
        let mut info = InfoDigits::default();
        assert!(info.push("12x").is_err());
        assert!(info.push(&"1".repeat(65)).is_err());
        assert_eq!(info.poll_timeout(), None);
        assert!(!info.holds_speech(Instant::now()));
    }
}

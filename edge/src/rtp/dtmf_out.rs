//! Key presses going out as RFC 4733 telephone events on the call's own RTP stream (same SSRC,
//! the sequence numbers running on), sans-IO: the media core asks [`DtmfSender::tick`] at every
//! 20 ms pacing tick whether this frame carries an event packet instead of voice. A press is an
//! update every 20 ms for 100 ms, then its end packet three times (end-packet redundancy, RFC
//! 4733 section 2.5.1.4), then 100 ms of the ordinary stream before the next key, so that the
//! far end hears distinct presses even of the same key.

use std::collections::VecDeque;

use super::dtmf::{DtmfDigit, DtmfEncoder, DtmfError, DtmfPacket};

/// How long each key is held: 100 ms at 8 kHz (scaled to the stream's clock).
pub(crate) const DIGIT_DURATION: u16 = 800;
/// An update packet every 20 ms at 8 kHz.
const UPDATE_INTERVAL: u16 = 160;
/// Frames of the ordinary stream between two presses (100 ms).
pub(crate) const GAP_FRAMES: u32 = 5;
/// Power level, -dBm0: a typical keypad's.
const VOLUME: u8 = 10;
/// Most keys waiting; more are refused rather than delaying the call's audio for minutes.
const MAX_QUEUED: usize = 64;

/// The keys waiting to be pressed on one outgoing stream, and the press in progress.
#[derive(Debug)]
pub(crate) struct DtmfSender {
    queue: VecDeque<DtmfDigit>,
    current: Option<DtmfEncoder>,
    gap_left: u32,
    /// Duration units in 20 ms, and in a press: the telephone-event's clock decides (8 kHz
    /// for G.711 and for Opus with `telephone-event/8000`; 48 kHz with `telephone-event/48000`).
    update_interval: u16,
    digit_duration: u16,
}

impl Default for DtmfSender {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfSender {
    /// Nothing to press yet, on an 8 kHz stream.
    pub(crate) fn new() -> Self {
        Self::with_clock_rate(8_000)
    }

    /// Nothing to press yet, for a telephone-event whose clock runs at `clock_rate` Hz (at most
    /// 48 kHz: a press must fit the 16-bit duration field). The packets' timestamps are the
    /// caller's to give, in the stream's own clock.
    pub(crate) fn with_clock_rate(clock_rate: u32) -> Self {
        let update = u16::try_from(clock_rate.min(48_000) / 50).unwrap_or(UPDATE_INTERVAL);
        Self {
            queue: VecDeque::new(),
            current: None,
            gap_left: 0,
            update_interval: update,
            digit_duration: update.saturating_mul(DIGIT_DURATION / UPDATE_INTERVAL),
        }
    }

    /// Queues `digits` (0-9, *, #, A-D) after those already waiting; nothing is queued if one
    /// of them is not a key, or if too many are waiting.
    pub(crate) fn push(&mut self, digits: &str) -> Result<(), DtmfError> {
        let keys = digits
            .chars()
            .map(DtmfDigit::from_char)
            .collect::<Result<Vec<_>, _>>()?;
        if self.queue.len() + keys.len() > MAX_QUEUED {
            return Err(DtmfError::TooMany(MAX_QUEUED));
        }
        self.queue.extend(keys);
        Ok(())
    }

    /// Whether a press is in progress or waiting (the ordinary stream pauses for its packets,
    /// and the agent's speech waits).
    pub(crate) fn is_busy(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// One pacing tick whose frame starts at RTP `timestamp`: the event packet to send instead
    /// of voice, or `None` for an ordinary frame.
    pub(crate) fn tick(&mut self, timestamp: u32) -> Option<DtmfPacket> {
        if let Some(encoder) = self.current.as_mut() {
            if let Some(packet) = encoder.next() {
                return Some(packet);
            }
            self.current = None;
            self.gap_left = GAP_FRAMES;
        }
        if self.gap_left > 0 {
            self.gap_left -= 1;
            return None;
        }
        let digit = self.queue.pop_front()?;
        let mut encoder = DtmfEncoder::new(
            digit,
            timestamp,
            self.digit_duration,
            self.update_interval,
            VOLUME,
        );
        let first = encoder.next();
        self.current = Some(encoder);
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::dtmf::TelephoneEvent;

    #[test]
    fn each_key_is_five_updates_three_ends_and_a_gap() {
        let mut sender = DtmfSender::new();
        sender.push("1#").unwrap();
        let frames: Vec<Option<DtmfPacket>> = (0..30u32).map(|i| sender.tick(i * 160)).collect();
        let kinds: String = frames
            .iter()
            .map(|f| match f {
                None => '.',
                Some(p) if TelephoneEvent::parse(&p.payload).unwrap().end => 'E',
                Some(_) => 'u',
            })
            .collect();
        assert_eq!(kinds, "uuuuEEE.....uuuuEEE...........");
        let first: Vec<TelephoneEvent> = frames[..7]
            .iter()
            .map(|p| TelephoneEvent::parse(&p.unwrap().payload).unwrap())
            .collect();
        let durations: Vec<u16> = first.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert!(first.iter().all(|e| e.event == 1 && e.volume == 10));
        // Every packet of a press carries the timestamp of its first frame; only that one is marked.
        assert!(frames[..7].iter().all(|p| p.unwrap().timestamp == 0));
        assert!(frames[0].unwrap().marker && frames[1..7].iter().all(|p| !p.unwrap().marker));
        let second = frames[12].unwrap();
        assert_eq!((second.timestamp, second.marker), (12 * 160, true));
        assert_eq!(TelephoneEvent::parse(&second.payload).unwrap().event, 11);
        assert!(!sender.is_busy());
    }

    #[test]
    fn a_bad_key_queues_nothing() {
        let mut sender = DtmfSender::new();
        assert_eq!(sender.push("12x"), Err(DtmfError::InvalidDigit('x')));
        assert!(!sender.is_busy());
        assert_eq!(sender.tick(0), None);
        assert!(sender.push(&"1".repeat(65)).is_err());
    }
}

//! RFC 4733 telephone events: how keypad digits travel in RTP beside the audio. Callers press
//! keys to navigate IVR menus and the agent's `send_dtmf` tool presses them toward a far end, so
//! both directions live here. The receiver turns the stream of event packets (start, updates,
//! and the end packet sent three times) into exactly one [`DigitEvent`] per key press; the
//! encoder yields the packet sequence for one press. Both are sans-IO: the socket task passes
//! packets and `Instant`s in, the pacer times the packets out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes of one telephone-event payload.
pub const EVENT_PAYLOAD_LEN: usize = 4;
/// An event with no update for this long is reported as ended (its end packets were lost).
pub const END_TIMEOUT: Duration = Duration::from_millis(1000);
/// RFC 4733 §2.5.1.4: the end packet is sent three times.
const END_REPEATS: u8 = 3;
/// Events kept for `poll_event`; the oldest is dropped if the call task falls this far behind.
const MAX_QUEUED: usize = 8;

/// Why a telephone event could not be read or a digit not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The payload is shorter than 4 bytes.
    #[error("telephone-event payload too short: {0} bytes, need 4")]
    TooShort(usize),
    /// Only 0-9, *, #, A-D exist on a keypad.
    #[error("'{0}' is not a DTMF digit")]
    InvalidDigit(char),
    /// More keys than may wait to be sent.
    #[error("at most {0} DTMF digits may wait to be sent")]
    TooMany(usize),
}

/// One of the 16 DTMF keys (RFC 4733 event codes 0–15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfDigit(u8);

const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

impl DtmfDigit {
    /// From a tool argument or a dial string (`a`-`d` accepted too).
    pub fn from_char(c: char) -> Result<Self, DtmfError> {
        let upper = c.to_ascii_uppercase();
        KEYS.iter()
            .position(|&k| k == upper)
            .map(|i| DtmfDigit(i as u8))
            .ok_or(DtmfError::InvalidDigit(c))
    }

    /// From an RFC 4733 event code; `None` for non-DTMF events (flash, tones).
    pub fn from_event_code(code: u8) -> Option<Self> {
        (usize::from(code) < KEYS.len()).then_some(DtmfDigit(code))
    }

    /// The key as a character, for transcripts and the workflow executor.
    pub fn as_char(self) -> char {
        KEYS.get(usize::from(self.0)).copied().unwrap_or('?')
    }

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        self.0
    }
}

/// A decoded telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are DTMF digits).
    pub event: u8,
    /// Set on the final packets of the event.
    pub end: bool,
    /// Power level in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first four bytes of a payload; extra bytes (redundant events) are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d_hi, d_lo] = payload
            .first_chunk::<EVENT_PAYLOAD_LEN>()
            .copied()
            .ok_or(DtmfError::TooShort(payload.len()))?;
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d_hi, d_lo]),
        })
    }

    /// The four payload bytes.
    pub fn to_bytes(self) -> [u8; EVENT_PAYLOAD_LEN] {
        let [d_hi, d_lo] = self.duration.to_be_bytes();
        let end = if self.end { 0x80 } else { 0 };
        [self.event, end | (self.volume & 0x3F), d_hi, d_lo]
    }
}

/// One key press, reported once however many packets carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    /// The key.
    pub digit: DtmfDigit,
    /// How long it was held.
    pub duration: Duration,
    /// Power level in -dBm0.
    pub volume: u8,
}

#[derive(Debug, Clone, Copy)]
struct InProgress {
    timestamp: u32,
    digit: DtmfDigit,
    duration: u16,
    volume: u8,
    last_seen: Instant,
}

/// Turns incoming telephone-event packets into one [`DigitEvent`] per key press.
#[derive(Debug)]
pub struct DtmfReceiver {
    clock_rate: u32,
    current: Option<InProgress>,
    /// RTP timestamp of the last event reported, so its end retransmissions are swallowed.
    last_reported: Option<u32>,
    events: VecDeque<DigitEvent>,
}

impl DtmfReceiver {
    /// `clock_rate` of the negotiated telephone-event format (usually 8000).
    pub fn new(clock_rate: u32) -> Self {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            current: None,
            last_reported: None,
            events: VecDeque::with_capacity(MAX_QUEUED),
        }
    }

    /// Feeds one telephone-event packet's RTP timestamp (the event's start) and payload.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        let event = TelephoneEvent::parse(payload)?;
        let Some(digit) = DtmfDigit::from_event_code(event.event) else {
            return Ok(()); // flash-hook and tones are not key presses
        };
        if self.last_reported == Some(timestamp) {
            return Ok(()); // retransmitted end packet of a press already reported
        }
        match self.current {
            Some(ref mut cur) if cur.timestamp == timestamp => {
                cur.duration = cur.duration.max(event.duration);
                cur.volume = event.volume;
                cur.last_seen = now;
            }
            _ => {
                // A press of another timestamp still open: the new press began before we saw the
                // old one end, its end packets were lost; report it (nothing when none is open).
                self.finish();
                self.current = Some(InProgress {
                    timestamp,
                    digit,
                    duration: event.duration,
                    volume: event.volume,
                    last_seen: now,
                });
            }
        }
        if event.end {
            self.finish();
        }
        Ok(())
    }

    fn finish(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        self.last_reported = Some(cur.timestamp);
        let nanos = u64::from(cur.duration) * 1_000_000_000 / u64::from(self.clock_rate);
        if self.events.len() >= MAX_QUEUED {
            self.events.pop_front();
        }
        self.events.push_back(DigitEvent {
            digit: cur.digit,
            duration: Duration::from_nanos(nanos),
            volume: cur.volume,
        });
    }

    /// When an unfinished press should be given up on (its end packets all lost).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_seen + END_TIMEOUT)
    }

    /// Reports an unfinished press whose packets stopped [`END_TIMEOUT`] ago.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| now >= at) {
            self.finish();
        }
    }

    /// The next completed key press, in order.
    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        self.events.pop_front()
    }
}

/// One outgoing telephone-event packet; the caller adds sequence number and SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// Set on the first packet of the event.
    pub marker: bool,
    /// The event's start timestamp, the same on every packet of the press.
    pub timestamp: u32,
    /// The 4-byte payload.
    pub payload: [u8; EVENT_PAYLOAD_LEN],
}

/// Yields the packets for one key press: updates every `interval`, then three end packets.
/// Send one per pacing tick. Durations are capped at 0xFFFF units (8 s at 8 kHz).
#[derive(Debug, Clone)]
pub struct DtmfEncoder {
    digit: DtmfDigit,
    volume: u8,
    timestamp: u32,
    interval: u16,
    total: u16,
    elapsed: u16,
    ends_sent: u8,
}

impl DtmfEncoder {
    /// A press of `digit` starting at RTP `timestamp`, held `duration` units, with an update
    /// packet every `interval` units (160 = 20 ms at 8 kHz) at `volume` -dBm0 (10 is usual).
    pub fn new(digit: DtmfDigit, timestamp: u32, duration: u16, interval: u16, volume: u8) -> Self {
        let interval = interval.max(1);
        DtmfEncoder {
            digit,
            volume: volume.min(63),
            timestamp,
            interval,
            total: duration.max(interval),
            elapsed: 0,
            ends_sent: 0,
        }
    }
}

impl Iterator for DtmfEncoder {
    type Item = DtmfPacket;

    fn next(&mut self) -> Option<DtmfPacket> {
        let first = self.elapsed == 0;
        let end = self.elapsed.saturating_add(self.interval) >= self.total;
        if end {
            if self.ends_sent >= END_REPEATS {
                return None;
            }
            self.ends_sent += 1;
            self.elapsed = self.total;
        } else {
            self.elapsed += self.interval;
        }
        let event = TelephoneEvent {
            event: self.digit.event_code(),
            end,
            volume: self.volume,
            duration: self.elapsed,
        };
        Some(DtmfPacket {
            marker: first,
            timestamp: self.timestamp,
            payload: event.to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn digit(c: char) -> DtmfDigit {
        DtmfDigit::from_char(c).unwrap()
    }

    #[test]
    fn decodes_the_payload_fields() {
        let e = TelephoneEvent::parse(&[11, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!((e.event, e.end, e.volume, e.duration), (11, true, 10, 800));
        assert_eq!(e.to_bytes(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(DtmfDigit::from_event_code(11).unwrap().as_char(), '#');
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::TooShort(3))
        );
    }

    #[test]
    fn digits_map_to_event_codes() {
        assert_eq!(digit('5').event_code(), 5);
        assert_eq!(digit('*').event_code(), 10);
        assert_eq!(digit('d').event_code(), 15);
        assert_eq!(DtmfDigit::from_char('x'), Err(DtmfError::InvalidDigit('x')));
        assert_eq!(DtmfDigit::from_event_code(16), None);
    }

    #[test]
    fn duplicate_end_packets_yield_one_digit() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        let ts = 48_000;
        for (i, packet) in DtmfEncoder::new(digit('7'), ts, 800, 160, 10).enumerate() {
            let at = t0 + Duration::from_millis(20 * i as u64);
            rx.handle_packet(at, packet.timestamp, &packet.payload)
                .unwrap();
        }
        let event = rx.poll_event().unwrap();
        assert_eq!(event.digit.as_char(), '7');
        assert_eq!(event.duration, Duration::from_millis(100));
        assert_eq!(event.volume, 10);
        assert_eq!(rx.poll_event(), None);
        // A straggling end retransmission long after changes nothing.
        let end = TelephoneEvent {
            event: 7,
            end: true,
            volume: 10,
            duration: 800,
        };
        rx.handle_packet(t0 + Duration::from_secs(1), ts, &end.to_bytes())
            .unwrap();
        assert_eq!(rx.poll_event(), None);
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn the_same_key_pressed_twice_is_two_digits() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        for ts in [1_000u32, 9_000] {
            for p in DtmfEncoder::new(digit('1'), ts, 480, 160, 10) {
                rx.handle_packet(t0, p.timestamp, &p.payload).unwrap();
            }
        }
        assert_eq!(rx.poll_event().map(|e| e.digit), Some(digit('1')));
        assert_eq!(rx.poll_event().map(|e| e.digit), Some(digit('1')));
        assert_eq!(rx.poll_event(), None);
    }

    #[test]
    fn lost_end_packets_are_recovered_by_the_next_press_or_a_timeout() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        let start = |d: char| TelephoneEvent {
            event: digit(d).event_code(),
            end: false,
            volume: 10,
            duration: 160,
        };
        rx.handle_packet(t0, 100, &start('4').to_bytes()).unwrap();
        rx.handle_packet(t0, 5_000, &start('2').to_bytes()).unwrap();
        assert_eq!(rx.poll_event().map(|e| e.digit), Some(digit('4')));
        assert_eq!(rx.poll_event(), None);
        assert_eq!(rx.poll_timeout(), Some(t0 + END_TIMEOUT));
        rx.handle_timeout(t0 + END_TIMEOUT - Duration::from_millis(1));
        assert_eq!(rx.poll_event(), None);
        rx.handle_timeout(t0 + END_TIMEOUT);
        assert_eq!(rx.poll_event().map(|e| e.digit), Some(digit('2')));
    }

    #[test]
    fn encoder_sends_updates_then_three_ends() {
        let packets: Vec<_> = DtmfEncoder::new(digit('9'), 777, 480, 160, 10).collect();
        let decoded: Vec<_> = packets
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        let durations: Vec<u16> = decoded.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 480, 480]);
        let ends: Vec<bool> = decoded.iter().map(|e| e.end).collect();
        assert_eq!(ends, [false, false, true, true, true]);
        assert!(packets[0].marker && packets[1..].iter().all(|p| !p.marker));
        assert!(packets.iter().all(|p| p.timestamp == 777));
    }

    #[test]
    fn non_dtmf_events_and_junk_are_ignored_or_errors() {
        let mut rx = DtmfReceiver::new(8000);
        let flash = [16u8, 0x80, 0, 160];
        rx.handle_packet(Instant::now(), 1, &flash).unwrap();
        assert_eq!(rx.poll_event(), None);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut buf = [0u8; 8];
        for _ in 0..10_000 {
            let n = rng.gen_range(0..buf.len());
            rng.fill(&mut buf[..n]);
            let _ = rx.handle_packet(Instant::now(), rng.gen(), &buf[..n]);
        }
        while rx.poll_event().is_some() {}
    }
}

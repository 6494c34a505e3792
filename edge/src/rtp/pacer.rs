//! The outgoing pacing clock: the agent's audio must leave at one packet every 20 ms, however
//! bursty text-to-speech is and however late the tokio timer wakes us. Deadlines are computed as
//! `start + n × frame` — never by adding up sleeps — so an hour-long call does not drift by a
//! sample. After a stall (a busy runtime, a paused VM) the pacer lets a few missed frames out at
//! once and skips the rest, so the far end's jitter buffer sees neither a long burst nor a
//! clock that runs slow. It also owns the outgoing RTP sequence number and timestamp (derived
//! from the frame index, so they stay in step with real time across silences and skips) and
//! sets the marker bit on the first packet of each talk spurt.

use std::time::{Duration, Instant};

use crate::rtp::packet::OutgoingHeader;

/// Settings for one outgoing stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    /// Audio per packet.
    pub frame_duration: Duration,
    /// RTP clock rate of the sent format.
    pub clock_rate: u32,
    /// Most frames released by one `handle_timeout` after a stall; older ones are skipped.
    pub max_catch_up: u32,
    /// First sequence number (RFC 3550 asks for a random one).
    pub initial_sequence: u16,
    /// RTP timestamp of frame 0 (random too).
    pub initial_timestamp: u32,
}

impl PacerConfig {
    /// 20 ms frames at `clock_rate`, catching up at most 3 frames, random initial sequence
    /// number and timestamp as RFC 3550 §5.1 recommends.
    pub fn new(clock_rate: u32) -> Self {
        PacerConfig {
            frame_duration: Duration::from_millis(20),
            clock_rate,
            max_catch_up: 3,
            initial_sequence: rand::random(),
            initial_timestamp: rand::random(),
        }
    }
}

/// Counters for metrics and the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Frames sent as packets.
    pub sent: u64,
    /// Frames that passed in silence (no packet).
    pub idle: u64,
    /// Frames skipped after a stall.
    pub skipped: u64,
}

/// Drift-free 20 ms clock and RTP header source for one outgoing stream.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    frame_nanos: u64,
    samples_per_frame: u64,
    max_catch_up: u32,
    /// Index of the first frame whose deadline has not yet passed.
    next_index: u64,
    /// Frames whose deadline passed and that were not yet sent or idled.
    due: u32,
    sequence: u16,
    base_timestamp: u32,
    marker_pending: bool,
    stats: PacerStats,
}

impl Pacer {
    /// Starts the clock: frame 0 is due at `start`.
    pub fn new(start: Instant, config: PacerConfig) -> Self {
        let frame_nanos = u64::try_from(config.frame_duration.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let samples_per_frame = u64::from(config.clock_rate) * frame_nanos / 1_000_000_000;
        Pacer {
            start,
            frame_nanos,
            samples_per_frame,
            max_catch_up: config.max_catch_up.max(1),
            next_index: 0,
            due: 0,
            sequence: config.initial_sequence,
            base_timestamp: config.initial_timestamp,
            marker_pending: true,
            stats: PacerStats::default(),
        }
    }

    fn deadline(&self, index: u64) -> Instant {
        self.start + Duration::from_nanos(index.saturating_mul(self.frame_nanos))
    }

    /// When the shell should next call `handle_timeout` (the next frame's deadline).
    pub fn poll_timeout(&self) -> Instant {
        self.deadline(self.next_index)
    }

    /// Advances the clock to `now`; returns how many frames are due. Each must be consumed by
    /// [`Pacer::emit`] (a packet) or [`Pacer::idle`] (silence).
    pub fn handle_timeout(&mut self, now: Instant) -> u32 {
        if now < self.poll_timeout() {
            return self.due;
        }
        let elapsed =
            u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        let upto = elapsed / self.frame_nanos + 1;
        let newly_due = upto.saturating_sub(self.next_index);
        self.next_index = upto;
        let total = u64::from(self.due).saturating_add(newly_due);
        let allowed = u64::from(self.max_catch_up);
        if total > allowed {
            let skipped = total - allowed;
            tracing::debug!(skipped, "pacer: stalled, skipping frames");
            self.stats.skipped += skipped;
            // The far end hears a discontinuity: mark the next packet as a new spurt.
            self.marker_pending = true;
        }
        self.due = total.min(allowed) as u32;
        self.due
    }

    /// Frames due and not yet consumed.
    pub fn due(&self) -> u32 {
        self.due
    }

    /// Consumes the oldest due frame as a sent packet; `None` if no frame is due.
    pub fn emit(&mut self) -> Option<OutgoingHeader> {
        let index = self.take_due()?;
        let header = OutgoingHeader {
            sequence: self.sequence,
            timestamp: self.timestamp_of(index),
            marker: std::mem::take(&mut self.marker_pending),
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.stats.sent += 1;
        Some(header)
    }

    /// Sets the marker bit on the next packet: a talk spurt starts there even though the stream
    /// carried (comfort) silence packets before it.
    pub fn mark_talk_spurt(&mut self) {
        self.marker_pending = true;
    }

    /// Consumes the oldest due frame as silence (nothing sent); the next packet starts a new
    /// talk spurt. False if no frame was due.
    pub fn idle(&mut self) -> bool {
        if self.take_due().is_none() {
            return false;
        }
        self.marker_pending = true;
        self.stats.idle += 1;
        true
    }

    fn take_due(&mut self) -> Option<u64> {
        if self.due == 0 {
            return None;
        }
        let index = self.next_index - u64::from(self.due);
        self.due -= 1;
        Some(index)
    }

    fn timestamp_of(&self, index: u64) -> u32 {
        let offset = index.wrapping_mul(self.samples_per_frame) as u32;
        self.base_timestamp.wrapping_add(offset)
    }

    /// RTP timestamp of the oldest due frame (what [`Pacer::emit`] would stamp), if one is due.
    pub fn due_timestamp(&self) -> Option<u32> {
        (self.due > 0).then(|| self.timestamp_of(self.next_index - u64::from(self.due)))
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Counters since the stream started.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const MS: Duration = Duration::from_millis(1);

    fn config() -> PacerConfig {
        PacerConfig {
            initial_sequence: 65_000,
            initial_timestamp: u32::MAX - 1000,
            ..PacerConfig::new(8000)
        }
    }

    #[test]
    fn first_frame_is_due_at_start_and_marked() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, config());
        assert_eq!(pacer.poll_timeout(), t0);
        assert_eq!(pacer.handle_timeout(t0), 1);
        let h = pacer.emit().unwrap();
        assert_eq!(
            (h.sequence, h.timestamp, h.marker),
            (65_000, u32::MAX - 1000, true)
        );
        assert_eq!(pacer.emit(), None);
        assert_eq!(pacer.poll_timeout(), t0 + 20 * MS);
        assert_eq!(pacer.handle_timeout(t0 + 19 * MS), 0);
        assert_eq!(pacer.handle_timeout(t0 + 20 * MS), 1);
        let h = pacer.emit().unwrap();
        assert_eq!(
            (h.sequence, h.timestamp, h.marker),
            (65_001, u32::MAX - 840, false)
        );
    }

    #[test]
    fn pacer_does_not_drift_over_an_hour() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, config());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let frames: u64 = 3600 * 50;
        let mut last = None;
        for _ in 0..frames {
            // A timer wakes up a little late, every time; lateness must not accumulate.
            let now = pacer.poll_timeout() + Duration::from_micros(rng.gen_range(0..4000));
            for _ in 0..pacer.handle_timeout(now) {
                last = pacer.emit();
            }
        }
        assert_eq!(pacer.poll_timeout(), t0 + Duration::from_secs(3600));
        assert_eq!(pacer.stats().sent, frames);
        assert_eq!(pacer.stats().skipped, 0);
        let last = last.unwrap();
        let expected_ts = (u32::MAX - 1000).wrapping_add(((frames - 1) * 160) as u32);
        assert_eq!(last.timestamp, expected_ts);
        assert_eq!(last.sequence, 65_000u16.wrapping_add((frames - 1) as u16));
    }

    #[test]
    fn a_stall_releases_a_bounded_catch_up_and_skips_the_rest() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, config());
        pacer.handle_timeout(t0);
        pacer.emit();
        // The runtime stalls for a second: 50 deadlines pass.
        let now = t0 + 1000 * MS;
        assert_eq!(pacer.handle_timeout(now), 3);
        assert_eq!(pacer.stats().skipped, 47);
        let first = pacer.emit().unwrap();
        assert!(first.marker, "a discontinuity starts a new spurt");
        assert_eq!(first.timestamp, (u32::MAX - 1000).wrapping_add(48 * 160));
        assert!(!pacer.emit().unwrap().marker);
        pacer.emit();
        assert_eq!(pacer.emit(), None);
        assert_eq!(
            pacer.poll_timeout(),
            t0 + 1020 * MS,
            "schedule keeps its phase"
        );
    }

    #[test]
    fn silence_advances_the_timestamp_and_marks_the_next_spurt() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, config());
        pacer.handle_timeout(t0);
        let a = pacer.emit().unwrap();
        for i in 1..=5u32 {
            assert_eq!(pacer.handle_timeout(t0 + i * 20 * MS), 1);
            assert!(pacer.idle());
        }
        pacer.handle_timeout(t0 + 120 * MS);
        let b = pacer.emit().unwrap();
        assert_eq!(
            b.sequence,
            a.sequence.wrapping_add(1),
            "silence sends nothing"
        );
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(6 * 160));
        assert!(b.marker);
        assert!(!pacer.idle(), "nothing left due");
        assert_eq!(pacer.stats().idle, 5);
    }
}

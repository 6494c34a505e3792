//! The adaptive jitter buffer: packets arrive when the network delivers them — early, late, out
//! of order, twice or never — and the decoder wants exactly one frame every 20 ms. The socket
//! task `push`es each audio packet with the time it arrived and the call task `pop`s once per
//! tick; the buffer answers with the next frame in sequence order, or a `Lost` gap the decoder
//! conceals, or nothing while it (re)fills. Sans-IO: time is only what the caller passes in.
//!
//! Playout is by sequence number. After a reset or an underrun the buffer waits `target_delay`
//! from the first packet before playing. The target follows the RFC 3550 §A.8 interarrival
//! jitter, between `min_delay` and `max_delay`: it grows at the next refill (talk spurt or
//! underrun), and when more than two frames above target are queued one frame is discarded per
//! tick, so latency comes back down. Payloads are copied into slots allocated once at creation.
//! RFC 4733 event packets share the audio's sequence space: give their numbers to
//! [`JitterBuffer::push_foreign`] so they are skipped rather than reported lost.

use std::time::{Duration, Instant};

use crate::rtp::rtcp::InterarrivalJitter;

/// How far behind the playout point a packet may fall before it looks like a sender restart.
const MAX_MISORDER: i64 = 100;
/// A jump ahead this large is a restart rather than a burst of loss (RFC 3550 §A.1).
const MAX_DROPOUT: i64 = 3000;
/// Depth of the played-history bitmap used to tell duplicates from late packets.
const HISTORY: i64 = 64;

/// Why a jitter buffer could not be built from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JitterError {
    /// The named setting is zero or inconsistent.
    #[error("invalid jitter buffer setting `{0}`")]
    InvalidConfig(&'static str),
}

/// Settings for one buffer; the defaults suit 8 kHz G.711 at 20 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream, for jitter in time units.
    pub clock_rate: u32,
    /// Audio per packet and per `pop` tick.
    pub frame_duration: Duration,
    /// Smallest target delay.
    pub min_delay: Duration,
    /// Largest target delay.
    pub max_delay: Duration,
    /// Packet slots; must exceed `max_delay / frame_duration` plus reordering room.
    pub capacity: usize,
    /// Largest payload stored (640 = 20 ms of 16 kHz L16; G.711 needs 160, Opus voice less).
    pub max_payload: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            clock_rate: 8_000,
            frame_duration: Duration::from_millis(20),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            capacity: 64,
            max_payload: 640,
        }
    }
}

/// What one tick plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The next packet in sequence, borrowed until the next call.
    Frame {
        /// Its sequence number.
        sequence: u16,
        /// Its RTP timestamp.
        timestamp: u32,
        /// When it arrived: what the frame's audio is dated by for turn-taking, which must not
        /// wait on the playout delay.
        arrived: Instant,
        /// Its payload, for the decoder.
        payload: &'a [u8],
    },
    /// The packet due now never arrived: the decoder should conceal one frame.
    Lost {
        /// The missing sequence number.
        sequence: u16,
    },
}

/// What `push` did with a packet, for tracing and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Buffered,
    /// Stored, after the buffer was reset for a new SSRC or a sequence restart.
    Restarted,
    /// Already stored or already played: dropped.
    Duplicate,
    /// Its playout time has passed (or it is far outside the window): dropped.
    Late,
    /// Payload larger than `max_payload`: dropped.
    Oversize,
}

/// Counters since creation; resets do not clear them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Audio packets pushed (any outcome except oversize).
    pub received: u64,
    /// Gaps reported as `Playout::Lost`.
    pub lost: u64,
    /// Packets dropped for arriving after their playout time.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Packets that arrived after a higher sequence number but still in time.
    pub reordered: u64,
    /// Frames dropped to bring the delay back down to target.
    pub discarded: u64,
    /// Resets for an SSRC change or a sequence restart.
    pub resets: u64,
    /// Packets dropped for exceeding `max_payload`.
    pub oversize: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    ext_seq: i64,
    timestamp: u32,
    arrived: Option<Instant>,
    len: usize,
    filled: bool,
    foreign: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting `target` after `since` (the first packet after a reset or underrun).
    Filling {
        since: Option<Instant>,
    },
    Playing,
}

/// Reorders, de-duplicates and delays one incoming RTP stream into one frame per tick.
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Vec<Slot>,
    storage: Vec<u8>,
    ssrc: Option<u32>,
    /// Highest extended sequence number received, and its 16-bit form.
    highest: Option<(i64, u16)>,
    /// Extended sequence number of the next frame to play.
    next: Option<i64>,
    /// Whether playout has started since the last reset (before that, `next` may move back).
    started: bool,
    state: State,
    /// Bit i set: `next - 1 - i` was received and has been handled.
    played: u64,
    bad_seq: Option<u16>,
    epoch: Option<Instant>,
    jitter: InterarrivalJitter,
    target: Duration,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Allocates every slot up front; nothing is allocated per packet afterwards.
    pub fn new(config: JitterConfig) -> Result<Self, JitterError> {
        let invalid = |name| Err(JitterError::InvalidConfig(name));
        if config.clock_rate == 0 {
            return invalid("clock_rate");
        }
        if config.frame_duration.is_zero() {
            return invalid("frame_duration");
        }
        if config.min_delay > config.max_delay {
            return invalid("min_delay");
        }
        let frames = config.max_delay.as_nanos() / config.frame_duration.as_nanos();
        if config.capacity as u128 <= frames + 2 {
            return invalid("capacity");
        }
        if config.max_payload == 0 {
            return invalid("max_payload");
        }
        Ok(JitterBuffer {
            slots: vec![Slot::default(); config.capacity],
            storage: vec![0; config.capacity * config.max_payload],
            ssrc: None,
            highest: None,
            next: None,
            started: false,
            state: State::Filling { since: None },
            played: 0,
            bad_seq: None,
            epoch: None,
            jitter: InterarrivalJitter::default(),
            target: config.min_delay,
            stats: JitterStats::default(),
            config,
        })
    }

    /// Counters for RTCP, metrics and the call record.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The delay the buffer currently aims to hold: `min_delay + 4 × jitter`, rounded up to
    /// whole milliseconds and clamped to `max_delay`.
    pub fn target_delay(&self) -> Duration {
        self.target
    }

    /// Interarrival jitter estimate (RFC 3550 §A.8) as a duration.
    pub fn jitter(&self) -> Duration {
        let nanos = u64::from(self.jitter.jitter_x16()) * 1_000_000_000
            / (16 * u64::from(self.config.clock_rate));
        Duration::from_nanos(nanos)
    }

    /// SSRC of the stream being played, once one packet has arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Frames between the playout point and the newest packet, gaps included.
    pub fn depth(&self) -> usize {
        match (self.next, self.highest) {
            (Some(next), Some((high, _))) if high >= next => (high - next + 1) as usize,
            _ => 0,
        }
    }

    /// Takes one audio packet as it arrived from the network.
    pub fn push(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> PushOutcome {
        if payload.len() > self.config.max_payload {
            self.stats.oversize += 1;
            return PushOutcome::Oversize;
        }
        self.stats.received += 1;
        let (ext, restarted) = match self.admit(now, sequence, ssrc) {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        if !self.store(now, ext, timestamp, Some(payload)) {
            return PushOutcome::Duplicate;
        }
        self.observe_arrival(now, timestamp);
        if restarted {
            PushOutcome::Restarted
        } else {
            PushOutcome::Buffered
        }
    }

    /// Claims a sequence number used by a non-audio packet of the same stream (RFC 4733
    /// events), so playout skips it instead of reporting it lost.
    pub fn push_foreign(&mut self, now: Instant, sequence: u16, ssrc: u32) -> PushOutcome {
        let (ext, restarted) = match self.admit(now, sequence, ssrc) {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        if !self.store(now, ext, 0, None) {
            return PushOutcome::Duplicate;
        }
        if restarted {
            PushOutcome::Restarted
        } else {
            PushOutcome::Buffered
        }
    }

    /// Places a packet in the sequence window: `Ok((extended seq, restarted))`, or why not.
    fn admit(&mut self, now: Instant, seq: u16, ssrc: u32) -> Result<(i64, bool), PushOutcome> {
        let mut restarted = false;
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                tracing::debug!(old = ?self.ssrc, new = ssrc, "jitter buffer: SSRC changed");
                self.reset();
                restarted = true;
            }
            self.ssrc = Some(ssrc);
        }
        let mut ext = match self.highest {
            Some((high, high_seq)) => high + i64::from(seq.wrapping_sub(high_seq) as i16),
            None => i64::from(seq),
        };
        let capacity = self.slots.len() as i64;
        match self.next {
            None => self.begin_at(now, ext),
            Some(next) => {
                let ahead = ext - next;
                let behind_highest = self.highest.map_or(0, |(h, _)| h - ext);
                if ahead < 0 && !self.started && behind_highest < capacity {
                    // Still filling: an earlier packet simply becomes the first to play.
                    self.next = Some(ext);
                } else if ahead < 0 && -ahead <= MAX_MISORDER {
                    if -ahead <= HISTORY && self.played & (1u64 << (-ahead - 1)) != 0 {
                        self.stats.duplicate += 1;
                        return Err(PushOutcome::Duplicate);
                    }
                    self.stats.late += 1;
                    return Err(PushOutcome::Late);
                } else if (capacity..MAX_DROPOUT).contains(&ahead) {
                    // We fell a whole buffer behind (pop stalled): skip ahead to this packet.
                    self.stats.discarded += self.depth() as u64;
                    self.clear_slots();
                    self.begin_at(now, ext);
                } else if ahead < 0 || ahead >= capacity {
                    // Far outside the window: a sender restart only if the next packet follows.
                    if self.bad_seq != Some(seq) {
                        self.bad_seq = Some(seq.wrapping_add(1));
                        self.stats.late += 1;
                        return Err(PushOutcome::Late);
                    }
                    tracing::debug!(seq, "jitter buffer: sequence restarted");
                    self.reset();
                    ext = i64::from(seq);
                    self.begin_at(now, ext);
                    restarted = true;
                }
            }
        }
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }
        if restarted {
            self.stats.resets += 1;
        }
        Ok((ext, restarted))
    }

    fn begin_at(&mut self, now: Instant, ext: i64) {
        self.next = Some(ext);
        self.highest = None;
        self.started = false;
        self.played = 0;
        self.state = State::Filling { since: Some(now) };
    }

    /// Copies a packet into its slot; false if that slot already holds it (a duplicate).
    fn store(&mut self, now: Instant, ext: i64, timestamp: u32, payload: Option<&[u8]>) -> bool {
        let idx = ext.rem_euclid(self.slots.len() as i64) as usize;
        let Some(slot) = self.slots.get_mut(idx) else {
            return false;
        };
        if slot.filled && slot.ext_seq == ext {
            self.stats.duplicate += 1;
            return false;
        }
        let len = payload.map_or(0, <[u8]>::len);
        *slot = Slot {
            ext_seq: ext,
            timestamp,
            arrived: Some(now),
            len,
            filled: true,
            foreign: payload.is_none(),
        };
        if let (Some(src), Some(dst)) = (
            payload,
            self.storage
                .get_mut(idx * self.config.max_payload..)
                .and_then(|s| s.get_mut(..len)),
        ) {
            dst.copy_from_slice(src);
        }
        match self.highest {
            Some((high, _)) if ext < high => self.stats.reordered += 1,
            Some((high, _)) if ext == high => {}
            _ => self.highest = Some((ext, ext as u16)),
        }
        if let State::Filling { since: None } = self.state {
            self.state = State::Filling { since: Some(now) };
        }
        true
    }

    fn observe_arrival(&mut self, now: Instant, timestamp: u32) {
        let Some(epoch) = self.epoch else { return };
        let elapsed = now.saturating_duration_since(epoch).as_nanos();
        let arrival = (elapsed * u128::from(self.config.clock_rate) / 1_000_000_000) as u32;
        self.jitter.update(arrival, timestamp);
        // Whole milliseconds: the tick that plays a frame comes up to a frame after the target
        // anyway, so rounding to frames would add a frame of delay for nothing.
        let wanted = self.config.min_delay + self.jitter() * 4;
        let millis = wanted.as_nanos().div_ceil(1_000_000);
        let rounded = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        self.target = rounded.clamp(self.config.min_delay, self.config.max_delay);
    }

    /// Called once per frame tick: the next frame, a gap to conceal, or `None` while filling.
    pub fn pop(&mut self, now: Instant) -> Option<Playout<'_>> {
        if let State::Filling { since } = self.state {
            let since = since?;
            if now.saturating_duration_since(since) < self.target {
                return None;
            }
            self.state = State::Playing;
            self.started = true;
        }
        self.skip_foreign();
        if self.depth() == 0 {
            // Underrun: refill for `target` once packets come again (also the talk-spurt path).
            self.state = State::Filling { since: None };
            return None;
        }
        let frame = self.config.frame_duration.as_nanos();
        let queued = self.depth() as u128 * frame;
        if queued > self.target.as_nanos() + 2 * frame && self.slot_at_next().is_some() {
            self.stats.discarded += 1;
            self.advance(true);
            self.skip_foreign();
        }
        let next = self.next?;
        match self.slot_at_next() {
            Some((idx, slot)) => {
                self.advance(true);
                let start = idx * self.config.max_payload;
                let payload = self.storage.get(start..start + slot.len).unwrap_or(&[]);
                Some(Playout::Frame {
                    sequence: next as u16,
                    timestamp: slot.timestamp,
                    arrived: slot.arrived.unwrap_or(now),
                    payload,
                })
            }
            None => {
                self.stats.lost += 1;
                self.advance(false);
                Some(Playout::Lost {
                    sequence: next as u16,
                })
            }
        }
    }

    /// The payload of the packet due on the next tick, if it has arrived: after a
    /// [`Playout::Lost`], Opus rebuilds the lost frame from the in-band FEC it carries.
    pub fn peek_next(&self) -> Option<&[u8]> {
        let (idx, slot) = self.slot_at_next()?;
        let start = idx * self.config.max_payload;
        self.storage.get(start..start + slot.len)
    }

    /// The filled audio slot holding `next`, if it arrived.
    fn slot_at_next(&self) -> Option<(usize, Slot)> {
        let next = self.next?;
        let idx = next.rem_euclid(self.slots.len() as i64) as usize;
        let slot = *self.slots.get(idx)?;
        (slot.filled && slot.ext_seq == next && !slot.foreign).then_some((idx, slot))
    }

    /// Moves the playout point past `next`, freeing its slot.
    fn advance(&mut self, received: bool) {
        let Some(next) = self.next else { return };
        let idx = next.rem_euclid(self.slots.len() as i64) as usize;
        if let Some(slot) = self.slots.get_mut(idx) {
            if slot.ext_seq == next {
                slot.filled = false;
            }
        }
        self.played = (self.played << 1) | u64::from(received);
        self.next = Some(next + 1);
    }

    fn skip_foreign(&mut self) {
        for _ in 0..self.slots.len() {
            let Some(next) = self.next else { return };
            let idx = next.rem_euclid(self.slots.len() as i64) as usize;
            match self.slots.get(idx) {
                Some(s) if s.filled && s.foreign && s.ext_seq == next => self.advance(true),
                _ => return,
            }
        }
    }

    fn clear_slots(&mut self) {
        for slot in &mut self.slots {
            slot.filled = false;
        }
    }

    /// Forgets the stream (new SSRC or restart); counters are kept.
    fn reset(&mut self) {
        self.clear_slots();
        self.highest = None;
        self.next = None;
        self.started = false;
        self.state = State::Filling { since: None };
        self.played = 0;
        self.bad_seq = None;
        self.epoch = None;
        self.jitter.reset();
        self.target = self.config.min_delay;
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;

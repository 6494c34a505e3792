//! The caller's side of a call's media, after the source latch: packets into the jitter buffer,
//! one frame played out and decoded per 20 ms tick (a loss concealed by Opus, skipped on
//! G.711), and when that audio arrived, for turn-taking and the recording.

use std::time::Instant;

use super::FRAME_SAMPLES;
use crate::call::codec::CallCodec;
use crate::rtp::jitter::{JitterBuffer, Playout};

/// The caller's audio between the socket and the agent's ear.
pub(super) struct ReceivedAudio {
    jitter: JitterBuffer,
    decoded: [i16; FRAME_SAMPLES],
    /// `decoded` holds a frame the call has not taken yet.
    fresh_frame: bool,
    /// `decoded` was played out for the latest tick (the recording reads it, taken or not).
    decoded_this_tick: bool,
    /// When the audio of `decoded` reached us (estimated for a concealed frame), never earlier
    /// than the frame before it.
    decoded_at: Instant,
}

impl ReceivedAudio {
    /// Nothing received yet, starting `now`; the buffer is sized once, here.
    pub(super) fn new(now: Instant, jitter: JitterBuffer) -> Self {
        Self {
            jitter,
            decoded: [0; FRAME_SAMPLES],
            fresh_frame: false,
            decoded_this_tick: false,
            decoded_at: now,
        }
    }

    /// The jitter buffer, for its counters.
    pub(super) fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// One audio payload, into the jitter buffer.
    pub(super) fn push(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) {
        self.jitter.push(now, sequence, timestamp, ssrc, payload);
    }

    /// A packet of another payload in the stream (a telephone-event): its sequence number is
    /// no gap in the audio.
    pub(super) fn push_foreign(&mut self, now: Instant, sequence: u16, ssrc: u32) {
        self.jitter.push_foreign(now, sequence, ssrc);
    }

    /// The frame decoded by the last play-out, once, with when its audio arrived.
    pub(super) fn take_frame(&mut self) -> Option<(Instant, &[i16; FRAME_SAMPLES])> {
        if !self.fresh_frame {
            return None;
        }
        self.fresh_frame = false;
        Some((self.decoded_at, &self.decoded))
    }

    /// The frame played out for the latest tick, if one was, taken or not.
    pub(super) fn peek_frame(&self) -> Option<&[i16; FRAME_SAMPLES]> {
        self.decoded_this_tick.then_some(&self.decoded)
    }

    /// Pops the jitter buffer once for the tick now due and decodes what it gives. Returns the
    /// frame when it was really received, the audio tones are listened for in: a lost G.711
    /// frame is skipped rather than heard as silence that would split a held key in two.
    pub(super) fn play_out(
        &mut self,
        now: Instant,
        codec: &mut CallCodec,
    ) -> Option<&[i16; FRAME_SAMPLES]> {
        self.decoded_this_tick = false;
        match self.jitter.pop(now) {
            Some(Playout::Frame {
                payload, arrived, ..
            }) => {
                codec.decode(payload, &mut self.decoded);
                self.fresh_frame = true;
                self.decoded_this_tick = true;
                self.decoded_at = arrived.max(self.decoded_at);
                Some(&self.decoded)
            }
            Some(Playout::Lost { .. }) => {
                // It would have arrived one playout delay ago.
                let due = now.checked_sub(self.jitter.target_delay()).unwrap_or(now);
                self.decoded_at = due.max(self.decoded_at);
                // Opus rebuilds or conceals the frame; G.711 has nothing better than silence,
                // which the call's listener does not need to hear.
                let next = self.jitter.peek_next();
                codec.lost(next, &mut self.decoded);
                self.fresh_frame = matches!(codec, CallCodec::Opus(_));
                self.decoded_this_tick = self.fresh_frame;
                None
            }
            None => None,
        }
    }
}

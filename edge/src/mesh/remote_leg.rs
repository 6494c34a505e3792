//! The receiving side of a remote leg: frames that came over the mesh go into a jitter buffer
//! (the RTP one, keyed by the mesh header's sequence and timestamp) and come out one per 20 ms
//! tick as 8 kHz PCM, the form the call's mix works in. A frame that never came is concealed:
//! the last frame is repeated at half the level per consecutive loss, then silence, so a lost
//! datagram is a soft dip instead of a click. Sans-IO: the call's tick drives it with `now`.

use std::time::Instant;

use crate::media::g711;
use crate::rtp::jitter::{JitterBuffer, JitterConfig, JitterError, Playout, PushOutcome};

use super::codec::{AudioHeader, PayloadKind, MAX_AUDIO_PAYLOAD};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Consecutive losses concealed by repetition before the leg falls silent.
const MAX_REPEATS: u32 = 3;

/// What one tick of a remote leg played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemotePlayout {
    /// A frame that arrived.
    Frame,
    /// A lost frame, concealed.
    Concealed,
    /// Nothing to play yet (filling, or the peer sends nothing): silence.
    Silent,
}

/// Counters of one remote leg.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteLegStats {
    pub played: u64,
    pub concealed: u64,
    /// Frames whose payload kind the leg cannot decode (Opus over the mesh is not used yet).
    pub undecodable: u64,
}

/// One remote leg's playout.
pub struct RemoteLegAudio {
    jitter: JitterBuffer,
    last: [i16; FRAME_SAMPLES],
    repeats: u32,
    stats: RemoteLegStats,
}

impl RemoteLegAudio {
    /// A leg whose buffer holds between `config.min_delay` and `config.max_delay`.
    /// Its `max_payload` is raised to hold the largest mesh payload and its kind byte.
    pub fn new(config: JitterConfig) -> Result<Self, JitterError> {
        let config = JitterConfig {
            max_payload: config.max_payload.max(MAX_AUDIO_PAYLOAD + 1),
            ..config
        };
        Ok(Self {
            jitter: JitterBuffer::new(config)?,
            last: [0; FRAME_SAMPLES],
            repeats: 0,
            stats: RemoteLegStats::default(),
        })
    }

    /// Takes one frame as it arrived from the mesh.
    pub fn push(&mut self, now: Instant, header: &AudioHeader, payload: &[u8]) -> PushOutcome {
        // One leg is one stream: the key stands in for RTP's SSRC.
        self.jitter.push(
            now,
            header.sequence,
            header.timestamp,
            0,
            &tagged(header.kind, payload),
        )
    }

    /// Plays one tick into `out`.
    pub fn pop(&mut self, now: Instant, out: &mut [i16; FRAME_SAMPLES]) -> RemotePlayout {
        match self.jitter.pop(now) {
            Some(Playout::Frame { payload, .. }) => {
                if decode(payload, out) {
                    self.last = *out;
                    self.repeats = 0;
                    self.stats.played += 1;
                    RemotePlayout::Frame
                } else {
                    self.stats.undecodable += 1;
                    self.conceal(out)
                }
            }
            Some(Playout::Lost { .. }) => self.conceal(out),
            None => {
                out.fill(0);
                RemotePlayout::Silent
            }
        }
    }

    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> RemotePlayout {
        self.repeats += 1;
        self.stats.concealed += 1;
        if self.repeats > MAX_REPEATS {
            out.fill(0);
        } else {
            for (o, s) in out.iter_mut().zip(self.last.iter()) {
                *o = s >> self.repeats;
            }
        }
        RemotePlayout::Concealed
    }

    /// The leg's counters.
    pub fn stats(&self) -> RemoteLegStats {
        self.stats
    }
}

/// The jitter buffer stores payloads only; the kind travels as their first byte.
fn tagged(kind: PayloadKind, payload: &[u8]) -> tagged::Tagged<'_> {
    tagged::Tagged::new(kind, payload)
}

fn decode(stored: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> bool {
    let Some((&kind, payload)) = stored.split_first() else {
        return false;
    };
    out.fill(0);
    match kind {
        0 => {
            g711::decode_ulaw(payload, out);
            true
        }
        1 => {
            g711::decode_alaw(payload, out);
            true
        }
        3 => {
            for (o, pair) in out.iter_mut().zip(payload.chunks_exact(2)) {
                *o = i16::from_le_bytes([pair[0], pair[1]]);
            }
            true
        }
        _ => false,
    }
}

mod tagged {
    //! A payload with its kind byte in front, on the stack (no per-frame allocation).
    use super::super::codec::{PayloadKind, MAX_AUDIO_PAYLOAD};

    pub(super) struct Tagged<'a> {
        buf: [u8; MAX_AUDIO_PAYLOAD + 1],
        len: usize,
        _payload: std::marker::PhantomData<&'a [u8]>,
    }

    impl<'a> Tagged<'a> {
        pub(super) fn new(kind: PayloadKind, payload: &'a [u8]) -> Self {
            let mut buf = [0u8; MAX_AUDIO_PAYLOAD + 1];
            let len = payload.len().min(MAX_AUDIO_PAYLOAD);
            buf[0] = match kind {
                PayloadKind::Pcmu => 0,
                PayloadKind::Pcma => 1,
                PayloadKind::Opus => 2,
                PayloadKind::L16 => 3,
            };
            buf[1..=len].copy_from_slice(&payload[..len]);
            Self {
                buf,
                len: len + 1,
                _payload: std::marker::PhantomData,
            }
        }
    }

    impl std::ops::Deref for Tagged<'_> {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }
}

#[cfg(test)]
#[path = "remote_leg_tests.rs"]
mod tests;

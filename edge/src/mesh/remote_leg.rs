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
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mesh::codec::LegKey;

    fn header(sequence: u16) -> AudioHeader {
        AudioHeader {
            key: LegKey {
                call: uuid::Uuid::nil(),
                leg: 1,
            },
            kind: PayloadKind::L16,
            sequence,
            timestamp: u32::from(sequence) * 160,
        }
    }

    fn l16(level: i16) -> Vec<u8> {
        std::iter::repeat_n(level.to_le_bytes(), FRAME_SAMPLES)
            .flatten()
            .collect()
    }

    #[test]
    fn a_lost_frame_is_concealed_by_a_fading_repeat() {
        let mut leg = RemoteLegAudio::new(JitterConfig::default()).expect("leg");
        let start = Instant::now();
        let tick = Duration::from_millis(20);
        // Frames 0..10 but 4, each arriving on its tick, played as the tick runs.
        let mut out = [0i16; FRAME_SAMPLES];
        let mut played = Vec::new();
        for n in 0..14u32 {
            let now = start + tick * n;
            if n < 10 && n != 4 {
                leg.push(now, &header(n as u16), &l16(8_000 + n as i16));
            }
            let what = leg.pop(now, &mut out);
            if what != RemotePlayout::Silent {
                played.push((what, out[0]));
            }
        }
        assert_eq!(played[0], (RemotePlayout::Frame, 8_000), "{played:?}");
        assert_eq!(played[3], (RemotePlayout::Frame, 8_003));
        assert_eq!(played[4], (RemotePlayout::Concealed, 8_003 >> 1));
        assert_eq!(played[5], (RemotePlayout::Frame, 8_005));
        assert_eq!(leg.stats().concealed, 1);
        assert_eq!(leg.stats().played, 9);
    }

    #[test]
    fn g711_decodes_and_repeated_losses_fade_to_silence() {
        let mut leg = RemoteLegAudio::new(JitterConfig::default()).expect("leg");
        let start = Instant::now();
        let tick = Duration::from_millis(20);
        let mut ulaw = [0u8; FRAME_SAMPLES];
        g711::encode_ulaw(&[4_000; FRAME_SAMPLES], &mut ulaw);
        let mut h = header(0);
        h.kind = PayloadKind::Pcmu;
        let mut out = [0i16; FRAME_SAMPLES];
        let mut first = None;
        for n in 0..4u32 {
            h.sequence = n as u16;
            h.timestamp = n * 160;
            leg.push(start + tick * n, &h, &ulaw);
            if leg.pop(start + tick * n, &mut out) == RemotePlayout::Frame {
                first.get_or_insert(out[0]);
            }
        }
        let first = first.expect("a frame played");
        assert!((3_900..4_200).contains(&first), "{first}");
        let levels: Vec<i16> = (0..5)
            .map(|_| {
                leg.conceal(&mut out);
                out[0]
            })
            .collect();
        assert_eq!(levels, vec![first >> 1, first >> 2, first >> 3, 0, 0]);
    }
}

//! The codec of one call, between the 8 kHz, 20 ms frames the rest of the call speaks and the
//! payloads on the wire: G.711 directly, or Opus at 48 kHz (`opus/48000/2`, sent mono as RFC
//! 7587 allows) through a pair of streaming resamplers. Loss is the codec's business too: G.711
//! has nothing to offer, so a lost frame is silence; Opus rebuilds it from the in-band FEC of the
//! next packet when the jitter buffer already holds it, and conceals it (PLC) otherwise.
//!
//! Buffers are sized when the call starts; nothing is allocated per frame.

use super::media::FRAME_SAMPLES;
use crate::media::frame::{SampleRate, MAX_FRAME_SAMPLES};
use crate::media::g711::G711;
use crate::media::opus::{OpusDecoder, OpusEncoder, OpusError, OpusSettings, MAX_OPUS_PACKET};
use crate::media::resample::Resampler;
use crate::sip::sdp::Codec;

/// Largest payload one frame encodes to (an Opus packet; G.711 needs 160).
pub const MAX_PAYLOAD: usize = MAX_OPUS_PACKET;

/// Frames handled by each of the codec's loss tools, for the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossRepair {
    /// Lost frames rebuilt from the next packet's in-band FEC (Opus).
    pub recovered: u64,
    /// Lost frames synthesized by concealment (Opus PLC).
    pub concealed: u64,
    /// Lost frames played as silence (G.711).
    pub silenced: u64,
    /// Payloads the decoder refused (junk inside a valid RTP packet).
    pub refused: u64,
}

/// One call's encoder and decoder.
pub enum CallCodec {
    /// G.711 µ-law or A-law at 8 kHz.
    G711(G711, LossRepair),
    /// Opus at 48 kHz, resampled to and from 8 kHz.
    Opus(Box<OpusCodec>),
}

/// Opus with its resamplers and 48 kHz scratch frames.
pub struct OpusCodec {
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    up: Resampler,
    down: Resampler,
    wide: [i16; MAX_FRAME_SAMPLES],
    repair: LossRepair,
}

impl CallCodec {
    /// The codec for a negotiated `codec`.
    pub fn new(codec: Codec) -> Result<Self, OpusError> {
        Ok(match codec {
            Codec::Pcmu => CallCodec::G711(G711::Ulaw, LossRepair::default()),
            Codec::Pcma => CallCodec::G711(G711::Alaw, LossRepair::default()),
            Codec::Opus => CallCodec::Opus(Box::new(OpusCodec {
                encoder: OpusEncoder::new(SampleRate::Hz48000, OpusSettings::default())?,
                decoder: OpusDecoder::new(SampleRate::Hz48000)?,
                up: Resampler::new(SampleRate::Hz8000, SampleRate::Hz48000),
                down: Resampler::new(SampleRate::Hz48000, SampleRate::Hz8000),
                wide: [0; MAX_FRAME_SAMPLES],
                repair: LossRepair::default(),
            })),
        })
    }

    /// How lost frames were repaired so far.
    pub fn repair(&self) -> LossRepair {
        match self {
            CallCodec::G711(_, repair) => *repair,
            CallCodec::Opus(opus) => opus.repair,
        }
    }

    /// Encodes one 8 kHz frame into `out`; returns the payload length (0 if the encoder failed,
    /// which only a libopus fault can cause).
    pub fn encode(&mut self, pcm: &[i16; FRAME_SAMPLES], out: &mut [u8; MAX_PAYLOAD]) -> usize {
        match self {
            CallCodec::G711(law, _) => law.encode(pcm, out),
            CallCodec::Opus(opus) => {
                let Ok(n) = opus.up.process(pcm, &mut opus.wide) else {
                    return 0;
                };
                let Some(wide) = opus.wide.get(..n) else {
                    return 0;
                };
                match opus.encoder.encode(wide) {
                    Ok(packet) => {
                        let len = packet.len().min(MAX_PAYLOAD);
                        out[..len].copy_from_slice(&packet[..len]);
                        len
                    }
                    Err(_) => 0,
                }
            }
        }
    }

    /// Decodes one payload into an 8 kHz frame; false when the payload was refused (the frame
    /// is then concealed or silent).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16; FRAME_SAMPLES]) -> bool {
        match self {
            CallCodec::G711(law, _) => {
                let n = law.decode(payload, out);
                if let Some(rest) = out.get_mut(n..) {
                    rest.fill(0);
                }
                true
            }
            CallCodec::Opus(opus) => {
                let decoded = opus.decoder.decode(payload, &mut opus.wide);
                if decoded.is_err() {
                    opus.repair.refused += 1;
                    opus.lost(None, out);
                    return false;
                }
                opus.narrow(out);
                true
            }
        }
    }

    /// Fills `out` for a frame that never arrived; `next` is the payload after it, when the
    /// jitter buffer already holds it.
    pub fn lost(&mut self, next: Option<&[u8]>, out: &mut [i16; FRAME_SAMPLES]) {
        match self {
            CallCodec::G711(_, repair) => {
                repair.silenced += 1;
                out.fill(0);
            }
            CallCodec::Opus(opus) => opus.lost(next, out),
        }
    }
}

impl OpusCodec {
    fn lost(&mut self, next: Option<&[u8]>, out: &mut [i16; FRAME_SAMPLES]) {
        let rebuilt = match next {
            Some(next) => self.decoder.recover(next, &mut self.wide).is_ok(),
            None => false,
        };
        if rebuilt {
            self.repair.recovered += 1;
        } else {
            if self.decoder.conceal(&mut self.wide).is_err() {
                self.wide.fill(0);
            }
            self.repair.concealed += 1;
        }
        self.narrow(out);
    }

    /// Resamples the 48 kHz frame in `wide` down to `out`.
    fn narrow(&mut self, out: &mut [i16; FRAME_SAMPLES]) {
        if self.down.process(&self.wide, out).is_err() {
            out.fill(0);
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

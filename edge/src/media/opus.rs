//! Opus (RFC 6716, RTP payload format RFC 7587) for calls that negotiate `opus/48000/2`: an
//! encoder and a decoder of 20 ms mono frames at 8, 16, 24 or 48 kHz, over libopus through the
//! `opus` crate (libopus is compiled from source by `opusic-sys`, which needs cmake and a C
//! compiler, both installed by `deploy/packages.sh`).
//!
//! Opus is what makes a lossy mobile or Wi-Fi leg sound whole, so both loss tools are on: the
//! encoder sends in-band FEC (a low-bitrate copy of each frame inside the next packet, enabled by
//! [`OpusSettings::inband_fec`] and sized by the expected loss), and the decoder offers
//! [`OpusDecoder::conceal`] (packet-loss concealment, when nothing more is known) and
//! [`OpusDecoder::recover`] (rebuild a lost frame from the FEC data of the packet after it, when
//! the jitter buffer already holds that packet). The RTP clock of Opus is always 48 kHz whatever
//! rate the codec runs at; converting timestamps is the packetizer's business, not this file's.
//!
//! Sans-IO and allocation-free per frame: the encoder writes into a packet buffer it owns and
//! lends it out until the next call, the decoder writes into the caller's slice. Junk from the
//! network becomes a typed [`OpusError`], never a panic: libopus checks its input, and we check
//! lengths and durations before handing it anything.

use ::opus::{Application, Bitrate, Channels, ErrorCode, Signal};

use crate::media::frame::{PcmFrame, SampleRate};

/// Largest Opus packet for one 20 ms frame (RFC 6716 §3.2.1: 1275 bytes of frame plus the TOC).
pub const MAX_OPUS_PACKET: usize = 1276;

/// Why Opus could not encode or decode a frame; each variant names the part at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    /// libopus refused to build an encoder or decoder (e.g. out of memory).
    #[error("libopus could not create the {what}: {}", .code.description())]
    Create {
        /// `"encoder"` or `"decoder"`.
        what: &'static str,
        /// The libopus error.
        code: ErrorCode,
    },
    /// libopus refused one of the settings, named as in [`OpusSettings`].
    #[error("libopus refused the Opus setting `{setting}`: {}", .code.description())]
    Setting {
        /// The setting at fault.
        setting: &'static str,
        /// The libopus error.
        code: ErrorCode,
    },
    /// The PCM offered is not exactly one 20 ms frame at the codec's rate.
    #[error("Opus codec at {rate} Hz needs {expected} samples per 20 ms frame, got {actual}")]
    WrongFrameLength {
        /// The codec's sample rate.
        rate: u32,
        /// Samples in one frame at that rate.
        expected: usize,
        /// Samples offered (or room offered, when decoding).
        actual: usize,
    },
    /// A [`PcmFrame`] of another rate was handed to this codec.
    #[error("Opus codec runs at {expected} Hz, got a {actual} Hz frame")]
    RateMismatch {
        /// The codec's sample rate.
        expected: u32,
        /// The frame's sample rate.
        actual: u32,
    },
    /// An RTP packet with an empty payload (a loss is signalled by calling `conceal`, not by
    /// an empty payload).
    #[error("empty Opus payload")]
    EmptyPayload,
    /// The payload is not a valid Opus packet.
    #[error("invalid Opus packet: {}", .0.description())]
    InvalidPacket(ErrorCode),
    /// A valid packet that does not hold 20 ms of audio (ptime other than 20).
    #[error("Opus packet holds {samples} samples at {rate} Hz, not one 20 ms frame")]
    UnsupportedDuration {
        /// Samples per channel the packet decodes to.
        samples: usize,
        /// The decoder's sample rate.
        rate: u32,
    },
    /// libopus failed while encoding.
    #[error("Opus encoding failed: {}", .0.description())]
    Encode(ErrorCode),
}

/// Encoder settings, chosen once per call. The defaults suit a voice agent on a lossy leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// Target bitrate in bits per second (libopus accepts 500..=512 000).
    pub bitrate: u32,
    /// Send in-band forward error correction (LBRR) so the receiver can rebuild a lost frame.
    pub inband_fec: bool,
    /// Loss the encoder should expect, 0..=100 %: how much bitrate FEC gets. Zero disables FEC
    /// in practice even with `inband_fec` on, so keep it above zero and update it from RTCP.
    pub expected_loss_percent: u8,
    /// CPU/quality trade-off, 0..=10. Five keeps many calls per core at little cost in voice.
    pub complexity: u8,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings {
            bitrate: 24_000,
            inband_fec: true,
            expected_loss_percent: 10,
            complexity: 5,
        }
    }
}

fn setting(setting: &'static str) -> impl Fn(::opus::Error) -> OpusError {
    move |e| OpusError::Setting {
        setting,
        code: e.code(),
    }
}

/// Encodes one call's outgoing 20 ms mono frames into Opus packets.
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    rate: SampleRate,
    packet: [u8; MAX_OPUS_PACKET],
}

impl OpusEncoder {
    /// An encoder for mono speech at `rate`, tuned for VoIP, with `settings` applied.
    pub fn new(rate: SampleRate, settings: OpusSettings) -> Result<Self, OpusError> {
        let mut inner = ::opus::Encoder::new(rate.hz(), Channels::Mono, Application::Voip)
            .map_err(|e| OpusError::Create {
                what: "encoder",
                code: e.code(),
            })?;
        let bitrate = i32::try_from(settings.bitrate).unwrap_or(i32::MAX);
        inner
            .set_bitrate(Bitrate::Bits(bitrate))
            .map_err(setting("bitrate"))?;
        inner
            .set_complexity(i32::from(settings.complexity))
            .map_err(setting("complexity"))?;
        inner.set_signal(Signal::Voice).map_err(setting("signal"))?;
        inner
            .set_inband_fec(settings.inband_fec)
            .map_err(setting("inband_fec"))?;
        let mut encoder = OpusEncoder {
            inner,
            rate,
            packet: [0; MAX_OPUS_PACKET],
        };
        encoder.set_expected_loss(settings.expected_loss_percent)?;
        Ok(encoder)
    }

    /// The rate of the PCM this encoder takes.
    pub fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    /// Updates the loss the encoder plans FEC for, e.g. from the far end's RTCP receiver
    /// reports (fraction lost). Values above 100 are clamped.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), OpusError> {
        self.inner
            .set_packet_loss_perc(i32::from(percent.min(100)))
            .map_err(setting("expected_loss_percent"))
    }

    /// Encodes exactly one 20 ms frame of mono PCM at the encoder's rate; the packet is lent
    /// until the next call.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<&[u8], OpusError> {
        let expected = self.rate.samples_per_frame();
        if pcm.len() != expected {
            return Err(OpusError::WrongFrameLength {
                rate: self.rate.hz(),
                expected,
                actual: pcm.len(),
            });
        }
        let len = self
            .inner
            .encode(pcm, &mut self.packet)
            .map_err(|e| OpusError::Encode(e.code()))?;
        Ok(self.packet.get(..len).unwrap_or_default())
    }

    /// Encodes a [`PcmFrame`], which must be at the encoder's rate.
    pub fn encode_frame(&mut self, frame: &PcmFrame) -> Result<&[u8], OpusError> {
        if frame.sample_rate() != self.rate {
            return Err(OpusError::RateMismatch {
                expected: self.rate.hz(),
                actual: frame.sample_rate().hz(),
            });
        }
        self.encode(frame.samples())
    }
}

/// What a decoder has done since it was created, for the call's media statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpusDecoderStats {
    /// Packets decoded normally.
    pub decoded: u64,
    /// Frames synthesized by packet-loss concealment.
    pub concealed: u64,
    /// Lost frames rebuilt from the next packet's in-band FEC.
    pub recovered: u64,
    /// Payloads refused as invalid, empty or of another duration.
    pub refused: u64,
}

/// Decodes one call's incoming Opus packets into 20 ms mono frames, concealing or recovering
/// the ones the network lost.
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    rate: SampleRate,
    stats: OpusDecoderStats,
}

impl OpusDecoder {
    /// A decoder producing mono PCM at `rate` (stereo packets are downmixed by libopus).
    pub fn new(rate: SampleRate) -> Result<Self, OpusError> {
        let inner =
            ::opus::Decoder::new(rate.hz(), Channels::Mono).map_err(|e| OpusError::Create {
                what: "decoder",
                code: e.code(),
            })?;
        Ok(OpusDecoder {
            inner,
            rate,
            stats: OpusDecoderStats::default(),
        })
    }

    /// The rate of the PCM this decoder writes.
    pub fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    /// Counters since creation.
    pub fn stats(&self) -> OpusDecoderStats {
        self.stats
    }

    /// Decodes one packet holding one 20 ms frame into `out[..samples_per_frame]`; returns the
    /// samples written. A refused packet leaves the decoder state as it was, so the caller can
    /// [`conceal`](Self::conceal) that tick instead.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        let result = self.check_packet(payload).and_then(|()| {
            let out = self.frame_slice(out)?;
            self.inner
                .decode(payload, out, false)
                .map_err(|e| OpusError::InvalidPacket(e.code()))
        });
        match result {
            Ok(n) => {
                self.stats.decoded += 1;
                Ok(n)
            }
            Err(e) => {
                self.stats.refused += 1;
                Err(e)
            }
        }
    }

    /// Synthesizes one 20 ms frame for a packet that never arrived (libopus PLC), continuing
    /// the signal from the decoder's state and fading it out over consecutive losses.
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, OpusError> {
        let out = self.frame_slice(out)?;
        let n = self
            .inner
            .decode(&[], out, false)
            .map_err(|e| OpusError::InvalidPacket(e.code()))?;
        self.stats.concealed += 1;
        Ok(n)
    }

    /// Rebuilds the lost frame just before `next_payload` from the FEC data that packet
    /// carries (if it carries none, libopus falls back to concealment). Call it for the lost
    /// tick, then [`decode`](Self::decode) `next_payload` itself on the next tick as usual.
    pub fn recover(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        let result = self.check_packet(next_payload).and_then(|()| {
            let out = self.frame_slice(out)?;
            self.inner
                .decode(next_payload, out, true)
                .map_err(|e| OpusError::InvalidPacket(e.code()))
        });
        match result {
            Ok(n) => {
                self.stats.recovered += 1;
                Ok(n)
            }
            Err(e) => {
                self.stats.refused += 1;
                Err(e)
            }
        }
    }

    /// Decodes one packet into a [`PcmFrame`] at the decoder's rate.
    pub fn decode_frame(&mut self, payload: &[u8], out: &mut PcmFrame) -> Result<(), OpusError> {
        self.check_frame(out)?;
        self.decode(payload, out.samples_mut()).map(|_| ())
    }

    /// Conceals one lost frame into a [`PcmFrame`] at the decoder's rate.
    pub fn conceal_frame(&mut self, out: &mut PcmFrame) -> Result<(), OpusError> {
        self.check_frame(out)?;
        self.conceal(out.samples_mut()).map(|_| ())
    }

    fn check_frame(&self, frame: &PcmFrame) -> Result<(), OpusError> {
        if frame.sample_rate() == self.rate {
            Ok(())
        } else {
            Err(OpusError::RateMismatch {
                expected: self.rate.hz(),
                actual: frame.sample_rate().hz(),
            })
        }
    }

    /// Exactly one frame of `out`, or an error naming the room needed.
    fn frame_slice<'a>(&self, out: &'a mut [i16]) -> Result<&'a mut [i16], OpusError> {
        let expected = self.rate.samples_per_frame();
        let actual = out.len();
        out.get_mut(..expected).ok_or(OpusError::WrongFrameLength {
            rate: self.rate.hz(),
            expected,
            actual,
        })
    }

    /// Refuses, before libopus sees it, a payload that is empty, malformed in its framing, or
    /// not exactly 20 ms long.
    fn check_packet(&self, payload: &[u8]) -> Result<(), OpusError> {
        if payload.is_empty() {
            return Err(OpusError::EmptyPayload);
        }
        let samples = ::opus::packet::get_nb_samples(payload, self.rate.hz())
            .map_err(|e| OpusError::InvalidPacket(e.code()))?;
        if samples != self.rate.samples_per_frame() {
            return Err(OpusError::UnsupportedDuration {
                samples,
                rate: self.rate.hz(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "opus_tests.rs"]
mod tests;

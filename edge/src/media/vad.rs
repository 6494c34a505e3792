//! Voice activity detection: is this 20 ms of the caller's audio speech or not? It is the first
//! judgement the turn detector builds on, so it wraps the WebRTC VAD (a GMM over sub-band
//! energies, via the `webrtc-vad` crate) rather than an energy threshold that line noise fools.
//! The WebRTC VAD only understands 8/16/32/48 kHz frames of 10, 20 or 30 ms; we feed it the call's
//! [`PcmFrame`]s at 8 or 16 kHz directly and bring 24/48 kHz frames down to 16 kHz first with the
//! shared [`Resampler`], so every decision is made on telephone-band speech. Sans-IO and
//! allocation-free per frame: one value per call, fed frames by the call task.

use crate::media::frame::{PcmFrame, SampleRate};
use crate::media::resample::{ResampleError, Resampler};

/// How eagerly the VAD calls a frame silence; higher rejects more noise and more quiet speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum VadAggressiveness {
    /// Mode 0: keeps the most speech; best on clean lines.
    #[cfg(test)]
    Quality,
    /// Mode 2: the usual choice for telephone audio.
    #[default]
    Aggressive,
}

impl VadAggressiveness {
    fn mode(self) -> webrtc_vad::VadMode {
        match self {
            #[cfg(test)]
            Self::Quality => webrtc_vad::VadMode::Quality,
            Self::Aggressive => webrtc_vad::VadMode::Aggressive,
        }
    }
}

/// Why a frame could not be classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VadError {
    /// Raw blocks must be 10, 20 or 30 ms at 8 or 16 kHz.
    #[error("VAD needs 10, 20 or 30 ms at 8 or 16 kHz; got {samples} samples at {hz} Hz")]
    UnsupportedBlock {
        /// Sample rate of the block.
        hz: u32,
        /// Samples offered.
        samples: usize,
    },
    /// Bringing a wideband frame down to 16 kHz failed.
    #[error("resampling for the VAD failed: {0}")]
    Resample(#[from] ResampleError),
}

/// Owns the C VAD state so it can move between the runtime's threads with its call task.
struct FvadHandle(webrtc_vad::Vad);

// SAFETY: `webrtc_vad::Vad` holds a pointer to a heap-allocated `Fvad` struct that is only ever
// reached through `&mut self` (no shared or thread-local state in libfvad), so handing the whole
// value to another thread is sound. It is deliberately not `Sync`.
unsafe impl Send for FvadHandle {}

/// Per-call voice activity detector over [`PcmFrame`]s of any supported rate.
pub(crate) struct VoiceActivityDetector {
    vad: FvadHandle,
    aggressiveness: VadAggressiveness,
    /// Rate the C state is currently configured for (8 or 16 kHz).
    vad_rate: SampleRate,
    /// Down-converter for 24/48 kHz frames, built when the first such frame arrives.
    downsampler: Option<Resampler>,
}

impl VoiceActivityDetector {
    /// A detector with the given aggressiveness; the rate follows the frames it is fed.
    pub(crate) fn new(aggressiveness: VadAggressiveness) -> Self {
        let vad = webrtc_vad::Vad::new_with_rate_and_mode(
            webrtc_vad::SampleRate::Rate8kHz,
            aggressiveness.mode(),
        );
        VoiceActivityDetector {
            vad: FvadHandle(vad),
            aggressiveness,
            vad_rate: SampleRate::Hz8000,
            downsampler: None,
        }
    }

    /// Classifies one 20 ms frame: `true` when it holds speech.
    pub(crate) fn is_speech(&mut self, frame: &PcmFrame) -> Result<bool, VadError> {
        match frame.sample_rate() {
            SampleRate::Hz8000 | SampleRate::Hz16000 => {
                self.classify(frame.sample_rate(), frame.samples())
            }
            wide => {
                let resampler = match &mut self.downsampler {
                    Some(r) if r.input_rate() == wide => r,
                    slot => slot.insert(Resampler::new(wide, SampleRate::Hz16000)),
                };
                let narrow = resampler.process_frame(frame)?;
                self.classify(SampleRate::Hz16000, narrow.samples())
            }
        }
    }

    /// Classifies a raw block of 10, 20 or 30 ms at 8 or 16 kHz (e.g. 10 ms telephony packets).
    #[cfg(test)]
    pub(crate) fn is_speech_block(
        &mut self,
        rate: SampleRate,
        samples: &[i16],
    ) -> Result<bool, VadError> {
        self.classify(rate, samples)
    }

    fn classify(&mut self, rate: SampleRate, samples: &[i16]) -> Result<bool, VadError> {
        let per_10ms = (rate.hz() / 100) as usize;
        let supported_rate = matches!(rate, SampleRate::Hz8000 | SampleRate::Hz16000);
        let supported_len = !samples.is_empty()
            && samples.len().is_multiple_of(per_10ms)
            && samples.len() / per_10ms <= 3;
        if !supported_rate || !supported_len {
            return Err(VadError::UnsupportedBlock {
                hz: rate.hz(),
                samples: samples.len(),
            });
        }
        if rate != self.vad_rate {
            self.vad.0.set_sample_rate(fvad_rate(rate));
            self.vad_rate = rate;
        }
        // The length was checked above, so the C side cannot reject it; treat a refusal as
        // the same shape error rather than trusting it blindly.
        self.vad
            .0
            .is_voice_segment(samples)
            .map_err(|()| VadError::UnsupportedBlock {
                hz: rate.hz(),
                samples: samples.len(),
            })
    }
}

fn fvad_rate(rate: SampleRate) -> webrtc_vad::SampleRate {
    match rate {
        SampleRate::Hz16000 => webrtc_vad::SampleRate::Rate16kHz,
        _ => webrtc_vad::SampleRate::Rate8kHz,
    }
}

impl std::fmt::Debug for VoiceActivityDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceActivityDetector")
            .field("aggressiveness", &self.aggressiveness)
            .field("vad_rate", &self.vad_rate)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vowel-like buzz: a 140 Hz fundamental with formant-ish harmonics, amplitude-modulated.
    fn voiced(rate: SampleRate, frame: usize) -> PcmFrame {
        let n = rate.samples_per_frame();
        let mut f = PcmFrame::silence(rate);
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (frame * n + i) as f64 / f64::from(rate.hz());
            let mut v = 0.0;
            for (h, a) in [(1.0, 1.0), (2.0, 0.8), (5.0, 0.6), (8.0, 0.4), (17.0, 0.3)] {
                v += a * (2.0 * std::f64::consts::PI * 140.0 * h * t).sin();
            }
            *s = (3000.0 * v) as i16;
        }
        f
    }

    #[test]
    fn zeros_are_silence_at_every_rate() {
        let mut vad = VoiceActivityDetector::new(VadAggressiveness::Aggressive);
        for rate in [
            SampleRate::Hz8000,
            SampleRate::Hz16000,
            SampleRate::Hz24000,
            SampleRate::Hz48000,
        ] {
            for _ in 0..10 {
                assert!(!vad.is_speech(&PcmFrame::silence(rate)).unwrap());
            }
        }
    }

    #[test]
    fn a_harmonic_buzz_is_speech_after_a_few_frames() {
        for rate in [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz24000] {
            let mut vad = VoiceActivityDetector::new(VadAggressiveness::Quality);
            let voiced_frames = (0..25)
                .filter(|&i| vad.is_speech(&voiced(rate, i)).unwrap())
                .count();
            assert!(voiced_frames >= 20, "{rate:?}: {voiced_frames}/25");
        }
    }

    #[test]
    fn ten_ms_blocks_are_accepted_and_odd_blocks_rejected() {
        let mut vad = VoiceActivityDetector::new(VadAggressiveness::default());
        assert_eq!(vad.is_speech_block(SampleRate::Hz8000, &[0; 80]), Ok(false));
        assert_eq!(
            vad.is_speech_block(SampleRate::Hz8000, &[0; 100]),
            Err(VadError::UnsupportedBlock {
                hz: 8000,
                samples: 100
            })
        );
        assert!(vad.is_speech_block(SampleRate::Hz24000, &[0; 240]).is_err());
    }
}

//! The 20 ms PCM frame: the unit of audio every stage of a call exchanges (decoder → VAD →
//! turn detector → speech-to-text, and text-to-speech → encoder → pacer). It is a fixed-size value
//! with its samples inline, so passing frames between stages never touches the allocator, and its
//! length always matches its sample rate, so no stage has to check a frame's shape again.

use std::fmt;
use std::time::Duration;

/// How much audio one frame holds; the pacing clock and the jitter buffer tick at this period.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Samples in the largest frame (20 ms at 48 kHz), so frames can store samples inline.
pub const MAX_FRAME_SAMPLES: usize = 960;

/// Why a frame could not be built: callers learn which rate or length was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Only the telephone and speech-engine rates are supported.
    #[error("unsupported sample rate {0} Hz (expected 8000, 16000, 24000 or 48000)")]
    UnsupportedSampleRate(u32),
    /// A frame must hold exactly 20 ms of audio.
    #[error("a 20 ms frame needs {expected} samples, got {actual}")]
    WrongLength {
        /// Samples a 20 ms frame holds at this rate.
        expected: usize,
        /// Samples offered.
        actual: usize,
    },
}

/// The sample rates a call's audio moves between: 8 kHz on the phone line, 16/24/48 kHz for
/// speech engines. An enum, so an unsupported rate is rejected once at the edge of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleRate {
    /// Narrowband telephony (G.711).
    Hz8000,
    /// Wideband: most speech-to-text engines.
    Hz16000,
    /// Common text-to-speech output rate.
    Hz24000,
    /// Opus and full-band engines.
    Hz48000,
}

impl SampleRate {
    /// Samples per second, for clock and timestamp arithmetic.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8_000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz24000 => 24_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// Samples in one 20 ms frame at this rate.
    pub const fn samples_per_frame(self) -> usize {
        (self.hz() / 50) as usize
    }

    /// Accepts a rate from configuration or SDP, rejecting the ones we do not carry.
    pub const fn from_hz(hz: u32) -> Result<Self, FrameError> {
        match hz {
            8_000 => Ok(SampleRate::Hz8000),
            16_000 => Ok(SampleRate::Hz16000),
            24_000 => Ok(SampleRate::Hz24000),
            48_000 => Ok(SampleRate::Hz48000),
            other => Err(FrameError::UnsupportedSampleRate(other)),
        }
    }
}

/// 20 ms of mono signed 16-bit PCM at one sample rate, stored inline (no heap).
#[derive(Clone, PartialEq, Eq)]
pub struct PcmFrame {
    rate: SampleRate,
    samples: [i16; MAX_FRAME_SAMPLES],
}

impl PcmFrame {
    /// A silent frame: what a stage emits when it has nothing to say (underrun, muted playback).
    pub const fn silence(rate: SampleRate) -> Self {
        PcmFrame {
            rate,
            samples: [0; MAX_FRAME_SAMPLES],
        }
    }

    /// Copies exactly one frame's worth of samples; any other length is an error, not a pad.
    pub fn from_samples(rate: SampleRate, samples: &[i16]) -> Result<Self, FrameError> {
        let mut frame = PcmFrame::silence(rate);
        let dst = frame.samples_mut();
        if dst.len() != samples.len() {
            return Err(FrameError::WrongLength {
                expected: dst.len(),
                actual: samples.len(),
            });
        }
        dst.copy_from_slice(samples);
        Ok(frame)
    }

    /// The frame's sample rate.
    pub const fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    /// The samples, exactly `sample_rate().samples_per_frame()` of them.
    pub fn samples(&self) -> &[i16] {
        let n = self.rate.samples_per_frame();
        self.samples.get(..n).unwrap_or(&[])
    }

    /// Mutable samples, for decoders and resamplers that write a frame in place.
    pub fn samples_mut(&mut self) -> &mut [i16] {
        let n = self.rate.samples_per_frame();
        self.samples.get_mut(..n).unwrap_or(&mut [])
    }

    /// Audio duration of the frame (always [`FRAME_DURATION`]).
    pub const fn duration(&self) -> Duration {
        FRAME_DURATION
    }
}

impl fmt::Debug for PcmFrame {
    // Printing 960 samples helps nobody reading a call's log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcmFrame")
            .field("rate", &self.rate)
            .field("samples", &self.samples().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_length_follows_the_sample_rate() {
        for (hz, n) in [(8_000, 160), (16_000, 320), (24_000, 480), (48_000, 960)] {
            let rate = SampleRate::from_hz(hz).unwrap();
            assert_eq!(PcmFrame::silence(rate).samples().len(), n);
            assert_eq!(rate.hz(), hz);
        }
    }

    #[test]
    fn unsupported_rate_is_rejected() {
        assert_eq!(
            SampleRate::from_hz(44_100),
            Err(FrameError::UnsupportedSampleRate(44_100))
        );
    }

    #[test]
    fn from_samples_rejects_a_partial_frame() {
        let err = PcmFrame::from_samples(SampleRate::Hz8000, &[0; 100]).unwrap_err();
        assert_eq!(
            err,
            FrameError::WrongLength {
                expected: 160,
                actual: 100
            }
        );
        let ok = PcmFrame::from_samples(SampleRate::Hz8000, &[7; 160]).unwrap();
        assert!(ok.samples().iter().all(|&s| s == 7));
    }
}

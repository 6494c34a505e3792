//! What the simulated caller says: 8 kHz mono PCM utterances, loaded from WAV files (any rate,
//! any channel count, 16-bit) or spoken by `espeak-ng`, with the silence around the speech cut
//! off so that "end of the caller's turn" is the end of the speech itself.
//!
//! Loading happens once, before the run; calls share the samples through an `Arc`, so a
//! thousand calls saying the same sentence hold one copy. Rates the edge's [`Resampler`]
//! carries (16, 24, 48 kHz) go through it; others (espeak-ng speaks at 22.05 kHz) through a
//! windowed-sinc converter here, which is slow per sample but runs only at load time.

use std::path::Path;
use std::sync::Arc;

use freya_edge::media::frame::SampleRate;
use freya_edge::media::resample::Resampler;

use crate::onset::frame_dbfs;

/// The telephone rate every utterance is stored at.
pub const RATE: u32 = 8000;
/// Samples in a 20 ms frame at [`RATE`].
pub const FRAME_SAMPLES: usize = 160;
/// Frames quieter than this at either end of an utterance are trimmed.
const TRIM_DBFS: f64 = -45.0;

/// Why an utterance could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a WAV file we understand.
    #[error("{what}: not a 16-bit PCM WAV file: {reason}")]
    BadWav {
        /// The file or source.
        what: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// espeak-ng could not be run or failed.
    #[error("espeak-ng failed for {text:?}: {reason}")]
    Espeak {
        /// The text it was asked to speak.
        text: String,
        /// Why it failed.
        reason: String,
    },
    /// A turn specification is neither `say:TEXT` nor `wav:PATH`.
    #[error("turn {0:?} must be `say:TEXT`, `wav:PATH` or `tone:MILLISECONDS`, or parts joined by `,gap:MILLISECONDS,` (e.g. `tone:800,gap:700,tone:800`)")]
    BadTurnSpec(String),
}

/// One caller turn: 8 kHz mono samples, speech only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// Where it came from, for reports.
    pub label: String,
    /// The samples at [`RATE`].
    pub samples: Arc<[i16]>,
}

impl Utterance {
    /// Loads a turn from `say:TEXT` (espeak-ng), `wav:PATH`, or `tone:MS` (a synthetic
    /// voice-like tone, for tests and machines without espeak-ng); parts joined with
    /// `,gap:MS,` make one turn with pauses inside it (`tone:800,gap:700,tone:800`: a caller
    /// who stops mid-sentence, longer than the agent's end-of-turn silence, and goes on).
    pub fn from_spec(spec: &str) -> Result<Self, AudioError> {
        if spec.contains(",gap:") {
            let mut samples: Vec<i16> = Vec::new();
            for part in spec.split(',') {
                match part.strip_prefix("gap:") {
                    Some(ms) => {
                        let ms: u64 = ms
                            .parse()
                            .map_err(|_| AudioError::BadTurnSpec(spec.to_owned()))?;
                        samples.extend(std::iter::repeat_n(
                            0,
                            (ms * u64::from(RATE) / 1000) as usize,
                        ));
                    }
                    None => samples.extend(Self::from_spec(part)?.samples.iter()),
                }
            }
            return Ok(Self {
                label: spec.to_owned(),
                samples: samples.into(),
            });
        }
        if let Some(text) = spec.strip_prefix("say:") {
            Self::speak(text)
        } else if let Some(path) = spec.strip_prefix("wav:") {
            Self::from_wav_file(Path::new(path))
        } else if let Some(ms) = spec.strip_prefix("tone:") {
            let ms = ms
                .parse()
                .map_err(|_| AudioError::BadTurnSpec(spec.to_owned()))?;
            Ok(Self::tone(ms))
        } else {
            Err(AudioError::BadTurnSpec(spec.to_owned()))
        }
    }

    /// Duration of the speech.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.samples.len() as u64 * 1_000_000 / u64::from(RATE))
    }

    /// A vowel-like tone (fundamental and two harmonics, at speech level) of `ms` milliseconds.
    pub fn tone(ms: u32) -> Self {
        let n = (u64::from(ms) * u64::from(RATE) / 1000) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                let w = 2.0 * std::f64::consts::PI * 180.0 * t;
                (6000.0 * w.sin() + 3000.0 * (2.0 * w).sin() + 1500.0 * (3.0 * w).sin()) as i16
            })
            .collect();
        Self {
            label: format!("tone:{ms}"),
            samples: samples.into(),
        }
    }

    /// Reads a 16-bit PCM WAV file and converts it to 8 kHz mono speech.
    pub fn from_wav_file(path: &Path) -> Result<Self, AudioError> {
        let bytes = std::fs::read(path).map_err(|source| AudioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_wav_bytes(&path.display().to_string(), &bytes)
    }

    /// Speaks `text` with `espeak-ng --stdout`.
    pub fn speak(text: &str) -> Result<Self, AudioError> {
        let failed = |reason: String| AudioError::Espeak {
            text: text.to_owned(),
            reason,
        };
        let output = std::process::Command::new("espeak-ng")
            .arg("--stdout")
            .arg(text)
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
        }
        let mut utterance = Self::from_wav_bytes(&format!("say:{text}"), &output.stdout)?;
        utterance.label = format!("say:{text}");
        Ok(utterance)
    }

    /// Decodes WAV bytes (`what` names them in errors).
    pub fn from_wav_bytes(what: &str, bytes: &[u8]) -> Result<Self, AudioError> {
        let wav = parse_wav(bytes).map_err(|reason| AudioError::BadWav {
            what: what.to_owned(),
            reason,
        })?;
        let at_8k = to_8k(&wav.mono, wav.rate);
        Ok(Self {
            label: what.to_owned(),
            samples: trim_silence(&at_8k).into(),
        })
    }
}

struct Wav {
    rate: u32,
    mono: Vec<i16>,
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn parse_wav(b: &[u8]) -> Result<Wav, &'static str> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err("no RIFF/WAVE header");
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while let (Some(id), Some(len)) = (b.get(at..at + 4), le_u32(b, at + 4)) {
        let body = at + 8;
        // Streamed WAVs (espeak-ng --stdout) declare a huge data length: clamp to what is there.
        let end = body.saturating_add(len as usize).min(b.len());
        match id {
            b"fmt " => {
                let tag = le_u16(b, body).ok_or("short fmt chunk")?;
                let channels = le_u16(b, body + 2).ok_or("short fmt chunk")?;
                let rate = le_u32(b, body + 4).ok_or("short fmt chunk")?;
                let bits = le_u16(b, body + 14).ok_or("short fmt chunk")?;
                format = Some((tag, channels, rate, bits));
            }
            b"data" => {
                let (tag, channels, rate, bits) = format.ok_or("data before fmt")?;
                // 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which carries plain PCM too.
                if !(tag == 1 || tag == 0xFFFE) || bits != 16 {
                    return Err("only 16-bit PCM is supported");
                }
                if channels == 0 || rate == 0 {
                    return Err("zero channels or sample rate");
                }
                let data = b.get(body..end).unwrap_or_default();
                let frame = usize::from(channels) * 2;
                let mono = data
                    .chunks_exact(frame)
                    .map(|f| {
                        let sum: i32 = f
                            .chunks_exact(2)
                            .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                            .sum();
                        (sum / i32::from(channels)) as i16
                    })
                    .collect();
                return Ok(Wav { rate, mono });
            }
            _ => {}
        }
        at = end + (end - body) % 2;
        if end >= b.len() {
            break;
        }
    }
    Err("no data chunk")
}

/// Writes 8 kHz mono 16-bit PCM as a WAV file (for sipp scenarios and debugging).
pub fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn to_8k(input: &[i16], rate: u32) -> Vec<i16> {
    if rate == RATE {
        return input.to_vec();
    }
    match SampleRate::from_hz(rate) {
        Ok(from) => {
            let mut resampler = Resampler::new(from, SampleRate::Hz8000);
            let mut out = vec![0i16; resampler.output_len(input.len()) + FRAME_SAMPLES];
            match resampler.process(input, &mut out) {
                Ok(n) => {
                    out.truncate(n);
                    out
                }
                Err(_) => sinc_resample(input, rate, RATE),
            }
        }
        Err(_) => sinc_resample(input, rate, RATE),
    }
}

/// Band-limited resampling by direct windowed-sinc evaluation (Hann window, 16 zero crossings).
fn sinc_resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    let ratio = f64::from(to) / f64::from(from);
    let cutoff = 0.45 * ratio.min(1.0) * 2.0; // relative to the input Nyquist
    let half = (16.0 / cutoff).ceil() as i64;
    let out_len = (input.len() as f64 * ratio) as usize;
    (0..out_len)
        .map(|n| {
            let center = n as f64 / ratio;
            let c = center.floor() as i64;
            let mut acc = 0.0;
            for k in (c - half)..=(c + half) {
                let Some(&x) = usize::try_from(k).ok().and_then(|k| input.get(k)) else {
                    continue;
                };
                let t = center - k as f64;
                let arg = std::f64::consts::PI * cutoff * t;
                let sinc = if t.abs() < 1e-9 { 1.0 } else { arg.sin() / arg };
                let w = 0.5 + 0.5 * (std::f64::consts::PI * t / (half as f64 + 1.0)).cos();
                acc += f64::from(x) * cutoff * sinc * w;
            }
            acc.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

/// Cuts quiet 20 ms frames off both ends.
pub fn trim_silence(samples: &[i16]) -> Vec<i16> {
    let loud = |f: &[i16]| frame_dbfs(f) > TRIM_DBFS;
    let frames: Vec<&[i16]> = samples.chunks(FRAME_SAMPLES).collect();
    let first = frames.iter().position(|f| loud(f));
    let last = frames.iter().rposition(|f| loud(f));
    match (first, last) {
        (Some(a), Some(b)) => frames[a..=b].concat(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_may_pause_inside_itself() {
        let turn = Utterance::from_spec("tone:800,gap:700,tone:800").expect("spec");
        assert_eq!(turn.duration(), std::time::Duration::from_millis(2300));
        let rate = RATE as usize;
        let gap = &turn.samples[rate * 800 / 1000..rate * 1500 / 1000];
        assert!(
            gap.iter().all(|s| *s == 0),
            "700 ms of silence in the middle"
        );
        assert!(turn.samples[..rate * 800 / 1000].iter().any(|s| *s != 0));
        assert!(turn.samples[rate * 1500 / 1000..].iter().any(|s| *s != 0));
        assert!(Utterance::from_spec("tone:800,gap:x,tone:800").is_err());
        assert!(Utterance::from_spec("tone:800,gap:700,nope").is_err());
    }

    #[test]
    fn wav_round_trip_at_8k_trims_silence() {
        let mut samples = vec![0i16; 800];
        samples.extend(Utterance::tone(500).samples.iter());
        samples.extend(vec![0i16; 1600]);
        let u = Utterance::from_wav_bytes("t", &wav_bytes(&samples, 8000)).unwrap();
        assert_eq!(u.samples.len(), 4000);
    }

    #[test]
    fn other_rates_are_resampled_to_8k() {
        for rate in [16000u32, 22050, 44100] {
            let n = rate as usize; // one second
            let tone: Vec<i16> = (0..n)
                .map(|i| {
                    (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 300.0 / rate as f64).sin())
                        as i16
                })
                .collect();
            let u = Utterance::from_wav_bytes("t", &wav_bytes(&tone, rate)).unwrap();
            let len = u.samples.len() as i64;
            assert!((len - 8000).abs() <= 200, "{rate}: {len}");
            let mid = &u.samples[2000..2160];
            assert!(
                (frame_dbfs(mid) - frame_dbfs(&tone[rate as usize / 4..][..160])).abs() < 1.5,
                "{rate}"
            );
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            Utterance::from_wav_bytes("x", b"RIFFxxxxWAVE"),
            Err(AudioError::BadWav { .. })
        ));
        assert!(matches!(
            Utterance::from_spec("mp3:x"),
            Err(AudioError::BadTurnSpec(_))
        ));
    }
}

//! A level check on the VAD's "speech" decisions, so a turn ends when the caller stops talking
//! and not when the VAD lets go. The WebRTC VAD holds its decision for a hangover of up to five
//! 20 ms frames after sustained speech (by design: it protects codecs from clipped word endings),
//! and every one of those frames would be added to the end-of-turn silence — 100 ms of latency
//! on every reply. The gate overrules a "speech" decision for a frame whose level is far below
//! the talker's own recent speech (more than [`LevelGateConfig::below_peak_db`] under it) or
//! below an absolute floor: what the hangover covers is line noise or digital silence, which is
//! tens of dB under speech, while the quiet tail of a word stays within that range.
//!
//! The other end of a talk spurt has the opposite bias: the VAD needs a frame or two of speech
//! before it says so. The gate reports how many frames just before a VAD onset were already
//! at the onset's level (its *lead*), so speech-start and barge-in thresholds count from when the
//! caller became audible. Sans-IO and allocation-free: one value per call, one frame at a time.

/// Thresholds of the gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LevelGateConfig {
    /// A voiced frame more than this many dB under the recent speech peak is not speech.
    pub below_peak_db: f32,
    /// A frame under this level (dBFS) is never speech.
    pub floor_dbfs: f32,
    /// How fast the remembered peak falls, in dB per frame, so a caller who talks more quietly
    /// later is still heard.
    pub peak_decay_db: f32,
    /// A frame before a VAD onset counts as its lead when at most this many dB under it.
    pub lead_within_db: f32,
}

impl Default for LevelGateConfig {
    fn default() -> Self {
        Self {
            below_peak_db: 35.0,
            floor_dbfs: -65.0,
            peak_decay_db: 0.05,
            lead_within_db: 10.0,
        }
    }
}

/// Level of digital silence, in dBFS.
const SILENCE_DBFS: f32 = -120.0;
/// Most frames an onset is moved back by.
pub(crate) const MAX_LEAD_FRAMES: usize = 3;

/// The gate's judgement of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// Whether the frame is speech for turn-taking.
    pub speech: bool,
    /// For the first speech frame of a run: how many frames before it were already speech at
    /// its level though the VAD had not said so yet; 0 otherwise.
    pub lead_frames: u32,
}

/// Tracks the talker's speech level and judges the VAD's decisions against it.
#[derive(Debug, Clone)]
pub(crate) struct LevelGate {
    config: LevelGateConfig,
    peak_dbfs: f32,
    /// Levels of the latest frames judged not speech, newest first (cleared by speech).
    quiet_levels: [f32; MAX_LEAD_FRAMES],
    in_speech: bool,
}

impl LevelGate {
    /// A gate that has heard no speech yet.
    pub(crate) fn new(config: LevelGateConfig) -> Self {
        Self {
            config,
            peak_dbfs: SILENCE_DBFS,
            quiet_levels: [SILENCE_DBFS; MAX_LEAD_FRAMES],
            in_speech: false,
        }
    }

    /// Whether a frame the VAD judged (`vad_speech`) counts as speech for turn-taking.
    #[cfg(test)]
    pub(crate) fn is_speech(&mut self, vad_speech: bool, samples: &[i16]) -> bool {
        self.judge(vad_speech, samples).speech
    }

    /// Judges a frame the VAD judged (`vad_speech`): speech or not, and the onset's lead.
    pub(crate) fn judge(&mut self, vad_speech: bool, samples: &[i16]) -> Judgement {
        self.peak_dbfs = (self.peak_dbfs - self.config.peak_decay_db).max(SILENCE_DBFS);
        let level = level_dbfs(samples);
        let speech = vad_speech
            && level >= self.config.floor_dbfs
            && level >= self.peak_dbfs - self.config.below_peak_db;
        if !speech {
            self.in_speech = false;
            self.quiet_levels.rotate_right(1);
            self.quiet_levels[0] = level;
            return Judgement {
                speech: false,
                lead_frames: 0,
            };
        }
        self.peak_dbfs = self.peak_dbfs.max(level);
        let lead_frames = if self.in_speech {
            0
        } else {
            let audible = |l: &&f32| {
                **l >= self.config.floor_dbfs && **l >= level - self.config.lead_within_db
            };
            self.quiet_levels.iter().take_while(audible).count() as u32
        };
        self.in_speech = true;
        self.quiet_levels = [SILENCE_DBFS; MAX_LEAD_FRAMES];
        Judgement {
            speech: true,
            lead_frames,
        }
    }
}

/// Mean power of a frame relative to full scale, in dB; [`SILENCE_DBFS`] for all zeros.
pub(crate) fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let sum: i64 = samples.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    let mean = sum as f64 / samples.len() as f64;
    if mean <= 0.0 {
        return SILENCE_DBFS;
    }
    let full = f64::from(i16::MAX) * f64::from(i16::MAX);
    ((10.0 * (mean / full).log10()) as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f64) -> [i16; 160] {
        let mut f = [0i16; 160];
        for (i, s) in f.iter_mut().enumerate() {
            *s =
                (amplitude * (2.0 * std::f64::consts::PI * 200.0 * i as f64 / 8000.0).sin()) as i16;
        }
        f
    }

    #[test]
    fn levels_are_relative_to_full_scale() {
        assert_eq!(level_dbfs(&[0; 160]), SILENCE_DBFS);
        let full = level_dbfs(&tone(32767.0));
        assert!(
            (full + 3.0).abs() < 0.2,
            "a full-scale sine is -3 dBFS, got {full}"
        );
        let tenth = level_dbfs(&tone(3276.7));
        assert!((tenth + 23.0).abs() < 0.2, "{tenth}");
    }

    #[test]
    fn the_vads_hangover_over_silence_or_noise_is_not_speech() {
        let mut gate = LevelGate::new(LevelGateConfig::default());
        for _ in 0..20 {
            assert!(gate.is_speech(true, &tone(8000.0)));
        }
        // The VAD still says speech: digital silence, then line noise 50 dB under the speech.
        assert!(!gate.is_speech(true, &[0; 160]));
        assert!(!gate.is_speech(true, &tone(25.0)));
    }

    #[test]
    fn a_quiet_word_ending_is_still_speech() {
        let mut gate = LevelGate::new(LevelGateConfig::default());
        for _ in 0..20 {
            gate.is_speech(true, &tone(8000.0));
        }
        // 26 dB under the peak: a fading syllable.
        assert!(gate.is_speech(true, &tone(400.0)));
        assert!(
            !gate.is_speech(false, &tone(8000.0)),
            "the VAD's silence stands"
        );
    }

    #[test]
    fn the_peak_decays_so_a_quieter_talker_is_heard_later() {
        let mut gate = LevelGate::new(LevelGateConfig::default());
        for _ in 0..20 {
            gate.is_speech(true, &tone(30000.0));
        }
        assert!(
            !gate.is_speech(true, &tone(300.0)),
            "40 dB under a fresh peak"
        );
        for _ in 0..500 {
            gate.is_speech(false, &[0; 160]);
        }
        assert!(gate.is_speech(true, &tone(300.0)), "ten seconds later");
    }

    #[test]
    fn an_onset_the_vad_was_slow_to_call_carries_the_frames_already_at_its_level() {
        let mut gate = LevelGate::new(LevelGateConfig::default());
        for _ in 0..10 {
            gate.judge(false, &[0; 160]);
        }
        // The caller starts: the VAD hesitates for two loud frames, then says speech.
        assert_eq!(gate.judge(false, &tone(6000.0)).lead_frames, 0);
        assert_eq!(gate.judge(false, &tone(7000.0)).lead_frames, 0);
        let onset = gate.judge(true, &tone(7000.0));
        assert_eq!(
            onset,
            Judgement {
                speech: true,
                lead_frames: 2
            }
        );
        assert_eq!(
            gate.judge(true, &tone(7000.0)).lead_frames,
            0,
            "only at the onset"
        );
        // Silence, then an onset with nothing audible before it.
        for _ in 0..10 {
            gate.judge(false, &[0; 160]);
        }
        assert_eq!(gate.judge(true, &tone(7000.0)).lead_frames, 0);
    }
}

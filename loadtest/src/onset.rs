//! Finds where the far end starts talking, in the audio we receive, so that latency is measured
//! the way a caller hears it and not taken from the edge's own report.
//!
//! The detector is sans-IO: the call task hands it each decoded 20 ms frame with its arrival
//! time, and tells it when the caller's turn ended. A reply *onset* is the first frame of a run of
//! `min_active_frames` loud frames (mean power over `threshold_dbfs`) that follows at least
//! `min_silence_frames` quiet ones and begins after the caller's turn ended. Requiring silence
//! first means the tail of audio that was already playing (an echo of our own speech, or an
//! agent that talks over the caller) is not mistaken for a reply.

use std::time::{Duration, Instant};

/// Thresholds of the detector; the defaults suit telephone speech at normal levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnsetConfig {
    /// A frame whose mean power is above this (dB relative to full scale) is loud.
    pub threshold_dbfs: f64,
    /// Loud frames in a row that make an onset (filters clicks).
    pub min_active_frames: u32,
    /// Quiet frames in a row that must precede an onset.
    pub min_silence_frames: u32,
}

impl Default for OnsetConfig {
    fn default() -> Self {
        Self {
            threshold_dbfs: -40.0,
            min_active_frames: 2,
            min_silence_frames: 5,
        }
    }
}

/// What the detector noticed in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnsetEvent {
    /// The far end began a talk spurt at `at` (the arrival of its first loud frame); `reply_to`
    /// is when the caller's turn ended if this spurt answers it, `None` if it came unprompted.
    Onset {
        /// Arrival time of the first loud frame of the spurt.
        at: Instant,
        /// End of the caller turn this spurt answers, if armed.
        reply_to: Option<Instant>,
    },
    /// The far end went quiet (after `min_silence_frames` quiet frames); `at` is the first of them.
    Offset {
        /// Arrival time of the first quiet frame.
        at: Instant,
    },
}

/// Energy-based talk-spurt detector over received audio.
#[derive(Debug, Clone)]
pub struct OnsetDetector {
    config: OnsetConfig,
    /// Mean-square power threshold (linear, in sample units squared).
    threshold_power: f64,
    quiet_run: u32,
    loud_run: u32,
    first_loud: Option<Instant>,
    first_quiet: Option<Instant>,
    talking: bool,
    armed: Option<Instant>,
}

impl OnsetDetector {
    /// A detector that starts out in silence.
    pub fn new(config: OnsetConfig) -> Self {
        let full_scale = f64::from(i16::MAX);
        let amplitude = full_scale * 10f64.powf(config.threshold_dbfs / 20.0);
        Self {
            config,
            threshold_power: amplitude * amplitude,
            quiet_run: config.min_silence_frames,
            loud_run: 0,
            first_loud: None,
            first_quiet: None,
            talking: false,
            armed: None,
        }
    }

    /// The caller's turn ended at `at`: the next onset after it is its reply.
    pub fn caller_turn_ended(&mut self, at: Instant) {
        self.armed = Some(at);
    }

    /// The caller started a new turn: a reply to the previous one can no longer come.
    pub fn caller_turn_started(&mut self) {
        self.armed = None;
    }

    /// Is the far end talking now?
    pub fn is_talking(&self) -> bool {
        self.talking
    }

    /// Was the last frame pushed loud (over the threshold)?
    pub fn last_frame_loud(&self) -> bool {
        self.loud_run > 0
    }

    /// Feeds one decoded frame received at `at`.
    pub fn push_frame(&mut self, at: Instant, samples: &[i16]) -> Option<OnsetEvent> {
        if frame_power(samples) > self.threshold_power {
            if self.loud_run == 0 {
                self.first_loud = Some(at);
                // The silence before this run counts only if it was long enough.
                if self.quiet_run < self.config.min_silence_frames && !self.talking {
                    self.first_loud = None;
                }
            }
            self.loud_run = self.loud_run.saturating_add(1);
            self.quiet_run = 0;
            if !self.talking && self.loud_run >= self.config.min_active_frames {
                self.talking = true;
                if let Some(start) = self.first_loud {
                    let reply_to = self.armed.filter(|&end| start >= end);
                    if reply_to.is_some() {
                        self.armed = None;
                    }
                    return Some(OnsetEvent::Onset {
                        at: start,
                        reply_to,
                    });
                }
            }
        } else {
            if self.quiet_run == 0 {
                self.first_quiet = Some(at);
            }
            self.quiet_run = self.quiet_run.saturating_add(1);
            self.loud_run = 0;
            if self.talking && self.quiet_run >= self.config.min_silence_frames {
                self.talking = false;
                return self.first_quiet.map(|at| OnsetEvent::Offset { at });
            }
        }
        None
    }
}

/// Mean of squared samples; 0 for an empty frame.
pub fn frame_power(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    sum / samples.len() as f64
}

/// Mean power of a frame in dB relative to a full-scale square wave; -120 for silence.
pub fn frame_dbfs(samples: &[i16]) -> f64 {
    let power = frame_power(samples);
    if power <= 0.0 {
        return -120.0;
    }
    10.0 * (power / (f64::from(i16::MAX) * f64::from(i16::MAX))).log10()
}

/// Milliseconds between two instants, as a float for statistics.
pub fn millis(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// One 20 ms frame.
pub const FRAME: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f64) -> [i16; 160] {
        let mut out = [0i16; 160];
        for (i, s) in out.iter_mut().enumerate() {
            *s =
                (amplitude * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin()) as i16;
        }
        out
    }

    /// Feeds `frames` (true = loud) starting at `t0`, one per 20 ms; returns the events.
    fn feed(d: &mut OnsetDetector, t0: Instant, frames: &[bool]) -> Vec<(usize, OnsetEvent)> {
        let loud = tone(8000.0);
        let quiet = tone(20.0);
        frames
            .iter()
            .enumerate()
            .filter_map(|(i, &l)| {
                let at = t0 + FRAME * i as u32;
                d.push_frame(at, if l { &loud } else { &quiet })
                    .map(|e| (i, e))
            })
            .collect()
    }

    #[test]
    fn reply_after_the_callers_turn_is_timed_from_its_first_loud_frame() {
        let t0 = Instant::now();
        let mut d = OnsetDetector::new(OnsetConfig::default());
        d.caller_turn_ended(t0 + FRAME * 3);
        let mut frames = vec![false; 20];
        frames.extend([true; 10]);
        let events = feed(&mut d, t0, &frames);
        assert_eq!(
            events,
            [(
                21,
                OnsetEvent::Onset {
                    at: t0 + FRAME * 20,
                    reply_to: Some(t0 + FRAME * 3)
                }
            )]
        );
        assert_eq!(millis(t0 + FRAME * 3, t0 + FRAME * 20), 340.0);
    }

    #[test]
    fn a_single_click_is_not_an_onset() {
        let t0 = Instant::now();
        let mut d = OnsetDetector::new(OnsetConfig::default());
        d.caller_turn_ended(t0);
        let mut frames = vec![false; 10];
        frames.push(true);
        frames.extend([false; 10]);
        assert!(feed(&mut d, t0, &frames).is_empty());
    }

    #[test]
    fn audio_already_playing_when_the_turn_ends_is_not_a_reply() {
        let t0 = Instant::now();
        let mut d = OnsetDetector::new(OnsetConfig::default());
        let mut frames = vec![false; 6];
        frames.extend([true; 20]);
        let events = feed(&mut d, t0, &frames);
        assert!(matches!(
            events.as_slice(),
            [(7, OnsetEvent::Onset { reply_to: None, .. })]
        ));
        // The turn ends while the far end is still talking: the tail is no reply.
        d.caller_turn_ended(t0 + FRAME * 10);
        let later = t0 + FRAME * 26;
        let events = feed(&mut d, later, &[true, true, false, false]);
        assert!(events.is_empty());
    }

    #[test]
    fn offset_follows_enough_quiet_frames_and_rearms_onsets() {
        let t0 = Instant::now();
        let mut d = OnsetDetector::new(OnsetConfig::default());
        let mut frames = vec![true; 4];
        frames.extend([false; 6]);
        frames.extend([true; 3]);
        let events = feed(&mut d, t0, &frames);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[1], (8, OnsetEvent::Offset { at: t0 + FRAME * 4 }));
        assert!(matches!(events[2], (11, OnsetEvent::Onset { .. })));
    }

    #[test]
    fn dbfs_of_full_scale_and_silence() {
        assert!(frame_dbfs(&[i16::MAX; 160]).abs() < 0.01);
        assert_eq!(frame_dbfs(&[0; 160]), -120.0);
        assert!((frame_dbfs(&tone(32767.0 / 100.0)) - (-43.0)).abs() < 0.1);
    }
}

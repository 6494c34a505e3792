//! The agent's ear, sans-IO: each 20 ms frame of the caller's decoded audio goes through the VAD
//! (its decisions checked against the caller's level by a [`LevelGate`], which cuts the VAD's
//! hangover off the end of each turn) into the [`TurnDetector`], and while a caller turn is open the audio is collected — with a
//! little pre-roll from before the turn was recognised, so the first syllable is not clipped — as
//! the utterance that goes to speech-to-text when the turn ends. Buffers are sized once per call:
//! per frame nothing is allocated.

use std::time::Instant;

use crate::media::frame::{PcmFrame, SampleRate, FRAME_DURATION};
use crate::media::level_gate::{LevelGate, LevelGateConfig};
use crate::media::turn::{TurnConfig, TurnDetector, TurnEvent};
use crate::media::vad::{VadAggressiveness, VoiceActivityDetector};

use super::media::FRAME_SAMPLES;

/// Audio kept from before the turn was recognised (the VAD needs a few frames to decide).
const PRE_ROLL_FRAMES: usize = 15;
/// Longest utterance kept (8 kHz samples): 30 s; a longer turn keeps its first 30 s.
const MAX_UTTERANCE: usize = 30 * 8000;

/// VAD, turn detection and utterance collection for one call.
pub(crate) struct Listener {
    vad: VoiceActivityDetector,
    gate: LevelGate,
    turns: TurnDetector,
    frame: PcmFrame,
    pre_roll: Box<[[i16; FRAME_SAMPLES]; PRE_ROLL_FRAMES]>,
    pre_roll_next: usize,
    pre_roll_len: usize,
    utterance: Vec<i16>,
    collecting: bool,
    events: std::collections::VecDeque<TurnEvent>,
}

impl Listener {
    /// A listener with the agent's turn timing.
    pub(crate) fn new(config: TurnConfig) -> Self {
        Self {
            vad: VoiceActivityDetector::new(VadAggressiveness::Aggressive),
            gate: LevelGate::new(LevelGateConfig::default()),
            turns: TurnDetector::new(config),
            frame: PcmFrame::silence(SampleRate::Hz8000),
            pre_roll: Box::new([[0; FRAME_SAMPLES]; PRE_ROLL_FRAMES]),
            pre_roll_next: 0,
            pre_roll_len: 0,
            utterance: Vec::with_capacity(MAX_UTTERANCE),
            collecting: false,
            events: std::collections::VecDeque::with_capacity(8),
        }
    }

    /// One frame of the caller's audio, received at `now`.
    pub(crate) fn push_frame(&mut self, now: Instant, samples: &[i16; FRAME_SAMPLES]) {
        self.frame.samples_mut().copy_from_slice(samples);
        // A frame the VAD cannot judge counts as silence (it cannot happen at 8 kHz / 20 ms).
        let vad_speech = self.vad.is_speech(&self.frame).unwrap_or(false);
        let judged = self.gate.judge(vad_speech, samples);
        if self.collecting {
            let room = MAX_UTTERANCE.saturating_sub(self.utterance.len());
            self.utterance
                .extend_from_slice(&samples[..room.min(FRAME_SAMPLES)]);
        } else {
            self.pre_roll[self.pre_roll_next] = *samples;
            self.pre_roll_next = (self.pre_roll_next + 1) % PRE_ROLL_FRAMES;
            self.pre_roll_len = (self.pre_roll_len + 1).min(PRE_ROLL_FRAMES);
        }
        let lead = FRAME_DURATION * judged.lead_frames;
        self.turns.push_frame_with_lead(now, judged.speech, lead);
        self.drain();
    }

    /// Time passed without a frame.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.turns.handle_timeout(now);
        self.drain();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.turns.poll_timeout()
    }

    /// Whether the agent's audio is playing (arms barge-in).
    pub(crate) fn set_agent_speaking(&mut self, speaking: bool) {
        self.turns.set_agent_speaking(speaking);
    }

    /// The next turn event.
    pub(crate) fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// An endpointing signal from a streaming recogniser: may end the open turn early (see
    /// [`TurnDetector::endpoint_hint`]).
    pub(crate) fn endpoint_hint(&mut self, now: Instant) {
        self.turns.endpoint_hint(now);
        self.drain();
    }

    /// The audio of the current (or just ended) turn so far, pre-roll first, for streaming it
    /// to a live recogniser while the caller speaks.
    pub(crate) fn turn_audio(&self) -> &[i16] {
        &self.utterance
    }

    /// The utterance of the turn that just ended (8 kHz), leaving an empty buffer behind.
    pub(crate) fn take_utterance(&mut self) -> Vec<i16> {
        std::mem::replace(&mut self.utterance, Vec::with_capacity(MAX_UTTERANCE))
    }

    fn drain(&mut self) {
        while let Some(event) = self.turns.poll_event() {
            match event {
                TurnEvent::SpeechStarted => {
                    self.utterance.clear();
                    // Pre-roll, oldest first: it holds the frames that made the VAD decide.
                    let oldest = (self.pre_roll_next + PRE_ROLL_FRAMES - self.pre_roll_len)
                        % PRE_ROLL_FRAMES;
                    for i in 0..self.pre_roll_len {
                        let frame = &self.pre_roll[(oldest + i) % PRE_ROLL_FRAMES];
                        self.utterance.extend_from_slice(frame);
                    }
                    self.pre_roll_len = 0;
                    self.collecting = true;
                }
                TurnEvent::EndOfTurn { .. } => self.collecting = false,
                TurnEvent::BargeIn => {}
            }
            self.events.push_back(event);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::time::Duration;

    /// A vowel-like buzz the VAD hears as speech: frame `i` of it.
    pub(crate) fn buzz(i: usize) -> [i16; FRAME_SAMPLES] {
        let mut f = [0i16; FRAME_SAMPLES];
        for (k, s) in f.iter_mut().enumerate() {
            let t = (i * FRAME_SAMPLES + k) as f64 / 8000.0;
            let mut v = 0.0;
            for (h, a) in [(1.0, 1.0), (2.0, 0.8), (5.0, 0.6), (8.0, 0.4)] {
                v += a * (2.0 * std::f64::consts::PI * 140.0 * h * t).sin();
            }
            *s = (3000.0 * v) as i16;
        }
        f
    }

    #[test]
    fn a_spoken_turn_is_collected_with_its_pre_roll() {
        let t0 = Instant::now();
        let mut l = Listener::new(TurnConfig::default());
        let mut events = Vec::new();
        for i in 0..100usize {
            let frame = if (20..60).contains(&i) {
                buzz(i)
            } else {
                [0; FRAME_SAMPLES]
            };
            l.push_frame(t0 + Duration::from_millis(20 * i as u64 + 20), &frame);
            while let Some(e) = l.poll_event() {
                events.push(e);
            }
        }
        assert_eq!(events.first(), Some(&TurnEvent::SpeechStarted));
        assert!(matches!(events.last(), Some(TurnEvent::EndOfTurn { .. })));
        let utterance = l.take_utterance();
        // 40 voiced frames plus pre-roll and the trailing silence before the end of the turn.
        assert!(utterance.len() >= 40 * FRAME_SAMPLES, "{}", utterance.len());
        assert!(
            utterance[..FRAME_SAMPLES].iter().all(|&s| s == 0),
            "pre-roll starts quiet"
        );
    }

    #[test]
    fn a_turn_ends_its_silence_after_the_last_spoken_frame_not_the_vads_hangover() {
        let t0 = Instant::now();
        let config = TurnConfig::default();
        let mut l = Listener::new(config);
        let at = |i: usize| t0 + Duration::from_millis(20 * i as u64 + 20);
        let mut ended = None;
        for i in 0..150usize {
            let frame = if (10..80).contains(&i) {
                buzz(i)
            } else {
                [0; FRAME_SAMPLES]
            };
            l.push_frame(at(i), &frame);
            if let Some(deadline) = l.poll_timeout() {
                if deadline <= at(i) {
                    l.handle_timeout(deadline);
                }
            }
            while let Some(e) = l.poll_event() {
                if let TurnEvent::EndOfTurn { .. } = e {
                    ended.get_or_insert(i);
                }
            }
        }
        // The last voiced frame is 79; 500 ms (25 frames) of silence later is frame 104.
        assert_eq!(ended, Some(79 + 25), "no VAD hangover added to the silence");
    }

    #[test]
    fn barge_in_counts_the_callers_speech_from_when_it_became_audible() {
        let t0 = Instant::now();
        let config = TurnConfig::default();
        let mut l = Listener::new(config);
        l.set_agent_speaking(true);
        let at = |i: usize| t0 + Duration::from_millis(20 * i as u64 + 20);
        let mut barge_in = None;
        for i in 0..100usize {
            let frame = if i >= 50 { buzz(i) } else { [0; FRAME_SAMPLES] };
            l.push_frame(at(i), &frame);
            while let Some(e) = l.poll_event() {
                if e == TurnEvent::BargeIn {
                    barge_in.get_or_insert(i);
                }
            }
        }
        // Frames 50..=59 are the first 200 ms of the caller's speech.
        assert_eq!(barge_in, Some(59));
    }
}

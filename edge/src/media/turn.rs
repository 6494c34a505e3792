//! The turn detector: decides when the caller has started talking, when they have finished (so
//! the agent may answer), and when they talk over the agent (barge-in). It is the heart of how
//! natural a call feels, so it is a sans-IO state machine tested to the millisecond: the call task
//! feeds it one VAD decision per frame with the frame's arrival time, tells it when the agent's
//! audio is playing, forwards speech-to-text endpointing hints, and drains [`TurnEvent`]s.
//!
//! Hysteresis both ways: speech must last `speech_start_ms` before a turn starts (a click or a
//! breath does not), and silence must last `end_of_turn_silence_ms` before it ends (a pause
//! between words does not). While the agent speaks, caller speech must last
//! `barge_in_min_speech_ms` (a cough or an "mm-hm" is not an interruption) and then raises
//! [`TurnEvent::BargeIn`] before the caller's turn starts. An STT endpoint hint (Deepgram's
//! `speech_final`) ends the turn early, but only once the VAD too hears silence.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::frame::FRAME_DURATION;

/// Timing of turn-taking, from the agent's `turn` configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TurnConfig {
    /// Voiced audio needed before a caller turn starts.
    pub speech_start: Duration,
    /// Silence after speech that ends the caller's turn (`end_of_turn_silence_ms`).
    pub end_of_turn_silence: Duration,
    /// Whether caller speech may interrupt the agent (`barge_in`).
    pub barge_in: bool,
    /// Caller speech during agent speech that counts as an interruption (`barge_in_min_speech_ms`).
    pub barge_in_min_speech: Duration,
    /// Audio each `push_frame` call covers (20 ms frames; 10 ms if fed raw VAD blocks).
    pub frame: Duration,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            speech_start: Duration::from_millis(60),
            end_of_turn_silence: Duration::from_millis(500),
            barge_in: true,
            barge_in_min_speech: Duration::from_millis(200),
            frame: FRAME_DURATION,
        }
    }
}

/// What the call task must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEvent {
    /// The caller began a turn (start streaming audio to STT, stop reprompt timers).
    SpeechStarted,
    /// The caller finished; `speech_ms` spans from the start of their speech to its last voiced frame.
    EndOfTurn {
        /// Length of the utterance in milliseconds, trailing silence excluded.
        speech_ms: u32,
        /// Silence after its last voiced frame when the turn ended: `end_of_turn_silence`, or
        /// less when speech-to-text's endpointing ended it early.
        silence_ms: u32,
    },
    /// The caller talked over the agent: flush playback, cancel LLM and TTS.
    BargeIn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the caller to speak.
    Listening,
    /// In a caller turn that started at `started`; `last_voice` is the end of the last voiced frame.
    InTurn {
        started: Instant,
        last_voice: Instant,
    },
}

/// Sans-IO turn-taking state for one call.
#[derive(Debug, Clone)]
pub(crate) struct TurnDetector {
    config: TurnConfig,
    phase: Phase,
    /// Start of the current uninterrupted voiced run (audio time), if the last frame was voiced.
    voiced_since: Option<Instant>,
    agent_speaking: bool,
    /// Barge-in already raised during the current stretch of agent speech.
    barged_in: bool,
    events: VecDeque<TurnEvent>,
}

impl TurnDetector {
    /// A detector in the listening state.
    pub(crate) fn new(config: TurnConfig) -> Self {
        TurnDetector {
            config,
            phase: Phase::Listening,
            voiced_since: None,
            agent_speaking: false,
            barged_in: false,
            // At most two events per input; the call task drains after each one.
            events: VecDeque::with_capacity(8),
        }
    }

    /// Whether a caller turn is in progress.
    #[cfg(test)]
    pub(crate) fn in_turn(&self) -> bool {
        matches!(self.phase, Phase::InTurn { .. })
    }

    /// Feeds one frame's VAD decision; `now` is when the frame's audio ended (its arrival).
    #[cfg(test)]
    pub(crate) fn push_frame(&mut self, now: Instant, is_speech: bool) {
        self.push_frame_with_lead(now, is_speech, Duration::ZERO);
    }

    /// As [`push_frame`](Self::push_frame), where a voiced run that starts with this frame began
    /// `lead` earlier: the VAD takes a frame or two to recognise speech that was already audible,
    /// and speech-start and barge-in thresholds count from when it was.
    pub(crate) fn push_frame_with_lead(&mut self, now: Instant, is_speech: bool, lead: Duration) {
        if !is_speech {
            self.voiced_since = None;
            self.check_silence(now);
            return;
        }
        let frame = self.config.frame + lead;
        let run_start = *self
            .voiced_since
            .get_or_insert_with(|| now.checked_sub(frame).unwrap_or(now));
        let voiced = now.saturating_duration_since(run_start);
        let barge_in_armed = self.agent_speaking && self.config.barge_in && !self.barged_in;
        if barge_in_armed && voiced >= self.config.barge_in_min_speech {
            self.barged_in = true;
            self.push_event(TurnEvent::BargeIn);
        }
        match &mut self.phase {
            Phase::InTurn { last_voice, .. } => *last_voice = now,
            Phase::Listening => {
                if voiced >= self.start_threshold() {
                    self.phase = Phase::InTurn {
                        started: run_start,
                        last_voice: now,
                    };
                    self.push_event(TurnEvent::SpeechStarted);
                }
            }
        }
    }

    /// Tells the detector whether the agent's audio is playing to the caller right now.
    pub(crate) fn set_agent_speaking(&mut self, speaking: bool) {
        if speaking && !self.agent_speaking {
            self.barged_in = false;
        }
        self.agent_speaking = speaking;
    }

    /// An endpointing signal from speech-to-text (e.g. `speech_final`): ends the turn now if the
    /// VAD also hears silence; ignored while the caller is still voiced or no turn is open.
    /// `now` is taken like every other input, though the decision needs only the VAD state.
    pub(crate) fn endpoint_hint(&mut self, now: Instant) {
        if self.voiced_since.is_some() {
            return;
        }
        if let Phase::InTurn {
            started,
            last_voice,
        } = self.phase
        {
            self.end_turn(started, last_voice, now);
        }
    }

    /// Advances time without a frame (e.g. the caller's RTP stopped): may end the turn.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.voiced_since.is_none() {
            self.check_silence(now);
        }
    }

    /// When `handle_timeout` should next be called, if a turn is waiting on silence.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::InTurn { last_voice, .. } if self.voiced_since.is_none() => {
                Some(last_voice + self.config.end_of_turn_silence)
            }
            _ => None,
        }
    }

    /// The next event for the call task, oldest first.
    pub(crate) fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// Voiced time needed to open a turn: longer while the agent talks (barge-in threshold),
    /// never while it talks with barge-in disabled.
    fn start_threshold(&self) -> Duration {
        match (self.agent_speaking, self.config.barge_in) {
            (false, _) => self.config.speech_start,
            (true, true) => self
                .config
                .speech_start
                .max(self.config.barge_in_min_speech),
            (true, false) => Duration::MAX,
        }
    }

    fn check_silence(&mut self, now: Instant) {
        if let Phase::InTurn {
            started,
            last_voice,
        } = self.phase
        {
            if now.saturating_duration_since(last_voice) >= self.config.end_of_turn_silence {
                self.end_turn(started, last_voice, now);
            }
        }
    }

    fn end_turn(&mut self, started: Instant, last_voice: Instant, now: Instant) {
        let silence = now.saturating_duration_since(last_voice);
        let silence_ms = u32::try_from(silence.as_millis()).unwrap_or(u32::MAX);
        let speech = last_voice.saturating_duration_since(started);
        let speech_ms = u32::try_from(speech.as_millis()).unwrap_or(u32::MAX);
        self.phase = Phase::Listening;
        self.push_event(TurnEvent::EndOfTurn {
            speech_ms,
            silence_ms,
        });
    }

    fn push_event(&mut self, event: TurnEvent) {
        self.events.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One scripted step of a call, 20 ms per frame.
    #[derive(Clone, Copy)]
    enum Step {
        /// `n` voiced frames.
        Voice(u32),
        /// `n` silent frames.
        Silence(u32),
        /// The agent starts or stops speaking.
        Agent(bool),
        /// STT says the utterance ended.
        Hint,
    }
    use Step::*;

    /// Runs a script and returns each event with the audio time (ms) at which it was raised.
    fn run(config: TurnConfig, script: &[Step]) -> Vec<(u64, TurnEvent)> {
        let start = Instant::now();
        let mut t = 0u64;
        let mut d = TurnDetector::new(config);
        let mut out = Vec::new();
        let drain = |d: &mut TurnDetector, t: u64, out: &mut Vec<(u64, TurnEvent)>| {
            while let Some(e) = d.poll_event() {
                out.push((t, e));
            }
        };
        for step in script {
            match *step {
                Voice(n) | Silence(n) => {
                    for _ in 0..n {
                        t += 20;
                        d.push_frame(start + Duration::from_millis(t), matches!(step, Voice(_)));
                        drain(&mut d, t, &mut out);
                    }
                }
                Agent(on) => d.set_agent_speaking(on),
                Hint => {
                    d.endpoint_hint(start + Duration::from_millis(t));
                    drain(&mut d, t, &mut out);
                }
            }
        }
        out
    }

    const START: TurnEvent = TurnEvent::SpeechStarted;
    const BARGE: TurnEvent = TurnEvent::BargeIn;
    /// A turn ended by the default 500 ms of silence.
    const fn end(speech_ms: u32) -> TurnEvent {
        end_after(speech_ms, 500)
    }

    const fn end_after(speech_ms: u32, silence_ms: u32) -> TurnEvent {
        TurnEvent::EndOfTurn {
            speech_ms,
            silence_ms,
        }
    }

    #[test]
    fn turn_taking_table() {
        let base = TurnConfig::default();
        let no_barge = TurnConfig {
            barge_in: false,
            ..base
        };
        #[allow(clippy::type_complexity)]
        let table: &[(&str, TurnConfig, &[Step], &[(u64, TurnEvent)])] = &[
            ("silence raises nothing", base, &[Silence(100)], &[]),
            (
                "a two-frame click does not start a turn",
                base,
                &[Silence(5), Voice(2), Silence(50)],
                &[],
            ),
            (
                "speech starts after 60 ms and ends after 500 ms of silence",
                base,
                &[Silence(5), Voice(50), Silence(30)],
                &[(160, START), (1600, end(1000))],
            ),
            (
                "a 480 ms pause inside a sentence keeps the turn open",
                base,
                &[Voice(10), Silence(24), Voice(10), Silence(25)],
                &[(60, START), (1380, end(880))],
            ),
            (
                "an STT endpoint hint during silence ends the turn early",
                base,
                &[Voice(10), Silence(5), Hint, Silence(30)],
                &[(60, START), (300, end_after(200, 100))],
            ),
            (
                "an STT endpoint hint while the caller is voiced is ignored",
                base,
                &[Voice(10), Hint, Silence(25)],
                &[(60, START), (700, end(200))],
            ),
            (
                "a hint with no open turn is ignored",
                base,
                &[Silence(5), Hint, Silence(5)],
                &[],
            ),
            (
                "caller speech over the agent for 200 ms barges in, then the turn starts",
                base,
                &[Agent(true), Silence(5), Voice(15), Silence(25)],
                &[(300, BARGE), (300, START), (900, end(300))],
            ),
            (
                "a 100 ms backchannel over the agent is neither barge-in nor a turn",
                base,
                &[Agent(true), Voice(5), Silence(50)],
                &[],
            ),
            (
                "barge-in is raised once per stretch of agent speech",
                base,
                &[Agent(true), Voice(15), Silence(30), Voice(15), Silence(30)],
                &[
                    (200, BARGE),
                    (200, START),
                    (800, end(300)),
                    (1100, START),
                    (1700, end(300)),
                ],
            ),
            (
                "agent speaking again re-arms barge-in",
                base,
                &[
                    Agent(true),
                    Voice(10),
                    Silence(30),
                    Agent(false),
                    Agent(true),
                    Voice(10),
                    Silence(30),
                ],
                &[
                    (200, BARGE),
                    (200, START),
                    (700, end(200)),
                    (1000, BARGE),
                    (1000, START),
                    (1500, end(200)),
                ],
            ),
            (
                "with barge-in disabled the caller cannot interrupt or open a turn",
                no_barge,
                &[Agent(true), Voice(50), Silence(30)],
                &[],
            ),
            (
                "with barge-in disabled speech continuing after the agent stops opens a turn",
                no_barge,
                &[Agent(true), Voice(20), Agent(false), Voice(1), Silence(30)],
                &[(420, START), (920, end(420))],
            ),
        ];
        for (name, config, script, expected) in table {
            assert_eq!(run(*config, script), *expected, "{name}");
        }
    }

    #[test]
    fn timeout_ends_a_turn_when_frames_stop() {
        let t0 = Instant::now();
        let mut d = TurnDetector::new(TurnConfig::default());
        for i in 1..=10u64 {
            d.push_frame(t0 + Duration::from_millis(20 * i), true);
        }
        assert_eq!(d.poll_event(), Some(START));
        assert_eq!(d.poll_timeout(), None, "still voiced");
        d.push_frame(t0 + Duration::from_millis(220), false);
        let deadline = d.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + Duration::from_millis(700));
        d.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(d.poll_event(), None);
        d.handle_timeout(deadline);
        assert_eq!(d.poll_event(), Some(end(200)));
        assert!(!d.in_turn());
        assert_eq!(d.poll_timeout(), None);
    }
}

//! The conversation of one call, sans-IO: what the caller hears decides when it speaks. Each
//! received frame goes through the reply [`OnsetDetector`] (latency, measured as the caller hears
//! it) and [`FarEndTurns`] (whether the far end still holds the floor, and when its turn is
//! over); the [`Talker`] picks the caller's next frame from that. Out come the call's
//! [`Conversation`] figures and, for a person watching the call (`freya call`), a
//! [`ConversationEvent`] for each turn as it happens.
//!
//! The media session hands it decoded 8 kHz frames with their arrival times and asks it for the
//! caller's frames on its 20 ms tick; it owns no codec, socket or clock.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use crate::audio::{Utterance, FRAME_SAMPLES};
use crate::onset::{millis, OnsetConfig, OnsetDetector, OnsetEvent};
use crate::uac::far_end::{FarEndTurnEvent, FarEndTurns};
use crate::uac::talker::{Talker, TalkerConfig, TalkerEvent};

/// Received audio kept before the frame that showed a far-end turn had begun, so that its first
/// syllable is in the turn's audio (200 ms at 8 kHz).
const PRE_ROLL_SAMPLES: usize = 1_600;

/// What the conversation produced, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    /// From the answer to the first far-end talk spurt.
    pub first_audio_ms: Option<f64>,
    /// Per caller turn that got a reply: end of caller speech to start of the reply.
    pub v2v_ms: Vec<f64>,
    /// Per far-end turn the caller cut into on purpose: start of caller speech to the end of the
    /// far end's last speech in that turn.
    pub barge_in_ms: Vec<f64>,
    /// Caller turns spoken to the end.
    pub turns_spoken: u32,
}

/// A turn of the conversation as it happens, for a person watching the call. Turns count from
/// 0 on each side; audio positions are sample indices (8 kHz) into everything received from the
/// far end, as kept by [`CallConfig::received_audio`](super::CallConfig::received_audio).
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEvent {
    /// The caller began turn `turn`; `over_far_end` when the far end held the floor then (a
    /// barge-in, or a far end that talked on past the reply timeout).
    CallerTurnStarted {
        /// The caller's turn.
        turn: usize,
        /// Whether it began within the far end's turn.
        over_far_end: bool,
    },
    /// The far end answered caller turn `turn`, `v2v_ms` after the caller stopped speaking.
    Answered {
        /// The caller's turn.
        turn: usize,
        /// End of the caller's speech to the far end's first loud frame.
        v2v_ms: f64,
    },
    /// The far end went quiet `reaction_ms` after caller turn `turn` cut into its turn on
    /// purpose (reported once that far-end turn is over).
    BargeIn {
        /// The interrupting caller turn.
        turn: usize,
        /// Start of the caller's speech to the end of the far end's last speech in its turn.
        reaction_ms: f64,
    },
    /// The far end began turn `turn`; its audio starts at sample `audio_from`.
    FarEndTurnStarted {
        /// The far end's turn.
        turn: usize,
        /// Where its audio starts in the received audio.
        audio_from: usize,
    },
    /// The far end's turn `turn` is over (it has been quiet for the far-end silence); it spoke
    /// for `spoke_ms`, and its audio, trailing silence included, is `audio`.
    FarEndTurnEnded {
        /// The far end's turn.
        turn: usize,
        /// First loud frame to the end of the last one.
        spoke_ms: f64,
        /// Its samples in the received audio.
        audio: Range<usize>,
    },
}

/// Who speaks when, in one call.
#[derive(Debug, Clone)]
pub struct TurnTaking {
    answered: Instant,
    talker: Talker,
    detector: OnsetDetector,
    far_end: FarEndTurns,
    conversation: Conversation,
    /// The caller turn that cut into the far end's turn, and when, until that turn is over.
    interrupting: Option<(usize, Instant)>,
    /// The caller turn whose reply the detector is armed for.
    awaiting_reply: Option<usize>,
    /// The caller turn reported as started, so a one-frame turn is still reported.
    caller_turn_reported: Option<usize>,
    /// Far-end samples received so far: the position of the next one.
    heard_samples: usize,
    /// Where the far end's current (or last) turn's audio starts.
    far_end_audio_from: usize,
    /// Where the far end's last finished turn's audio ends.
    far_end_audio_end: usize,
    /// Waiting for [`Self::poll_event`]; a handful per turn, so this stays at its first size.
    events: VecDeque<ConversationEvent>,
}

impl TurnTaking {
    /// A call answered at `answered`, in which the caller says `turns` when `talker` decides,
    /// hearing replies as `onset` judges them.
    pub fn new(
        turns: Arc<[Utterance]>,
        talker: TalkerConfig,
        onset: OnsetConfig,
        answered: Instant,
    ) -> Self {
        Self {
            answered,
            talker: Talker::new(turns, talker, answered),
            detector: OnsetDetector::new(onset),
            far_end: FarEndTurns::new(talker.far_end_silence, onset.min_active_frames),
            conversation: Conversation::default(),
            interrupting: None,
            awaiting_reply: None,
            caller_turn_reported: None,
            heard_samples: 0,
            far_end_audio_from: 0,
            far_end_audio_end: 0,
            events: VecDeque::with_capacity(8),
        }
    }

    /// Feeds one decoded far-end frame (8 kHz) that arrived at `at`.
    pub fn push_frame(&mut self, at: Instant, samples: &[i16]) {
        let position = self.heard_samples;
        self.heard_samples += samples.len();
        let onset = self.detector.push_frame(at, samples);
        if let Some(OnsetEvent::Onset {
            at: start,
            reply_to: Some(_),
        }) = onset
        {
            // Before this frame is counted: the reply's run began a frame or more ago.
            self.far_end.reply_started(start);
        }
        self.far_end.push_frame(at, self.detector.last_frame_loud());
        self.drain_far_end(position);
        match onset {
            Some(OnsetEvent::Onset {
                at: start,
                reply_to,
            }) => {
                if self.conversation.first_audio_ms.is_none() {
                    self.conversation.first_audio_ms = Some(millis(self.answered, start));
                }
                if let Some(end) = reply_to {
                    let v2v_ms = millis(end, start);
                    self.conversation.v2v_ms.push(v2v_ms);
                    self.talker.reply_heard(start);
                    if let Some(turn) = self.awaiting_reply.take() {
                        self.events
                            .push_back(ConversationEvent::Answered { turn, v2v_ms });
                    }
                }
            }
            Some(OnsetEvent::Offset { .. }) | None => {}
        }
    }

    /// Fills `out` with the caller's 20 ms (speech or silence) for the frame sent at `now`.
    pub fn next_frame(&mut self, now: Instant, out: &mut [i16; FRAME_SAMPLES]) {
        self.far_end.handle_timeout(now);
        self.drain_far_end(self.heard_samples);
        match self.talker.next_frame(now, self.far_end.holds_floor(), out) {
            Some(TalkerEvent::TurnStarted {
                turn,
                at,
                over_far_end,
            }) => {
                self.detector.caller_turn_started();
                self.awaiting_reply = None;
                if over_far_end && self.far_end.holds_floor() {
                    self.interrupting = Some((turn, at));
                }
                self.report_caller_turn(turn, over_far_end || self.far_end.holds_floor());
            }
            Some(TalkerEvent::TurnEnded(turn, at)) => {
                self.report_caller_turn(turn, false);
                self.detector.caller_turn_ended(at);
                self.awaiting_reply = Some(turn);
                self.conversation.turns_spoken += 1;
            }
            None => {}
        }
    }

    /// The next turn event, in the order they happened.
    pub fn poll_event(&mut self) -> Option<ConversationEvent> {
        self.events.pop_front()
    }

    /// The conversation's figures so far.
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// Has the caller said everything?
    pub fn script_done(&self) -> bool {
        self.talker.is_done()
    }

    fn report_caller_turn(&mut self, turn: usize, over_far_end: bool) {
        if self.caller_turn_reported != Some(turn) {
            self.caller_turn_reported = Some(turn);
            self.events
                .push_back(ConversationEvent::CallerTurnStarted { turn, over_far_end });
        }
    }

    /// Passes the far end's turns on to the talker and the watcher; `position` is where in the
    /// received audio they happened.
    fn drain_far_end(&mut self, position: usize) {
        while let Some(event) = self.far_end.poll_event() {
            match event {
                FarEndTurnEvent::Started { turn, at } => {
                    self.talker.far_end_started(at);
                    self.far_end_audio_from = position
                        .saturating_sub(PRE_ROLL_SAMPLES)
                        .max(self.far_end_audio_end);
                    self.events.push_back(ConversationEvent::FarEndTurnStarted {
                        turn,
                        audio_from: self.far_end_audio_from,
                    });
                }
                FarEndTurnEvent::Ended {
                    turn,
                    started,
                    last_speech,
                } => {
                    // Measured to the end of the far end's last speech in the turn the caller
                    // cut into: when the interruption took effect, or (an upper bound) when the
                    // turn would have ended anyway; zero if it had already fallen quiet.
                    if let Some((turn, since)) = self.interrupting.take() {
                        let reaction_ms = millis(since, last_speech);
                        self.conversation.barge_in_ms.push(reaction_ms);
                        self.events
                            .push_back(ConversationEvent::BargeIn { turn, reaction_ms });
                    }
                    self.talker.far_end_finished(last_speech);
                    self.far_end_audio_end = position.max(self.far_end_audio_from);
                    self.events.push_back(ConversationEvent::FarEndTurnEnded {
                        turn,
                        spoke_ms: millis(started, last_speech),
                        audio: self.far_end_audio_from..self.far_end_audio_end,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::onset::FRAME;

    const F: Duration = FRAME;

    /// The caller of `freya call`: awaits the greeting and speaks once the agent has been quiet
    /// for 900 ms; with `barge_in_after`, cuts into each agent turn that long after it starts.
    fn freya_call(barge_in_after: Option<Duration>) -> TalkerConfig {
        TalkerConfig {
            first_turn_after: Duration::from_secs(3),
            reply_timeout: Duration::from_secs(8),
            pause_after_reply: Duration::ZERO,
            barge_in_after,
            far_end_silence: Duration::from_millis(900),
            await_greeting: true,
        }
    }

    /// A simulated call: the agent is loud in the frames `(from, to)` of `speech` (`to` not
    /// included) and quiet elsewhere, the
    /// caller says tones of `turns` milliseconds each; one frame each way per 20 ms. Every event
    /// is kept with the frame it came out in.
    struct Call {
        t0: Instant,
        turns: TurnTaking,
        speech: Vec<(u32, u32)>,
        events: Vec<(u32, ConversationEvent)>,
        loud: [i16; FRAME_SAMPLES],
        frame: u32,
    }

    impl Call {
        fn new(talker: TalkerConfig, turns: &[u32], speech: &[(u32, u32)]) -> Self {
            let t0 = Instant::now();
            let turns: Vec<Utterance> = turns.iter().map(|&ms| Utterance::tone(ms)).collect();
            let mut loud = [0i16; FRAME_SAMPLES];
            loud.copy_from_slice(&Utterance::tone(20).samples[..FRAME_SAMPLES]);
            Self {
                t0,
                turns: TurnTaking::new(turns.into(), talker, OnsetConfig::default(), t0),
                speech: speech.to_vec(),
                events: Vec::new(),
                loud,
                frame: 0,
            }
        }

        /// Runs until frame `until`.
        fn run(&mut self, until: u32) {
            let quiet = [0i16; FRAME_SAMPLES];
            let mut out = [0i16; FRAME_SAMPLES];
            while self.frame < until {
                let i = self.frame;
                let now = self.t0 + F * i;
                let loud = self
                    .speech
                    .iter()
                    .any(|&(from, to)| (from..to).contains(&i));
                self.turns
                    .push_frame(now, if loud { &self.loud } else { &quiet });
                self.turns.next_frame(now, &mut out);
                while let Some(e) = self.turns.poll_event() {
                    self.events.push((i, e));
                }
                self.frame += 1;
            }
        }

        /// The frames in which the caller's turns started, and whether over the agent.
        fn caller_starts(&self) -> Vec<(u32, bool)> {
            self.events
                .iter()
                .filter_map(|(i, e)| match e {
                    ConversationEvent::CallerTurnStarted { over_far_end, .. } => {
                        Some((*i, *over_far_end))
                    }
                    _ => None,
                })
                .collect()
        }

        fn find(&self, pick: impl Fn(&ConversationEvent) -> bool) -> Vec<(u32, ConversationEvent)> {
            self.events
                .iter()
                .filter(|(_, e)| pick(e))
                .cloned()
                .collect()
        }
    }

    #[test]
    fn caller_waits_agent_silence_after_last_agent_word() {
        // "Hello," from 0.3 s, a 300 ms comma pause, then "thanks for calling" until 2.5 s.
        let mut call = Call::new(freya_call(None), &[400], &[(15, 50), (65, 125)]);
        call.run(250);
        // The last word ends with frame 124 (2.5 s); after 900 ms of silence the caller speaks.
        assert_eq!(
            call.caller_starts(),
            [(125 + 45, false)],
            "{:?}",
            call.events
        );
        let ended = call.find(|e| matches!(e, ConversationEvent::FarEndTurnEnded { .. }));
        assert_eq!(ended.len(), 1, "one greeting, comma and all: {ended:?}");
        let ConversationEvent::FarEndTurnEnded {
            turn,
            spoke_ms,
            ref audio,
        } = ended[0].1
        else {
            unreachable!()
        };
        assert_eq!((turn, spoke_ms), (0, 2_200.0));
        // From 200 ms before the frame that showed the turn had begun, to the turn's end.
        let frame = FRAME_SAMPLES;
        assert_eq!(*audio, 16 * frame - PRE_ROLL_SAMPLES..170 * frame);
    }

    #[test]
    fn a_comma_pause_in_a_reply_does_not_start_the_next_turn() {
        // The greeting ends at 1 s, so the first turn (200 ms) runs from frame 95 to 104; the
        // reply comes 600 ms later with a 400 ms pause after its first clause.
        let reply = 105 + 30;
        let mut call = Call::new(
            freya_call(None),
            &[200, 200],
            &[(10, 50), (reply, reply + 40), (reply + 60, reply + 100)],
        );
        call.run(400);
        assert_eq!(
            call.caller_starts(),
            [(95, false), (reply + 100 + 45, false)],
            "{:?}",
            call.events
        );
        let answered = call.find(|e| matches!(e, ConversationEvent::Answered { .. }));
        assert_eq!(
            answered,
            [(
                reply + 1,
                ConversationEvent::Answered {
                    turn: 0,
                    v2v_ms: 620.0
                }
            )],
            "the reply began 31 frames after the turn's last frame was sent"
        );
        assert_eq!(call.turns.conversation().v2v_ms, [620.0]);
    }

    #[test]
    fn the_load_testers_caller_keeps_its_short_pause() {
        // The load tester's own defaults: the far end's turn is over after the detector's
        // 100 ms, and the caller speaks 400 ms after the far end's last speech.
        let config = TalkerConfig {
            first_turn_after: F * 5,
            ..TalkerConfig::default()
        };
        let mut call = Call::new(config, &[200, 200], &[(30, 60)]);
        call.run(200);
        assert_eq!(call.caller_starts(), [(5, false), (60 + 20, false)]);
        // A reply that pauses for 200 ms and goes on is not talked over; when it stops, the
        // caller's pause has already run, and it speaks as soon as the far end's turn is over.
        let mut call = Call::new(config, &[200, 200], &[(30, 60), (70, 90)]);
        call.run(200);
        assert_eq!(
            call.caller_starts(),
            [(5, false), (90 + 5, false)],
            "{:?}",
            call.events
        );
    }

    #[test]
    fn a_barge_in_caller_cuts_into_the_greeting_and_each_reply() {
        // The greeting starts at 0.2 s and stops 240 ms after the caller cuts in (at 0.8 s);
        // the reply starts 300 ms after the caller's 200 ms turn and stops once cut into too.
        let first = 10 + 30;
        let reply = first + 10 + 15;
        let second = reply + 30;
        let mut call = Call::new(
            freya_call(Some(Duration::from_millis(600))),
            &[200, 200],
            &[(10, first + 12), (reply, second + 10)],
        );
        call.run(300);
        assert_eq!(
            call.caller_starts(),
            [(first, true), (second, true)],
            "{:?}",
            call.events
        );
        let reactions: Vec<f64> = call
            .find(|e| matches!(e, ConversationEvent::BargeIn { .. }))
            .into_iter()
            .map(|(_, e)| match e {
                ConversationEvent::BargeIn { reaction_ms, .. } => reaction_ms,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(reactions, [240.0, 200.0]);
        assert_eq!(call.turns.conversation().barge_in_ms, [240.0, 200.0]);
        // The reply to the first (interrupting) turn is a turn of its own, not the greeting's
        // tail, though the greeting had not been quiet for 900 ms when it began.
        let started = call.find(|e| matches!(e, ConversationEvent::FarEndTurnStarted { .. }));
        assert_eq!(started.len(), 2, "{started:?}");
        assert_eq!(started[1].0, reply + 1);
    }

    #[test]
    fn a_cut_in_during_a_comma_pause_is_measured_to_the_agents_last_word() {
        // The greeting pauses from 0.6 s; the caller cuts in at 0.8 s, in the pause; the agent
        // goes on from 0.9 s and stops at 1.2 s.
        let mut call = Call::new(
            freya_call(Some(Duration::from_millis(600))),
            &[200],
            &[(10, 30), (45, 60)],
        );
        call.run(200);
        assert_eq!(call.caller_starts(), [(40, true)], "{:?}", call.events);
        let reactions = call.find(|e| matches!(e, ConversationEvent::BargeIn { .. }));
        assert_eq!(
            reactions,
            [(
                60 + 45,
                ConversationEvent::BargeIn {
                    turn: 0,
                    reaction_ms: 400.0
                }
            )],
            "reported once the greeting is over"
        );
    }
}

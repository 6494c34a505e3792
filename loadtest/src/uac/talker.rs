//! When the simulated caller speaks: turn after turn, each one once the far end has answered the
//! previous one (or failed to, within a timeout), never over the far end's own speech unless it
//! talks for too long — or, in a barge-in scenario, on purpose: a set time into each reply, so the
//! far end's reaction to being interrupted can be measured. Whether the far end still holds the
//! floor, and when its turn is over, is [`FarEndTurns`](super::far_end::FarEndTurns)' call: a
//! pause shorter than its silence (a comma) does not end the turn. With `await_greeting`
//! (`freya call`) the far end's first words are awaited like a reply before the first turn.
//! Sans-IO: the media task asks it for one 20 ms frame at a time and tells it what the far end
//! is doing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{Utterance, FRAME_SAMPLES};

/// Timing of a caller's turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TalkerConfig {
    /// Wait after the call is answered before the first turn (a greeting may play meanwhile).
    pub first_turn_after: Duration,
    /// How long to wait for a reply to a turn before going on without one, and how long a reply
    /// may go on from its start before the caller speaks over it.
    pub reply_timeout: Duration,
    /// Pause between the end of the far end's reply and the caller's next turn.
    pub pause_after_reply: Duration,
    /// Interrupt each reply this long after it started, with the next turn (barge-in); `None`
    /// waits for the reply to end.
    pub barge_in_after: Option<Duration>,
    /// The far end's turn is over once it has been quiet this long after speaking; a shorter
    /// pause (a comma) is part of its turn.
    pub far_end_silence: Duration,
    /// Await the far end's greeting like a reply before the first turn (and, with
    /// `barge_in_after`, interrupt it); `first_turn_after` is then how long a greeting may take
    /// to begin before the caller speaks first.
    pub await_greeting: bool,
}

impl Default for TalkerConfig {
    fn default() -> Self {
        Self {
            first_turn_after: Duration::from_millis(500),
            reply_timeout: Duration::from_secs(5),
            pause_after_reply: Duration::from_millis(400),
            barge_in_after: None,
            // The onset detector's own silence: the load tester answers promptly.
            far_end_silence: Duration::from_millis(100),
            await_greeting: false,
        }
    }
}

/// What a frame did to the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkerEvent {
    /// Turn `n` (from 0) began with this frame, sent at `at`; `over_far_end` when it was spoken
    /// over the far end on purpose (a barge-in).
    TurnStarted {
        /// The turn, from 0.
        turn: usize,
        /// When its first frame was sent.
        at: Instant,
        /// Whether it interrupts the far end.
        over_far_end: bool,
    },
    /// Turn `n` ended with this frame, sent at `at`.
    TurnEnded(usize, Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Silent until `until`, and longer while the far end holds the floor, but not past
    /// `hard_until`.
    Waiting {
        until: Instant,
        hard_until: Instant,
    },
    Speaking {
        turn: usize,
        pos: usize,
    },
    /// Awaiting the far end: a reply to the turn just spoken or, before the first turn with
    /// `await_greeting`, its greeting. Past `deadline` the caller speaks regardless.
    AwaitReply {
        deadline: Instant,
        heard: bool,
        /// When to interrupt the reply that is playing (barge-in scenarios).
        barge_in_at: Option<Instant>,
    },
    Done,
}

/// The caller's side of the conversation.
#[derive(Debug, Clone)]
pub struct Talker {
    turns: Arc<[Utterance]>,
    config: TalkerConfig,
    state: State,
    next_turn: usize,
}

impl Talker {
    /// A caller that will say `turns`, starting from the answer at `answered`.
    pub fn new(turns: Arc<[Utterance]>, config: TalkerConfig, answered: Instant) -> Self {
        let until = answered + config.first_turn_after;
        let state = if config.await_greeting {
            State::AwaitReply {
                deadline: until,
                heard: false,
                barge_in_at: None,
            }
        } else {
            State::Waiting {
                until,
                hard_until: until + config.reply_timeout,
            }
        };
        Self {
            turns,
            config,
            state,
            next_turn: 0,
        }
    }

    /// Has every turn been spoken (and its reply awaited)?
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Is the caller speaking now?
    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// The far end began replying, at `at`, to the turn that just ended; the reply then has
    /// `reply_timeout` from its start before the caller speaks over it.
    pub fn reply_heard(&mut self, at: Instant) {
        self.hear(at);
    }

    /// The far end began a turn at `at`. Before the first turn, with `await_greeting`, that is its
    /// greeting: awaited like a reply, and given `reply_timeout` from here to finish.
    pub fn far_end_started(&mut self, at: Instant) {
        if self.next_turn == 0 {
            self.hear(at);
        }
    }

    /// What the caller awaits has begun at `at`: it may be interrupted `barge_in_after` from
    /// here (unless it is the last one), and talked over after `reply_timeout`.
    fn hear(&mut self, at: Instant) {
        let more_turns = self.next_turn < self.turns.len();
        let TalkerConfig {
            reply_timeout,
            barge_in_after,
            ..
        } = self.config;
        if let State::AwaitReply {
            deadline,
            heard: heard @ false,
            barge_in_at,
        } = &mut self.state
        {
            *heard = true;
            *deadline = (*deadline).max(at + reply_timeout);
            if more_turns {
                *barge_in_at = barge_in_after.map(|after| at + after);
            }
        }
    }

    /// The far end's turn is over, its last speech ending at `last_speech`; after a reply (or
    /// the awaited greeting), the next turn follows `pause_after_reply` after that.
    pub fn far_end_finished(&mut self, last_speech: Instant) {
        if let State::AwaitReply { heard: true, .. } = self.state {
            let until = last_speech + self.config.pause_after_reply;
            self.state = State::Waiting {
                until,
                hard_until: until + self.config.reply_timeout,
            };
        }
    }

    /// Fills `out` with the caller's next 20 ms (speech or silence) for a frame sent at `now`;
    /// `far_end_holds_floor` says whether the far end is within a turn.
    pub fn next_frame(
        &mut self,
        now: Instant,
        far_end_holds_floor: bool,
        out: &mut [i16; FRAME_SAMPLES],
    ) -> Option<TalkerEvent> {
        out.fill(0);
        let mut event = None;
        match self.state {
            State::Waiting { until, hard_until } => {
                if now >= until && (!far_end_holds_floor || now >= hard_until) {
                    if self.next_turn >= self.turns.len() {
                        self.state = State::Done;
                        return None;
                    }
                    event = Some(self.start_turn(now, false));
                } else {
                    return None;
                }
            }
            State::AwaitReply {
                deadline,
                barge_in_at,
                ..
            } => {
                if barge_in_at.is_some_and(|at| now >= at) && far_end_holds_floor {
                    event = Some(self.start_turn(now, true));
                } else {
                    if now >= deadline {
                        self.state = State::Waiting {
                            until: now,
                            hard_until: now,
                        };
                    }
                    return None;
                }
            }
            State::Speaking { .. } | State::Done => {}
        }
        if let State::Speaking { turn, pos } = &mut self.state {
            let samples = self.turns.get(*turn).map(|u| &u.samples[..]).unwrap_or(&[]);
            let chunk = samples.get(*pos..).unwrap_or(&[]);
            let n = chunk.len().min(FRAME_SAMPLES);
            out[..n].copy_from_slice(&chunk[..n]);
            *pos += n;
            if *pos >= samples.len() {
                let ended = *turn;
                self.state = State::AwaitReply {
                    deadline: now + self.config.reply_timeout,
                    heard: false,
                    barge_in_at: None,
                };
                // A one-frame turn both starts and ends here; the end matters more.
                return Some(TalkerEvent::TurnEnded(ended, now));
            }
        }
        event
    }

    /// Begins the next turn with the frame sent at `now`.
    fn start_turn(&mut self, now: Instant, over_far_end: bool) -> TalkerEvent {
        let turn = self.next_turn;
        self.state = State::Speaking { turn, pos: 0 };
        self.next_turn += 1;
        TalkerEvent::TurnStarted {
            turn,
            at: now,
            over_far_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(20);

    fn started(turn: usize, at: Instant, over_far_end: bool) -> TalkerEvent {
        TalkerEvent::TurnStarted {
            turn,
            at,
            over_far_end,
        }
    }

    #[test]
    fn turns_follow_replies_or_time_out() {
        let t0 = Instant::now();
        let turns: Arc<[Utterance]> = vec![Utterance::tone(100), Utterance::tone(40)].into();
        let config = TalkerConfig {
            first_turn_after: F * 2,
            reply_timeout: F * 10,
            pause_after_reply: F * 3,
            barge_in_after: None,
            ..TalkerConfig::default()
        };
        let mut talker = Talker::new(turns, config, t0);
        let events = run(&mut talker, t0, 60, |i, talker| {
            if i == 12 {
                talker.reply_heard(t0 + F * i);
            }
            if i == 15 {
                talker.far_end_finished(t0 + F * i);
            }
            false
        });
        assert_eq!(
            events,
            [
                (2, started(0, t0 + F * 2, false)),
                (6, TalkerEvent::TurnEnded(0, t0 + F * 6)),
                (18, started(1, t0 + F * 18, false)),
                (19, TalkerEvent::TurnEnded(1, t0 + F * 19)),
            ]
        );
        assert!(talker.is_done(), "no reply to turn 1: timed out, then done");
    }

    #[test]
    fn a_long_reply_has_the_reply_timeout_from_its_start_before_it_is_talked_over() {
        let t0 = Instant::now();
        let mut talker = prompt_talker(t0, &[40, 40], F * 10, None);
        // The reply begins 6 frames after the turn and never stops.
        let events = run(&mut talker, t0, 30, reply_from(t0, 8));
        assert_eq!(events[1], (2, TalkerEvent::TurnEnded(0, t0 + F * 2)));
        // Not 10 frames after the turn (12), but 10 after the reply began; spoken the frame after.
        assert_eq!(events[2], (19, started(1, t0 + F * 19, false)));
    }

    #[test]
    fn the_caller_does_not_start_over_the_far_end_until_the_hard_limit() {
        let t0 = Instant::now();
        let mut talker = prompt_talker(t0, &[100], F * 5, None);
        let mut buf = [0i16; FRAME_SAMPLES];
        let first = (0..20u32)
            .find(|&i| talker.next_frame(t0 + F * i, true, &mut buf).is_some())
            .unwrap();
        assert_eq!(first, 6);
        assert!(buf.iter().any(|&s| s != 0));
    }

    #[test]
    fn a_barge_in_caller_speaks_over_each_reply_after_the_set_delay() {
        let t0 = Instant::now();
        let mut talker = prompt_talker(t0, &[40, 40], F * 50, Some(F * 5));
        // The far end replies from frame 10 and keeps talking.
        let events = run(&mut talker, t0, 40, reply_from(t0, 10));
        assert_eq!(
            events,
            [
                (1, started(0, t0 + F, false)),
                (2, TalkerEvent::TurnEnded(0, t0 + F * 2)),
                (15, started(1, t0 + F * 15, true)),
                (16, TalkerEvent::TurnEnded(1, t0 + F * 16)),
            ]
        );
    }

    #[test]
    fn the_last_reply_is_not_interrupted() {
        let t0 = Instant::now();
        let mut talker = prompt_talker(t0, &[40], F * 50, Some(F * 2));
        let events = run(&mut talker, t0, 30, reply_from(t0, 5));
        let started_turns = events
            .iter()
            .filter(|(_, e)| matches!(e, TalkerEvent::TurnStarted { .. }))
            .count();
        assert_eq!(started_turns, 1);
    }

    /// The caller `freya call` sets up: it awaits the greeting (3 s at most for it to begin) and
    /// speaks as soon as the agent's turn is over.
    fn greeted(barge_in_after: Option<Duration>) -> TalkerConfig {
        TalkerConfig {
            first_turn_after: F * 150,
            reply_timeout: F * 400,
            pause_after_reply: Duration::ZERO,
            barge_in_after,
            far_end_silence: Duration::from_millis(900),
            await_greeting: true,
        }
    }

    /// A talker with `tones` turns of 40 frames each that awaits a greeting, started at `t0`.
    fn greeted_talker(t0: Instant, tones: usize, barge_in_after: Option<Duration>) -> Talker {
        let turns: Arc<[Utterance]> = vec![Utterance::tone(40); tones].into();
        Talker::new(turns, greeted(barge_in_after), t0)
    }

    /// A far end greeting from frame `start` until `last_word`, its turn over at frame `over`.
    fn greeting(
        t0: Instant,
        start: u32,
        last_word: u32,
        over: u32,
    ) -> impl FnMut(u32, &mut Talker) -> bool {
        move |i, talker| {
            if i == start {
                talker.far_end_started(t0 + F * start);
            }
            if i == over {
                talker.far_end_finished(t0 + F * last_word);
            }
            (start..over).contains(&i)
        }
    }

    /// A talker of tone turns `ms` long that speaks one frame in, pauses one frame after each
    /// reply, and waits `reply_timeout` for one; it barges in after `barge_in_after`, if set.
    fn prompt_talker(
        t0: Instant,
        ms: &[u32],
        reply_timeout: Duration,
        barge_in_after: Option<Duration>,
    ) -> Talker {
        let turns: Arc<[Utterance]> = ms.iter().map(|&ms| Utterance::tone(ms)).collect();
        let config = TalkerConfig {
            first_turn_after: F,
            reply_timeout,
            pause_after_reply: F,
            barge_in_after,
            ..TalkerConfig::default()
        };
        Talker::new(turns, config, t0)
    }

    /// A far end that starts replying in frame `start` and then keeps talking.
    fn reply_from(t0: Instant, start: u32) -> impl FnMut(u32, &mut Talker) -> bool {
        move |i, talker| {
            if i == start {
                talker.reply_heard(t0 + F * i);
            }
            i >= start
        }
    }

    /// Runs `talker` for `frames` frames from `t0`; `far_end(i, talker)` tells it what the far
    /// end did in frame `i` and returns whether the far end holds the floor.
    fn run(
        talker: &mut Talker,
        t0: Instant,
        frames: u32,
        mut far_end: impl FnMut(u32, &mut Talker) -> bool,
    ) -> Vec<(u32, TalkerEvent)> {
        let mut buf = [0i16; FRAME_SAMPLES];
        (0..frames)
            .filter_map(|i| {
                let floor = far_end(i, talker);
                talker
                    .next_frame(t0 + F * i, floor, &mut buf)
                    .map(|e| (i, e))
            })
            .collect()
    }

    #[test]
    fn an_awaited_greeting_is_heard_out_before_the_first_turn() {
        let t0 = Instant::now();
        let mut talker = greeted_talker(t0, 1, None);
        // The greeting runs from frame 10 to 60 (its turn over at 105); the floor is held
        // throughout, and the caller never speaks before its end.
        let events = run(&mut talker, t0, 120, greeting(t0, 10, 60, 105));
        assert_eq!(events[0], (105, started(0, t0 + F * 105, false)));
    }

    #[test]
    fn without_a_greeting_the_caller_speaks_first_after_first_turn_after() {
        let t0 = Instant::now();
        let mut talker = greeted_talker(t0, 1, None);
        let events = run(&mut talker, t0, 200, |_, _| false);
        // The wait runs out at frame 150; the turn starts with the next frame.
        assert_eq!(events[0], (151, started(0, t0 + F * 151, false)));
    }

    #[test]
    fn a_greeting_longer_than_the_wait_for_it_is_not_cut_short() {
        let t0 = Instant::now();
        let mut talker = greeted_talker(t0, 1, None);
        // It begins at frame 100 and talks until 300, well past the 150 frames allowed to begin.
        let events = run(&mut talker, t0, 400, greeting(t0, 100, 300, 345));
        assert_eq!(events[0].0, 345, "{events:?}");
    }

    #[test]
    fn a_barge_in_caller_cuts_into_the_greeting() {
        let t0 = Instant::now();
        let mut talker = greeted_talker(t0, 2, Some(F * 30));
        let events = run(&mut talker, t0, 60, |i, talker| {
            if i == 10 {
                talker.far_end_started(t0 + F * 10);
            }
            i >= 10
        });
        assert_eq!(events[0], (40, started(0, t0 + F * 40, true)));
    }
}

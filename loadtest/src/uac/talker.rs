//! When the simulated caller speaks: turn after turn, each one once the far end has answered the
//! previous one (or failed to, within a timeout), never over the far end's own speech unless it
//! talks for too long — or, in a barge-in scenario, on purpose: a set time into each reply, so the
//! far end's reaction to being interrupted can be measured. Sans-IO: the media task asks it for
//! one 20 ms frame at a time and tells it what the far end is doing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{Utterance, FRAME_SAMPLES};

/// Timing of a caller's turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TalkerConfig {
    /// Wait after the call is answered before the first turn (a greeting may play meanwhile).
    pub first_turn_after: Duration,
    /// How long to wait for a reply to a turn before going on without one.
    pub reply_timeout: Duration,
    /// Pause between the end of the far end's reply and the caller's next turn.
    pub pause_after_reply: Duration,
    /// Interrupt each reply this long after it started, with the next turn (barge-in); `None`
    /// waits for the reply to end.
    pub barge_in_after: Option<Duration>,
}

impl Default for TalkerConfig {
    fn default() -> Self {
        Self {
            first_turn_after: Duration::from_millis(500),
            reply_timeout: Duration::from_secs(5),
            pause_after_reply: Duration::from_millis(400),
            barge_in_after: None,
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
    /// Silent until `until`, and longer while the far end talks, but not past `hard_until`.
    Waiting {
        until: Instant,
        hard_until: Instant,
    },
    Speaking {
        turn: usize,
        pos: usize,
    },
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
        Self {
            turns,
            config,
            state: State::Waiting {
                until,
                hard_until: until + config.reply_timeout,
            },
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

    /// The far end began replying, at `at`, to the turn that just ended.
    pub fn reply_heard(&mut self, at: Instant) {
        let more_turns = self.next_turn < self.turns.len();
        if let State::AwaitReply {
            heard, barge_in_at, ..
        } = &mut self.state
        {
            *heard = true;
            if more_turns {
                *barge_in_at = self.config.barge_in_after.map(|after| at + after);
            }
        }
    }

    /// The far end went quiet at `at`; after a reply, the next turn follows a short pause.
    pub fn far_end_quiet(&mut self, at: Instant) {
        if let State::AwaitReply { heard: true, .. } = self.state {
            let until = at + self.config.pause_after_reply;
            self.state = State::Waiting {
                until,
                hard_until: until + self.config.reply_timeout,
            };
        }
    }

    /// Fills `out` with the caller's next 20 ms (speech or silence) for a frame sent at `now`.
    pub fn next_frame(
        &mut self,
        now: Instant,
        far_end_talking: bool,
        out: &mut [i16; FRAME_SAMPLES],
    ) -> Option<TalkerEvent> {
        out.fill(0);
        let mut event = None;
        match self.state {
            State::Waiting { until, hard_until } => {
                if now >= until && (!far_end_talking || now >= hard_until) {
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
                if barge_in_at.is_some_and(|at| now >= at) && far_end_talking {
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
        };
        let mut talker = Talker::new(turns, config, t0);
        let mut buf = [0i16; FRAME_SAMPLES];
        let mut events = Vec::new();
        for i in 0..60u32 {
            let now = t0 + F * i;
            if i == 12 {
                talker.reply_heard(now);
            }
            if i == 15 {
                talker.far_end_quiet(now);
            }
            if let Some(e) = talker.next_frame(now, false, &mut buf) {
                events.push((i, e));
            }
        }
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
    fn the_caller_does_not_start_over_the_far_end_until_the_hard_limit() {
        let t0 = Instant::now();
        let turns: Arc<[Utterance]> = vec![Utterance::tone(100)].into();
        let config = TalkerConfig {
            first_turn_after: F,
            reply_timeout: F * 5,
            pause_after_reply: F,
            barge_in_after: None,
        };
        let mut talker = Talker::new(turns, config, t0);
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
        let turns: Arc<[Utterance]> = vec![Utterance::tone(40), Utterance::tone(40)].into();
        let config = TalkerConfig {
            first_turn_after: F,
            reply_timeout: F * 50,
            pause_after_reply: F,
            barge_in_after: Some(F * 5),
        };
        let mut talker = Talker::new(turns, config, t0);
        let mut buf = [0i16; FRAME_SAMPLES];
        let mut events = Vec::new();
        for i in 0..40u32 {
            let now = t0 + F * i;
            // The far end replies from frame 10 and keeps talking.
            if i == 10 {
                talker.reply_heard(now);
            }
            if let Some(e) = talker.next_frame(now, i >= 10, &mut buf) {
                events.push((i, e));
            }
        }
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
        let turns: Arc<[Utterance]> = vec![Utterance::tone(40)].into();
        let config = TalkerConfig {
            first_turn_after: F,
            reply_timeout: F * 50,
            pause_after_reply: F,
            barge_in_after: Some(F * 2),
        };
        let mut talker = Talker::new(turns, config, t0);
        let mut buf = [0i16; FRAME_SAMPLES];
        let mut started_turns = 0;
        for i in 0..30u32 {
            let now = t0 + F * i;
            if i == 5 {
                talker.reply_heard(now);
            }
            if let Some(TalkerEvent::TurnStarted { .. }) = talker.next_frame(now, i >= 5, &mut buf)
            {
                started_turns += 1;
            }
        }
        assert_eq!(started_turns, 1);
    }
}

//! When the far end's turn is over. A voice agent pauses inside its own turn — espeak-ng leaves
//! 200–400 ms of silence at the comma in "Hello, thanks for calling" — and a caller who takes
//! every pause for the end of the turn talks over it. Here the far end's talk spurts are grouped
//! into turns: a turn opens with a run of loud frames and is over only once the far end has been
//! quiet for `silence` after its last loud frame. The [`Talker`](super::talker::Talker) waits
//! for that before it speaks, and `freya call` prints and transcribes the agent turn by turn.
//!
//! Sans-IO: the media session hands it each received frame's loudness (as the onset detector
//! judged it) with its arrival time, says when a reply to the caller began (a reply opens a new
//! turn even if the far end had not been quiet for long), and calls
//! [`FarEndTurns::handle_timeout`] on its 20 ms tick. Turns come out of
//! [`FarEndTurns::poll_event`]; nothing here sleeps or reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::onset::FRAME;

/// A far-end turn beginning or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarEndTurnEvent {
    /// Turn `turn` (from 0) began with the loud frame that arrived at `at`.
    Started {
        /// The far end's turn, from 0.
        turn: usize,
        /// Arrival of its first loud frame.
        at: Instant,
    },
    /// Turn `turn` is over: the far end has been quiet for the configured silence since
    /// `last_speech`, the end of its last loud frame.
    Ended {
        /// The far end's turn, from 0.
        turn: usize,
        /// Arrival of its first loud frame.
        started: Instant,
        /// The end of its last loud frame.
        last_speech: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between turns: quiet since the last one ended (or since the answer).
    Idle,
    /// Within turn `turn`, whose latest speech ended at `last_speech`.
    Open {
        turn: usize,
        started: Instant,
        last_speech: Instant,
    },
}

/// Groups the far end's speech into turns.
#[derive(Debug, Clone)]
pub struct FarEndTurns {
    /// Quiet this long after its last speech ends the far end's turn.
    silence: Duration,
    /// Loud frames in a row that count as speech (a single loud frame is a click).
    min_active_frames: u32,
    loud_run: u32,
    /// Arrival of the first frame of the current loud run.
    run_start: Option<Instant>,
    state: State,
    next_turn: usize,
    /// At most an `Ended` and a `Started` wait here between polls; allocated once.
    events: VecDeque<FarEndTurnEvent>,
}

impl FarEndTurns {
    /// A far end that has not spoken yet, whose turns end after `silence` of quiet; runs of
    /// `min_active_frames` loud frames are speech.
    pub fn new(silence: Duration, min_active_frames: u32) -> Self {
        Self {
            silence,
            min_active_frames: min_active_frames.max(1),
            loud_run: 0,
            run_start: None,
            state: State::Idle,
            next_turn: 0,
            events: VecDeque::with_capacity(4),
        }
    }

    /// Is the far end within a turn (talking, or in a pause shorter than the silence)?
    pub fn holds_floor(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Feeds one received frame: its arrival time, and whether it was loud.
    pub fn push_frame(&mut self, at: Instant, loud: bool) {
        // A turn whose silence ran out before this frame arrived is over first.
        self.handle_timeout(at);
        if !loud {
            self.loud_run = 0;
            return;
        }
        if self.loud_run == 0 {
            self.run_start = Some(at);
        }
        self.loud_run = self.loud_run.saturating_add(1);
        if self.loud_run < self.min_active_frames {
            return;
        }
        let speech_end = at + FRAME;
        match &mut self.state {
            State::Open { last_speech, .. } => *last_speech = speech_end.max(*last_speech),
            State::Idle => self.open(self.run_start.unwrap_or(at), speech_end),
        }
    }

    /// A reply to the caller began at `at` (the onset detector's reply onset, reported before the
    /// frame that completed it is pushed): it opens a new turn, ending one still open.
    pub fn reply_started(&mut self, at: Instant) {
        if let State::Open {
            turn,
            started,
            last_speech,
        } = self.state
        {
            if started >= at {
                // This spurt already opened the turn.
                return;
            }
            self.events.push_back(FarEndTurnEvent::Ended {
                turn,
                started,
                last_speech: last_speech.min(at),
            });
            self.state = State::Idle;
        }
        self.open(at, at + FRAME);
    }

    /// Ends the open turn if the far end has been quiet for the silence by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Open {
            turn,
            started,
            last_speech,
        } = self.state
        {
            if now >= last_speech + self.silence {
                self.events.push_back(FarEndTurnEvent::Ended {
                    turn,
                    started,
                    last_speech,
                });
                self.state = State::Idle;
            }
        }
    }

    /// When the open turn ends unless the far end speaks again.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Open { last_speech, .. } => Some(last_speech + self.silence),
            State::Idle => None,
        }
    }

    /// The next turn that began or ended, in order.
    pub fn poll_event(&mut self) -> Option<FarEndTurnEvent> {
        self.events.pop_front()
    }

    fn open(&mut self, at: Instant, last_speech: Instant) {
        let turn = self.next_turn;
        self.next_turn += 1;
        self.state = State::Open {
            turn,
            started: at,
            last_speech,
        };
        self.events.push_back(FarEndTurnEvent::Started { turn, at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = FRAME;

    /// Feeds `frames` (true = loud) one per 20 ms from `t0`, ticking at each; returns the events
    /// with the index of the frame during which each came out.
    fn feed(
        turns: &mut FarEndTurns,
        t0: Instant,
        frames: &[bool],
    ) -> Vec<(usize, FarEndTurnEvent)> {
        let mut out = Vec::new();
        for (i, &loud) in frames.iter().enumerate() {
            let at = t0 + F * i as u32;
            turns.push_frame(at, loud);
            turns.handle_timeout(at);
            while let Some(e) = turns.poll_event() {
                out.push((i, e));
            }
        }
        out
    }

    /// Frames by runs of one loudness: `(true, 20)` is 400 ms of speech.
    fn runs(runs: &[(bool, usize)]) -> Vec<bool> {
        runs.iter()
            .flat_map(|&(loud, n)| std::iter::repeat_n(loud, n))
            .collect()
    }

    #[test]
    fn comma_pause_shorter_than_agent_silence_does_not_end_the_agent_turn() {
        let t0 = Instant::now();
        let mut turns = FarEndTurns::new(Duration::from_millis(900), 2);
        // "Hello," (400 ms), a 360 ms comma pause, "thanks for calling" (1 s), then quiet.
        let audio = runs(&[(true, 20), (false, 18), (true, 50), (false, 60)]);
        let events = feed(&mut turns, t0, &audio);
        let last_word_end = t0 + F * 88;
        assert_eq!(
            events,
            [
                (1, FarEndTurnEvent::Started { turn: 0, at: t0 }),
                (
                    88 + 45,
                    FarEndTurnEvent::Ended {
                        turn: 0,
                        started: t0,
                        last_speech: last_word_end,
                    }
                ),
            ],
            "one turn, over 900 ms after the last word"
        );
    }

    #[test]
    fn a_pause_as_long_as_the_silence_ends_the_turn_and_speech_after_it_is_the_next() {
        let t0 = Instant::now();
        let mut turns = FarEndTurns::new(Duration::from_millis(300), 2);
        let audio = runs(&[(true, 10), (false, 20), (true, 10)]);
        let events = feed(&mut turns, t0, &audio);
        assert_eq!(
            events,
            [
                (1, FarEndTurnEvent::Started { turn: 0, at: t0 }),
                (
                    25,
                    FarEndTurnEvent::Ended {
                        turn: 0,
                        started: t0,
                        last_speech: t0 + F * 10,
                    }
                ),
                (
                    31,
                    FarEndTurnEvent::Started {
                        turn: 1,
                        at: t0 + F * 30,
                    }
                ),
            ]
        );
        assert!(turns.holds_floor());
    }

    #[test]
    fn a_click_in_a_pause_neither_opens_a_turn_nor_restarts_the_silence() {
        let t0 = Instant::now();
        let mut turns = FarEndTurns::new(Duration::from_millis(200), 2);
        let audio = runs(&[(false, 5), (true, 1), (false, 5)]);
        assert!(
            feed(&mut turns, t0, &audio).is_empty(),
            "a click is no turn"
        );

        let audio = runs(&[(true, 4), (false, 4), (true, 1), (false, 10)]);
        let t1 = t0 + F * 20;
        let events = feed(&mut turns, t1, &audio);
        assert_eq!(
            events[1],
            (
                14,
                FarEndTurnEvent::Ended {
                    turn: 0,
                    started: t1,
                    last_speech: t1 + F * 4,
                }
            )
        );
    }

    #[test]
    fn the_turn_ends_on_the_tick_even_when_no_more_audio_arrives() {
        let t0 = Instant::now();
        let mut turns = FarEndTurns::new(Duration::from_millis(900), 2);
        feed(&mut turns, t0, &runs(&[(true, 5)]));
        let due = t0 + F * 5 + Duration::from_millis(900);
        assert_eq!(turns.poll_timeout(), Some(due));
        turns.handle_timeout(due - Duration::from_millis(1));
        assert_eq!(turns.poll_event(), None);
        turns.handle_timeout(due);
        assert!(matches!(
            turns.poll_event(),
            Some(FarEndTurnEvent::Ended { turn: 0, .. })
        ));
        assert!(!turns.holds_floor());
        assert_eq!(turns.poll_timeout(), None);
    }

    #[test]
    fn a_reply_opens_a_new_turn_even_within_the_silence() {
        let t0 = Instant::now();
        let mut turns = FarEndTurns::new(Duration::from_millis(900), 2);
        // Interrupted: the agent stops after 200 ms; the caller's short turn ends and the
        // reply starts 500 ms after the agent fell silent.
        let audio = runs(&[(true, 10), (false, 25)]);
        feed(&mut turns, t0, &audio);
        let reply = t0 + F * 35;
        turns.push_frame(reply, true);
        turns.reply_started(reply);
        turns.push_frame(reply + F, true);
        let events: Vec<_> = std::iter::from_fn(|| turns.poll_event()).collect();
        assert_eq!(
            events,
            [
                FarEndTurnEvent::Ended {
                    turn: 0,
                    started: t0,
                    last_speech: t0 + F * 10,
                },
                FarEndTurnEvent::Started { turn: 1, at: reply },
            ]
        );
        // Reported again for a spurt that already opened its turn: nothing new.
        turns.reply_started(reply);
        assert_eq!(turns.poll_event(), None);
    }
}

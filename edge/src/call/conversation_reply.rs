//! One reply of the agent inside a [`Conversation`](super::Conversation): its model stream and
//! tool calls, the sentences it has sent to speech and where their audio sits in the playback
//! queue — which is what tells, at a barge-in, how much of it the caller heard.

use std::time::Instant;

use crate::llm::{SentenceSplitter, ToolCall};

use super::TurnClock;

/// What a reply is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplyKind {
    /// The model answers a caller turn.
    Answer,
    /// A fixed line: greeting, reprompt, apology.
    Fixed,
}

/// A sentence sent to speech.
#[derive(Debug, Clone)]
pub(super) struct Sentence {
    pub id: u64,
    pub text: String,
    /// Part of the reply's words for the history (not a filler, not already committed).
    pub in_history: bool,
    /// Playback position of its first sample, once audio arrived.
    pub start: Option<u64>,
    /// Playback position after its last sample so far.
    pub end: u64,
    /// Synthesis finished (or failed).
    pub done: bool,
    /// When its first sample went out to the caller.
    pub heard_from: Option<Instant>,
    /// When its last sample so far went out, and the playback position it ended at then.
    pub heard_to: Option<(Instant, u64)>,
}

impl Sentence {
    /// Played to the end, or finished without any audio: nothing more of it will be heard.
    fn settled(&self) -> bool {
        self.done && (self.start.is_none() || self.heard_to.is_some_and(|(_, end)| end == self.end))
    }
}

/// Words of the model written before its tool calls: committed to the history at once, but
/// recorded in the transcript only once played, dated by when the caller heard them.
#[derive(Debug, Clone)]
pub(super) struct WrittenLine {
    pub text: String,
    /// The sentences that speak it.
    pub sentences: Vec<u64>,
}

/// The agent's reply in progress.
pub(super) struct Reply {
    pub id: u64,
    pub kind: ReplyKind,
    /// The model stream in flight, if any.
    pub stream: Option<u64>,
    pub splitter: SentenceSplitter,
    /// Text of the current model round.
    pub round_text: String,
    pub rounds: u32,
    /// Tool calls of the current round, collected until it is done.
    pub pending_calls: Vec<ToolCall>,
    /// Customer tools running: call id, name, start.
    pub tools_running: Vec<(String, String, Instant)>,
    pub filler_at: Option<Instant>,
    /// When a finished sentence held back for the model's next word goes to speech anyway.
    pub flush_at: Option<Instant>,
    pub filler_said: bool,
    pub sentences: Vec<Sentence>,
    /// Hang up once the reply has been played, and why.
    pub hangup: Option<&'static str>,
    /// Transfer the call there once the reply has been played, and the model's call id of
    /// the `transfer_call` that asked (its result is rewritten if the transfer fails).
    pub transfer: Option<(String, String)>,
    /// A warm transfer's summary for the party (`Some("")` when warm without one).
    pub warm: Option<String>,
    /// Turn timing, until the first packet of the reply is out.
    pub clock: Option<TurnClock>,
    /// When the caller started hearing it.
    pub first_audio_at: Option<Instant>,
    /// Lines written before tool calls, waiting to be played for the transcript.
    pub written: Vec<WrittenLine>,
    /// The fallback model answered one of its rounds (recorded once per reply).
    pub fell_back: bool,
}

impl Reply {
    pub(super) fn new(id: u64, kind: ReplyKind, clock: Option<TurnClock>) -> Self {
        Self {
            id,
            kind,
            stream: None,
            splitter: SentenceSplitter::new(),
            round_text: String::new(),
            rounds: 0,
            pending_calls: Vec::new(),
            tools_running: Vec::new(),
            filler_at: None,
            flush_at: None,
            filler_said: false,
            sentences: Vec::new(),
            hangup: None,
            transfer: None,
            warm: None,
            clock,
            first_audio_at: None,
            written: Vec::new(),
            fell_back: false,
        }
    }

    /// Playback position where the reply's audio begins, once any has been queued.
    pub(super) fn audio_start(&self) -> Option<u64> {
        self.sentences.iter().find_map(|s| s.start)
    }

    /// The reply's words for the history, as planned.
    pub(super) fn history_text(&self) -> String {
        join(
            self.sentences
                .iter()
                .filter(|s| s.in_history)
                .map(|s| s.text.as_str()),
        )
    }

    /// The reply's words the caller heard, playback having consumed `played` samples: whole
    /// sentences played to the end, then the share of the words of the one cut off that matches
    /// the share of its audio played, marked with a dash.
    pub(super) fn heard_text(&self, played: u64) -> String {
        self.heard_of(played, |s| s.in_history)
    }

    /// As [`heard_text`](Self::heard_text), of the sentences `pick` chooses.
    pub(super) fn heard_of(&self, played: u64, pick: impl Fn(&Sentence) -> bool) -> String {
        let mut parts: Vec<String> = Vec::new();
        for s in &self.sentences {
            let Some(start) = s.start else { break };
            if played <= start {
                break;
            }
            if played >= s.end && s.done {
                if pick(s) {
                    parts.push(s.text.clone());
                }
                continue;
            }
            if pick(s) {
                let words: Vec<&str> = s.text.split_whitespace().collect();
                let len = s.end.saturating_sub(start).max(1);
                let share = (played - start).min(len) as f64 / len as f64;
                let n = (words.len() as f64 * share).floor() as usize;
                if n > 0 {
                    parts.push(format!("{}—", words[..n.min(words.len())].join(" ")));
                }
            }
            break;
        }
        join(parts.iter().map(String::as_str))
    }

    /// When the caller heard the sentences `pick` chooses: from the first sample of the first
    /// to the last sample of the last (`None` where nothing was heard yet).
    pub(super) fn heard_span(
        &self,
        pick: impl Fn(&Sentence) -> bool,
    ) -> (Option<Instant>, Option<Instant>) {
        let picked = || self.sentences.iter().filter(|s| pick(s));
        let from = picked().filter_map(|s| s.heard_from).min();
        let to = picked().filter_map(|s| s.heard_to.map(|(at, _)| at)).max();
        (from, to)
    }

    /// Notes which sentences playback reached at `position` (samples consumed) at `now`.
    pub(super) fn mark_played(&mut self, now: Instant, position: u64) {
        for s in &mut self.sentences {
            let Some(start) = s.start else { continue };
            if position > start {
                s.heard_from.get_or_insert(now);
            }
            let recorded = s.heard_to.is_some_and(|(_, end)| end == s.end);
            if position >= s.end && !recorded {
                s.heard_to = Some((now, s.end));
            }
        }
    }

    /// Whether every sentence of `line` has been played (or will give no audio).
    pub(super) fn line_settled(&self, line: &WrittenLine) -> bool {
        self.sentences
            .iter()
            .filter(|s| line.sentences.contains(&s.id))
            .all(Sentence::settled)
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::new();
    for part in parts {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(part);
    }
    text
}

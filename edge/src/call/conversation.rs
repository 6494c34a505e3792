//! The conversation of one call, sans-IO: what the agent says and when. The call task feeds it
//! turn events (from the [`TurnDetector`](crate::media::turn::TurnDetector)), transcripts, the
//! language model's streamed events, synthesized-audio progress, tool results and time, and
//! drains [`Action`]s: transcribe this turn, ask the model, speak this sentence, run this tool,
//! cancel this reply, hang up — plus [`ConversationEvent`]s for the call record.
//!
//! A reply's text is cut into sentences as the model writes and each is spoken as soon as it is
//! complete. Audio positions are counted in samples queued for playback, so at a barge-in the
//! conversation knows which sentences the caller heard (and how much of the one cut off), and the
//! history keeps only that. Tool calls go back to the model with their results; a slow tool gets
//! a filler line, a failing provider gets a spoken apology, and a silent caller a reprompt: the
//! caller never sits in dead air. Identifiers (turn, reply, stream, sentence) come from one
//! counter, so anything arriving for a cancelled reply is recognised as stale and ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::llm::{ChatMessage, ChatRequest, LlmError, LlmEvent, SentenceSplitter, ToolCall};
use crate::media::turn::TurnEvent;
use crate::speech::SttFailure;

#[path = "conversation_reply.rs"]
mod reply;

use reply::{Reply, ReplyKind, Sentence, WrittenLine};

/// Built-in tool that ends the call after the agent's last words.
pub const END_CALL_TOOL: &str = "end_call";
/// Built-in tool that transfers the call (SIP REFER) after the agent's last words.
pub const TRANSFER_CALL_TOOL: &str = "transfer_call";
/// Built-in tool that presses keys toward the far end (an IVR the agent navigates).
pub const SEND_DTMF_TOOL: &str = "send_dtmf";
/// Built-in tool, offered only inside a workflow, that hands the call back to the flow when one
/// of its exit conditions is met.
pub const EXIT_TOOL: &str = "leave_conversation";
/// Reprompts in a row, without an answer, before the agent gives up and hangs up.
const MAX_REPROMPTS: u32 = 2;

#[path = "conversation_api.rs"]
mod api;
#[path = "conversation_builtins.rs"]
mod builtins;
#[path = "conversation_flow.rs"]
mod flow;

pub use api::{Action, ConversationConfig, ConversationEvent, Lines, TurnLatency};

/// Timestamps of one turn, turned into a [`TurnLatency`] when the reply is first heard.
#[derive(Debug, Clone, Copy)]
struct TurnClock {
    speech_end: Instant,
    decided: Instant,
    stt: Option<Instant>,
    llm: Option<Instant>,
    tts: Option<Instant>,
}

/// The conversation state of one call.
pub struct Conversation {
    config: ConversationConfig,
    started: Instant,
    history: Vec<ChatMessage>,
    next_id: u64,
    /// The caller turns waiting for their transcripts, oldest first, and when their speech
    /// started/ended: a turn that ends while an earlier one is still being transcribed does
    /// not drop the earlier one's words.
    pending_turns: Vec<(u64, TurnClock, Instant)>,
    caller_speech_started: Option<Instant>,
    reply: Option<Reply>,
    /// Samples ever queued for playback (audio of every reply, in order).
    queued: u64,
    /// Samples consumed by playback so far (played, or flushed at a barge-in).
    played: u64,
    reprompt_at: Option<Instant>,
    reprompts: u32,
    hung_up: bool,
    /// A transfer was asked for and has not failed (yet): the `transfer_call` id that asked.
    transferring: Option<String>,
    /// The workflow exit the model declared met (index into `config.exits`).
    exit: Option<usize>,
    actions: VecDeque<Action>,
    events: VecDeque<ConversationEvent>,
}

impl Conversation {
    /// A conversation starting at `now`, with the system prompt as its first message.
    pub fn new(now: Instant, config: ConversationConfig) -> Self {
        let history = vec![ChatMessage::system(config.system_prompt.clone())];
        Self {
            config,
            started: now,
            history,
            next_id: 1,
            pending_turns: Vec::new(),
            caller_speech_started: None,
            reply: None,
            queued: 0,
            played: 0,
            reprompt_at: None,
            reprompts: 0,
            hung_up: false,
            transferring: None,
            exit: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The transcript the next request would carry.
    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    /// The workflow exit the model declared met, once it has (the call then ends this
    /// conversation with `Hangup { reason: "workflow_exit" }` after the last words).
    pub fn exit_requested(&self) -> Option<usize> {
        self.exit
    }

    /// Whether a reply is being prepared or spoken.
    pub fn replying(&self) -> bool {
        self.reply.is_some()
    }

    /// The call is answered: speak the greeting (or wait for the caller).
    pub fn start(&mut self, now: Instant) {
        match self.config.first_message.clone() {
            Some(text) if !text.trim().is_empty() => {
                self.begin_reply(ReplyKind::Fixed, None);
                self.say(&text, true);
                self.check_finished(now);
            }
            _ => self.arm_reprompt(now),
        }
    }

    /// A turn-taking event from the turn detector.
    pub fn on_turn(&mut self, now: Instant, event: TurnEvent) {
        match event {
            TurnEvent::SpeechStarted => {
                self.reprompt_at = None;
                self.caller_speech_started = Some(now);
                // The caller carries on before the answer was audible: answer the whole turn later.
                let inaudible = self
                    .reply
                    .as_ref()
                    .is_some_and(|r| r.kind == ReplyKind::Answer && r.audio_start().is_none());
                if inaudible {
                    self.interrupt(now, false);
                }
            }
            TurnEvent::BargeIn => {
                if self
                    .reply
                    .as_ref()
                    .is_some_and(|r| r.audio_start().is_some())
                {
                    self.interrupt(now, true);
                }
            }
            TurnEvent::EndOfTurn { silence_ms, .. } => {
                let turn = self.id();
                let silence = Duration::from_millis(u64::from(silence_ms));
                let speech_end = now.checked_sub(silence).unwrap_or(now);
                let clock = TurnClock {
                    speech_end,
                    decided: now,
                    stt: None,
                    llm: None,
                    tts: None,
                };
                let speech_start = self.caller_speech_started.take().unwrap_or(speech_end);
                self.pending_turns.push((turn, clock, speech_start));
                self.actions.push_back(Action::Transcribe { turn });
            }
        }
    }

    /// The transcript of caller turn `turn` (or why there is none).
    pub fn on_transcript(&mut self, now: Instant, turn: u64, result: Result<String, SttFailure>) {
        let Some(at) = self.pending_turns.iter().position(|(t, ..)| *t == turn) else {
            return;
        };
        let (_, mut clock, speech_start) = self.pending_turns.remove(at);
        clock.stt = Some(now);
        let text = match result {
            Ok(text) => text.trim().to_string(),
            Err(failure) => {
                self.events.push_back(ConversationEvent::ProviderFailed {
                    stage: "stt",
                    error: failure.detail,
                });
                match failure.missing_package {
                    Some(package) => {
                        let line = self
                            .config
                            .lines
                            .recogniser_missing
                            .replace("{package}", package);
                        self.say_fixed(now, &line);
                    }
                    None => self.apologize(now),
                }
                return;
            }
        };
        if text.is_empty() {
            // Noise, a cough: nothing new to answer. But the words of an earlier turn whose
            // reply was cancelled when the caller carried on are still owed an answer.
            if self.reply.is_none() && self.pending_turns.is_empty() {
                if self.caller_unanswered() {
                    self.begin_reply(ReplyKind::Answer, Some(clock));
                    self.request_completion();
                } else {
                    self.arm_reprompt(now);
                }
            }
            return;
        }
        self.reprompts = 0;
        self.events.push_back(ConversationEvent::Transcript {
            role: "caller",
            text: text.clone(),
            start_ms: self.offset(speech_start),
            end_ms: self.offset(clock.speech_end),
            interrupted: false,
        });
        if self.reply.is_some() {
            // Barge-in disabled and the agent still talks: settle it before answering.
            self.interrupt(now, true);
        }
        // The event keeps the words (the control plane redacts what it stores).
        let text = self.config.for_model(text);
        match self.history.last_mut() {
            Some(ChatMessage::User { content }) => {
                content.push(' ');
                content.push_str(&text);
            }
            _ => self.history.push(ChatMessage::user(text)),
        }
        if !self.pending_turns.is_empty() {
            // A later turn is still being transcribed: its transcript answers both.
            return;
        }
        self.begin_reply(ReplyKind::Answer, Some(clock));
        self.request_completion();
    }

    /// Whether the caller's last words have had no reply the caller heard any of (the history
    /// ends with them).
    fn caller_unanswered(&self) -> bool {
        matches!(self.history.last(), Some(ChatMessage::User { .. }))
    }

    /// One item of model stream `stream`.
    pub fn on_llm(&mut self, now: Instant, stream: u64, item: Result<LlmEvent, LlmError>) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.stream != Some(stream) {
            return;
        }
        match item {
            Ok(LlmEvent::Token(token)) => {
                if let Some(clock) = reply.clock.as_mut() {
                    clock.llm.get_or_insert(now);
                }
                reply.round_text.push_str(&token);
                let sentences = reply.splitter.push(&token);
                let flush = self.config.sentence_flush;
                reply.flush_at =
                    (!flush.is_zero() && !reply.splitter.pending().is_empty()).then(|| now + flush);
                for sentence in sentences {
                    self.say(&sentence, true);
                }
            }
            Ok(LlmEvent::ToolCall {
                id,
                name,
                arguments,
            }) => {
                if let Some(clock) = reply.clock.as_mut() {
                    clock.llm.get_or_insert(now);
                }
                reply.pending_calls.push(ToolCall {
                    id,
                    name,
                    arguments,
                });
            }
            Ok(LlmEvent::FellBack(notice)) => {
                // A tool round may fall back again; the record says it once per turn.
                if !std::mem::replace(&mut reply.fell_back, true) {
                    self.events
                        .push_back(ConversationEvent::LlmFellBack(notice));
                }
            }
            Ok(LlmEvent::Done { .. }) => {
                reply.stream = None;
                reply.flush_at = None;
                if let Some(rest) = reply.splitter.finish() {
                    self.say(&rest, true);
                }
                self.finish_round(now);
            }
            Err(LlmError::Cancelled) => {}
            Err(error) => {
                reply.stream = None;
                reply.flush_at = None;
                let _ = reply.splitter.finish();
                reply.pending_calls.clear();
                self.events.push_back(ConversationEvent::ProviderFailed {
                    stage: "llm",
                    error: error.to_string(),
                });
                let apology = self.config.lines.apology.clone();
                self.say(&apology, true);
                self.check_finished(now);
            }
        }
    }

    /// The result of tool call `call_id` of `reply` (its text for the model, or an error).
    pub fn on_tool_result(
        &mut self,
        now: Instant,
        reply_id: u64,
        call_id: &str,
        result: Result<String, String>,
    ) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.id != reply_id {
            return;
        }
        let Some(at) = reply
            .tools_running
            .iter()
            .position(|(id, ..)| id == call_id)
        else {
            return;
        };
        let (id, name, started) = reply.tools_running.remove(at);
        let duration_ms = millis(now.saturating_duration_since(started));
        let (content, error) = match result {
            Ok(text) => (text, None),
            Err(error) => (format!("error: {error}"), Some(error)),
        };
        self.events.push_back(ConversationEvent::Tool {
            name,
            error,
            duration_ms,
        });
        let content = self.config.for_model(content);
        self.history.push(ChatMessage::tool_result(id, content));
        if reply.tools_running.is_empty() {
            reply.filler_at = None;
            self.request_completion();
        }
    }

    /// `samples` of synthesized audio arrived for `sentence`: returns whether to queue them for
    /// playback (audio of a cancelled reply is dropped).
    pub fn on_audio(&mut self, now: Instant, reply_id: u64, sentence: u64, samples: usize) -> bool {
        let Some(reply) = self.reply.as_mut() else {
            return false;
        };
        if reply.id != reply_id {
            return false;
        }
        let Some(s) = reply.sentences.iter_mut().find(|s| s.id == sentence) else {
            return false;
        };
        s.start.get_or_insert(self.queued);
        self.queued += samples as u64;
        s.end = self.queued;
        if let Some(clock) = reply.clock.as_mut() {
            clock.tts.get_or_insert(now);
        }
        true
    }

    /// Synthesis of `sentence` ended (`error` if it failed and nothing more will come).
    pub fn on_speech_done(
        &mut self,
        now: Instant,
        reply_id: u64,
        sentence: u64,
        error: Option<String>,
    ) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.id != reply_id {
            return;
        }
        if let Some(s) = reply.sentences.iter_mut().find(|s| s.id == sentence) {
            s.done = true;
        }
        if let Some(error) = error {
            self.events.push_back(ConversationEvent::ProviderFailed {
                stage: "tts",
                error,
            });
        }
        self.check_finished(now);
    }

    /// Playback has consumed `position` samples of everything ever queued (played or flushed).
    pub fn on_played(&mut self, now: Instant, position: u64) {
        if position == self.played {
            return;
        }
        self.played = position;
        self.record_played_lines(now);
        if let Some(reply) = self.reply.as_mut() {
            if reply.audio_start().is_some_and(|start| position > start) {
                reply.first_audio_at.get_or_insert(now);
                if let Some(clock) = reply.clock {
                    reply.clock = None;
                    let since = |t: Option<Instant>| {
                        t.map(|t| millis(t.saturating_duration_since(clock.speech_end)))
                    };
                    self.events
                        .push_back(ConversationEvent::Latency(TurnLatency {
                            endpointing_ms: millis(
                                clock.decided.saturating_duration_since(clock.speech_end),
                            ),
                            stt_ms: since(clock.stt),
                            llm_first_token_ms: since(clock.llm),
                            tts_first_byte_ms: since(clock.tts),
                            first_rtp_ms: since(Some(now)),
                        }));
                }
            }
        }
        self.check_finished(now);
    }

    /// Time passed: speak a finished sentence the model paused after, reprompt a silent
    /// caller, fill a slow tool's silence.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(reply) = self.reply.as_mut() {
            if reply.flush_at.is_some_and(|at| now >= at) {
                reply.flush_at = None;
                if let Some(sentence) = reply.splitter.flush_idle() {
                    self.say(&sentence, true);
                }
            }
        }
        if let Some(reply) = self.reply.as_mut() {
            if reply.filler_at.is_some_and(|at| now >= at) {
                reply.filler_at = None;
                let filler = self.config.lines.filler.clone();
                self.say(&filler, false);
            }
        }
        if self.reprompt_at.is_some_and(|at| now >= at) && self.reply.is_none() {
            self.reprompt_at = None;
            self.reprompts += 1;
            self.begin_reply(ReplyKind::Fixed, None);
            if self.reprompts > MAX_REPROMPTS {
                let line = self.config.lines.silence_goodbye.clone();
                self.say(&line, true);
                if let Some(reply) = self.reply.as_mut() {
                    reply.hangup = Some("silence");
                }
            } else {
                self.events.push_back(ConversationEvent::Reprompt);
                let line = self.config.lines.reprompt.clone();
                self.say(&line, true);
            }
        }
    }

    /// The caller took the call off hold: a pending reprompt waits its whole time again from
    /// `now` (the hold was not the caller's silence).
    pub fn resume_after_hold(&mut self, now: Instant) {
        if self.reprompt_at.is_some() {
            self.arm_reprompt(now);
        }
    }

    /// The transfer asked for with [`Action::Transfer`] failed for `reason` (the SIP side's
    /// words, e.g. `the transfer target answered 486 Busy Here`): the call goes on, and the
    /// model learns it as the `transfer_call` result and answers in context. Only when a reply
    /// is already under way (the caller spoke meanwhile) does the agent say the fixed line.
    pub fn on_transfer_failed(&mut self, now: Instant, reason: &str) {
        let Some(call_id) = self.transferring.take() else {
            return;
        };
        let result = builtins::transfer_failure(reason);
        let told = self.history.iter_mut().rev().find_map(|m| match m {
            ChatMessage::Tool {
                call_id: id,
                content,
            } if *id == call_id => Some(content),
            _ => None,
        });
        // The call's result is always in the history (committed with the call); were it not,
        // a lone tool message would be refused by the model's API.
        if let Some(content) = told {
            *content = result;
        }
        if self.reply.is_none() {
            self.begin_reply(ReplyKind::Answer, None);
            self.request_completion();
            return;
        }
        let line = self.config.lines.transfer_failed.clone();
        self.say(&line, true);
        self.check_finished(now);
    }

    /// Says `text` as a fixed line, after whatever is being said (a warm transfer's summary for
    /// the party it reaches); not kept in the history, which is the conversation with the caller.
    pub fn announce(&mut self, now: Instant, text: &str) {
        if self.reply.is_none() {
            self.begin_reply(ReplyKind::Fixed, None);
        }
        self.say(text, false);
        self.check_finished(now);
    }

    /// The call is ending (the caller hung up, the maximum duration, a transfer...): the reply
    /// being spoken is recorded as far as the caller heard it, marked interrupted when cut,
    /// like a barge-in. Its provider work is left for the caller to close.
    pub fn end(&mut self, now: Instant) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        self.record_written(now, &reply, true);
        let heard = reply.heard_text(self.played);
        let cut = heard != reply.history_text();
        self.commit(now, &reply, heard, cut);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reply = self.reply.as_ref();
        let filler = reply.and_then(|r| r.filler_at);
        let flush = reply.and_then(|r| r.flush_at);
        [filler, flush, self.reprompt_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the record.
    pub fn poll_event(&mut self) -> Option<ConversationEvent> {
        self.events.pop_front()
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn offset(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.started))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "conversation_builtins_tests.rs"]
mod builtins_tests;
#[cfg(test)]
#[path = "conversation_fallback_tests.rs"]
mod fallback_tests;
#[cfg(test)]
#[path = "conversation_hold_tests.rs"]
mod hold_tests;
#[cfg(test)]
#[path = "conversation_privacy_tests.rs"]
mod privacy_tests;
#[cfg(test)]
#[path = "conversation_tests.rs"]
pub(super) mod tests;

//! How a reply runs its course: a reprompt armed for a silent caller, a reply begun (an answer,
//! an apology, a filler, a greeting), a completion requested from the model, a round finished
//! (tool calls or the last sentence), an interruption by the caller, and what is committed to the
//! history — only what the caller heard.

use std::time::Instant;

use super::*;
use crate::llm::ToolDefinition;

impl Conversation {
    pub(super) fn arm_reprompt(&mut self, now: Instant) {
        self.reprompt_at = self.config.reprompt_after.map(|after| now + after);
    }

    pub(super) fn begin_reply(&mut self, kind: ReplyKind, clock: Option<TurnClock>) {
        self.reprompt_at = None;
        let id = self.id();
        self.reply = Some(Reply::new(id, kind, clock));
    }

    pub(super) fn apologize(&mut self, now: Instant) {
        let line = self.config.lines.apology.clone();
        self.say_fixed(now, &line);
    }

    /// Says a fixed `line` (not the model's), in the current reply or a new one.
    pub(super) fn say_fixed(&mut self, now: Instant, line: &str) {
        if self.reply.is_none() {
            self.begin_reply(ReplyKind::Fixed, None);
        }
        self.say(line, true);
        self.check_finished(now);
    }

    /// Queues a sentence of the current reply for synthesis.
    pub(super) fn say(&mut self, text: &str, in_history: bool) {
        let id = self.id();
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        reply.sentences.push(Sentence {
            id,
            text: text.to_string(),
            in_history,
            start: None,
            end: self.queued,
            done: false,
            heard_from: None,
            heard_to: None,
        });
        self.actions.push_back(Action::Speak {
            reply: reply.id,
            sentence: id,
            text: text.to_string(),
        });
    }

    pub(super) fn request_completion(&mut self) {
        let stream = self.id();
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        reply.rounds += 1;
        reply.stream = Some(stream);
        reply.splitter = SentenceSplitter::new();
        reply.flush_at = None;
        reply.round_text.clear();
        let mut tools = self.config.tools.clone();
        tools.extend(builtins::definitions(&self.config.transfer_destinations));
        if !self.config.exits.is_empty() {
            let conditions: Vec<String> = self
                .config
                .exits
                .iter()
                .enumerate()
                .map(|(i, when)| format!("{i}: the caller {when}"))
                .collect();
            tools.push(ToolDefinition {
                name: EXIT_TOOL.into(),
                description: format!(
                    "Hand the caller on to the next step of the call after your last words, when one of these holds: {}",
                    conditions.join("; ")
                ),
                parameters: serde_json::json!({
                    "type": "object",
                    "properties": {"exit": {"type": "integer", "minimum": 0,
                        "maximum": self.config.exits.len() - 1,
                        "description": "The number of the condition that holds"}},
                    "required": ["exit"]
                }),
            });
        }
        let mut request = ChatRequest::new(self.config.model.clone(), self.history.clone());
        request.temperature = self.config.temperature;
        request.max_tokens = self.config.max_tokens;
        request.tools = tools;
        self.actions.push_back(Action::Complete {
            reply: reply.id,
            stream,
            request,
        });
    }

    /// The model finished a round: run its tool calls, or let the reply play out.
    pub(super) fn finish_round(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if reply.pending_calls.is_empty() {
            let said = reply.round_text.to_lowercase();
            if reply.hangup.is_none()
                && self
                    .config
                    .end_call_phrases
                    .iter()
                    .any(|p| !p.is_empty() && said.contains(p.as_str()))
            {
                reply.hangup = Some("end_call_phrase");
            }
            self.check_finished(now);
            return;
        }
        let calls = std::mem::take(&mut reply.pending_calls);
        // The round's words are committed as written: the tool results must follow them. The
        // transcript records them once played, dated by when the caller heard them.
        let mut spoken = Vec::new();
        for s in reply.sentences.iter_mut() {
            if s.in_history {
                spoken.push(s.id);
            }
            s.in_history = false;
        }
        let said = reply.round_text.trim().to_string();
        if !said.is_empty() {
            reply.written.push(WrittenLine {
                text: said.clone(),
                sentences: spoken,
            });
        }
        self.history.push(ChatMessage::Assistant {
            content: said,
            tool_calls: calls.clone(),
        });
        let mut needs_model = false;
        for call in calls {
            let customer = self.config.tools.iter().any(|t| t.name == call.name);
            let result = match call.name.as_str() {
                END_CALL_TOOL => {
                    reply.hangup = Some("end_call_tool");
                    Some("The call will end after your last words.")
                }
                EXIT_TOOL if !self.config.exits.is_empty() => {
                    let exit = call
                        .arguments
                        .get("exit")
                        .and_then(serde_json::Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| *n < self.config.exits.len());
                    match exit {
                        Some(n) => {
                            self.exit = Some(n);
                            reply.hangup = Some("workflow_exit");
                            Some("The caller will be handed on after your last words.")
                        }
                        None => {
                            needs_model = true;
                            Some("error: `exit` must be the number of one of the conditions")
                        }
                    }
                }
                _ if customer => None,
                TRANSFER_CALL_TOOL => {
                    match builtins::transfer_destination(
                        &self.config.transfer_destinations,
                        &call.arguments,
                    ) {
                        Ok(_) if self.transferring.is_some() => {
                            Some("error: a transfer is already in progress")
                        }
                        Ok(destination) if reply.hangup.is_none() => {
                            reply.transfer = Some((destination, call.id.clone()));
                            reply.warm = builtins::warm_whisper(&call.arguments);
                            Some(match reply.warm {
                                Some(_) => "Dialling now; the caller stays with you until they answer. Tell the caller to hold on.",
                                None => "The call is being transferred now. Say nothing more.",
                            })
                        }
                        Ok(_) => Some("error: the call is already ending"),
                        Err(error) => {
                            needs_model = true;
                            Some(error)
                        }
                    }
                }
                SEND_DTMF_TOOL if !self.config.sends_digits => {
                    needs_model = true;
                    self.events.push_back(ConversationEvent::Tool {
                        name: SEND_DTMF_TOOL.into(),
                        error: Some("digits cannot be sent on this call".into()),
                        duration_ms: 0,
                    });
                    Some("error: digits cannot be sent on this call; tell the caller you cannot press keys")
                }
                SEND_DTMF_TOOL => {
                    needs_model = true;
                    match builtins::dtmf_digits(&call.arguments) {
                        Ok(digits) => {
                            self.actions.push_back(Action::SendDtmf { digits });
                            Some("The keys were pressed.")
                        }
                        Err(error) => Some(error),
                    }
                }
                _ => {
                    needs_model = true;
                    Some("error: there is no such tool")
                }
            };
            match result {
                Some(text) => self.history.push(ChatMessage::tool_result(call.id, text)),
                None => {
                    reply
                        .tools_running
                        .push((call.id.clone(), call.name.clone(), now));
                    self.actions.push_back(Action::RunTool {
                        reply: reply.id,
                        call,
                    });
                }
            }
        }
        if !reply.tools_running.is_empty() {
            reply.filler_at = (!reply.filler_said).then(|| now + self.config.filler_after);
            reply.filler_said = true;
        } else if needs_model && reply.rounds < self.config.max_tool_rounds {
            self.request_completion();
        } else {
            self.check_finished(now);
        }
    }

    /// Ends the current reply at a barge-in (or because the caller carried on speaking): stop
    /// its work, and keep in the history what the caller heard.
    pub(super) fn interrupt(&mut self, now: Instant, report: bool) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        self.actions
            .push_back(Action::CancelReply { reply: reply.id });
        for (id, name, _) in &reply.tools_running {
            self.history.push(ChatMessage::tool_result(
                id.clone(),
                format!("error: cancelled, the caller interrupted before `{name}` answered"),
            ));
        }
        self.record_written(now, &reply, true);
        let heard = reply.heard_text(self.played);
        let planned = reply.history_text();
        if report {
            self.events.push_back(ConversationEvent::BargeIn {
                heard_chars: heard.chars().count(),
                planned_chars: planned.chars().count(),
            });
        }
        // Everything queued is flushed: playback consumes it now.
        self.played = self.queued;
        self.commit(now, &reply, heard, true);
    }

    /// Finishes the reply once the model, its tools, its synthesis and its playback are done.
    pub(super) fn check_finished(&mut self, now: Instant) {
        let done = self.reply.as_ref().is_some_and(|r| {
            r.stream.is_none()
                && r.tools_running.is_empty()
                && r.sentences.iter().all(|s| s.done)
                && self.played >= self.queued
        });
        if !done {
            return;
        }
        let Some(reply) = self.reply.take() else {
            return;
        };
        self.record_written(now, &reply, false);
        let text = reply.history_text();
        self.commit(now, &reply, text, false);
        let warm = reply.warm.clone();
        match (reply.hangup, reply.transfer) {
            (Some(reason), _) if !self.hung_up => {
                self.hung_up = true;
                self.actions.push_back(Action::Hangup { reason });
            }
            (None, Some((destination, call_id))) if !self.hung_up => {
                // No reprompt while the transfer runs; a failure goes to the model when reported.
                self.transferring = Some(call_id);
                self.actions
                    .push_back(Action::Transfer { destination, warm });
            }
            _ => self.arm_reprompt(now),
        }
    }

    /// Commits the reply's last words to the history and the transcript, dated from the first
    /// sample of them the caller heard to the last (to `now` when cut off).
    pub(super) fn commit(&mut self, now: Instant, reply: &Reply, text: String, interrupted: bool) {
        if text.is_empty() {
            return;
        }
        let (from, to) = reply.heard_span(|s| s.in_history);
        let start = from.or(reply.first_audio_at).unwrap_or(now);
        let end = if interrupted { now } else { to.unwrap_or(now) };
        self.events.push_back(ConversationEvent::Transcript {
            role: "agent",
            text: text.clone(),
            start_ms: self.offset(start),
            end_ms: self.offset(end.max(start)),
            interrupted,
        });
        self.history.push(ChatMessage::assistant(text));
    }

    /// Records the reply's words written before its tool calls that have not been recorded:
    /// when the reply ends (`cut`: before it was all played), each as far as it was heard.
    pub(super) fn record_written(&mut self, now: Instant, reply: &Reply, cut: bool) {
        for line in &reply.written {
            let picked = |s: &Sentence| line.sentences.contains(&s.id);
            let heard = if cut && !reply.line_settled(line) {
                reply.heard_of(self.played, picked)
            } else {
                line.text.clone()
            };
            if heard.is_empty() {
                continue;
            }
            let interrupted = heard != line.text;
            let (from, to) = reply.heard_span(picked);
            let start = from.unwrap_or(now);
            let end = if interrupted { now } else { to.unwrap_or(now) };
            self.events.push_back(ConversationEvent::Transcript {
                role: "agent",
                text: heard,
                start_ms: self.offset(start),
                end_ms: self.offset(end.max(start)),
                interrupted,
            });
        }
    }

    /// Playback moved: records the lines written before tool calls that have been heard.
    pub(super) fn record_played_lines(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        reply.mark_played(now, self.played);
        let settled = reply
            .written
            .iter()
            .take_while(|line| reply.line_settled(line))
            .count();
        if settled == 0 {
            return;
        }
        let done: Vec<WrittenLine> = reply.written.drain(..settled).collect();
        let Some(reply) = self.reply.as_ref() else {
            return;
        };
        let mut lines = Vec::new();
        for line in done {
            let (from, to) = reply.heard_span(|s| line.sentences.contains(&s.id));
            let start = from.unwrap_or(now);
            lines.push(ConversationEvent::Transcript {
                role: "agent",
                text: line.text,
                start_ms: self.offset(start),
                end_ms: self.offset(to.unwrap_or(now).max(start)),
                interrupted: false,
            });
        }
        self.events.extend(lines);
    }
}

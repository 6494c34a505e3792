//! A workflow call's own voice: caller turns transcribed while a `gather` wants speech, lines
//! synthesized and played (each recorded in the transcript), and lines the flow's model writes.

use std::time::{Duration, Instant};

use freya_shared::model::call_payloads::{Extra, Transcript};
use freya_shared::model::CallEventData;

use super::{Flow, Speech, GENERATION_FALLBACK};
use crate::call::media::CallMedia;
use crate::call::pipeline::PipelineInput;
use crate::call::provider_request::ProviderRequest;
use crate::llm::LlmEvent;
use crate::media::turn::{TurnConfig, TurnEvent};
use freya_shared::model::AgentSpec;
use freya_shared::workflow::WorkflowEvent;

impl Flow {
    /// Caller turns while no agent has the call: transcribed only while a `gather` wants speech.
    pub(super) fn listen(&mut self, now: Instant, speaking: bool) {
        self.listener.set_agent_speaking(speaking);
        while let Some(event) = self.listener.poll_event() {
            if let TurnEvent::EndOfTurn { .. } = event {
                if self.listening_for_speech && self.pending_turn.is_none() {
                    let turn = self.id();
                    self.pending_turn = Some(turn);
                    let utterance = self.listener.take_utterance();
                    self.provider.push_back(ProviderRequest::Transcribe {
                        pipeline: self.pipeline,
                        turn,
                        utterance,
                    });
                } else {
                    drop(self.listener.take_utterance());
                }
            }
        }
        let _ = now;
    }

    pub(super) fn on_voice(&mut self, now: Instant, input: PipelineInput, media: &mut CallMedia) {
        match input {
            PipelineInput::Audio { reply, samples, .. } => {
                if self.speech.as_ref().is_some_and(|s| s.reply == reply) {
                    media.play(&samples);
                }
            }
            PipelineInput::SpeechDone { reply, error, .. } => {
                if let Some(speech) = self.speech.as_mut().filter(|s| s.reply == reply) {
                    speech.synthesized = true;
                    if let Some(error) = error {
                        tracing::warn!(%error, "a workflow line could not be synthesized");
                    }
                }
            }
            PipelineInput::Transcript { turn, result } => {
                if self.pending_turn != Some(turn) {
                    return;
                }
                self.pending_turn = None;
                match result {
                    Ok(text) => self
                        .executor
                        .handle_event(now, WorkflowEvent::Utterance(text)),
                    Err(error) => {
                        tracing::warn!(error = %error.detail, "a caller's answer could not be transcribed")
                    }
                }
            }
            PipelineInput::Llm { stream, item } => {
                let Some((current, text)) = self.generating.as_mut() else {
                    return;
                };
                if *current != stream {
                    return;
                }
                let line = match item {
                    Ok(LlmEvent::Token(token)) => {
                        text.push_str(&token);
                        return;
                    }
                    Ok(LlmEvent::Done { .. }) => std::mem::take(text),
                    Ok(LlmEvent::ToolCall { .. }) => return,
                    Ok(LlmEvent::FellBack(notice)) => {
                        tracing::warn!(
                            primary = %notice.primary,
                            fallback = %notice.fallback,
                            reason = %notice.reason.describe(),
                            "the workflow's line is written by the fallback model"
                        );
                        self.noticed
                            .push(crate::call::talk::fallback_record(notice));
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the workflow's model could not write a line");
                        GENERATION_FALLBACK.to_owned()
                    }
                };
                self.generating = None;
                let line = if line.trim().is_empty() {
                    GENERATION_FALLBACK.to_owned()
                } else {
                    line.trim().to_owned()
                };
                self.executor
                    .handle_event(now, WorkflowEvent::Generated(line));
            }
            // A workflow's own turns are transcribed in one piece: no live reports come.
            // Counted by `Flow::on_result` before it reaches here.
            PipelineInput::Tool { .. }
            | PipelineInput::LiveStt(_)
            | PipelineInput::Synthesizing { .. } => {}
        }
    }

    /// Synthesizes and plays one line; the executor hears `Spoken` once it has played.
    pub(super) fn speak(&mut self, now: Instant, text: String, out: &mut Vec<CallEventData>) {
        if text.trim().is_empty() {
            // Nothing to say (an empty template): the line has been "spoken" at once.
            match self.ending.take() {
                Some(reason) => self.hangup = Some(reason),
                None => self.executor.handle_event(now, WorkflowEvent::Spoken),
            }
            return;
        }
        let reply = self.id();
        self.speech = Some(Speech {
            reply,
            synthesized: false,
        });
        let at = self.offset_ms(now);
        out.push(CallEventData::Transcript(Transcript {
            role: "agent".to_owned(),
            // A line that repeats a sensitive answer is heard, not kept.
            text: self.executor.scrub_text(&text),
            start_ms: at,
            end_ms: at,
            interrupted: false,
            extra: Extra::new(),
        }));
        self.provider.push_back(ProviderRequest::Speak {
            pipeline: self.pipeline,
            reply,
            sentence: reply,
            text,
        });
    }
}

/// The listener timing of the workflow's `voice.turn`.
pub(super) fn turn_config(voice: &AgentSpec) -> TurnConfig {
    TurnConfig {
        end_of_turn_silence: Duration::from_millis(u64::from(voice.turn.end_of_turn_silence_ms)),
        barge_in: voice.turn.barge_in,
        barge_in_min_speech: Duration::from_millis(u64::from(voice.turn.barge_in_min_speech_ms)),
        ..TurnConfig::default()
    }
}

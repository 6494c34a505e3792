//! An agent's voice in a call: the agent's ear ([`Listener`]) and its conversation
//! ([`Conversation`]), wired to the call's media, with the provider work the conversation needs
//! queued as [`ProviderRequest`]s for the call's provider shell (sans-IO: nothing is spawned
//! here). The call core hands it each received frame, each provider result and the time, then
//! calls [`Talk::drive`] to move turn events, playback progress and actions between the parts and
//! to collect the call events to record. For a streaming recogniser it also queues the open
//! caller turn frame by frame (live turns numbered here) and passes the recogniser's endpointing
//! hints to the listener when the agent allows them (`turn.stt_endpointing`).

use std::time::{Duration, Instant};

use freya_shared::model::call_payloads::{
    BargeIn, Extra, NoDetails, ProviderFailed, SttStream, ToolRun, Transcript, TurnLatency,
};
use freya_shared::model::CallEventData;

use super::conversation::{Action, Conversation, ConversationConfig, ConversationEvent, Lines};
use super::listener::Listener;
use super::live_stt::LiveSttReport;
use super::media::{CallMedia, FRAME_SAMPLES};
use super::pipeline::{PipelineInput, ToolTarget};
use super::prompt::PromptVariables;
use super::provider_request::{PipelineId, ProviderRequest, ProviderResult, Voice};
use crate::llm::{FallbackNotice, ToolDefinition, ToolEndpoint};
use crate::media::turn::{TurnConfig, TurnEvent};
use crate::voice::{AgentVoice, VoiceConfigError, VoiceFactory};
use freya_shared::model::AgentSpec;

/// Who is on the line, for the prompt's variables.
pub(crate) struct CallParties<'a> {
    /// The call's id.
    pub call_id: &'a str,
    /// The caller's number.
    pub caller: &'a str,
    /// The number dialled.
    pub called: &'a str,
    /// Whether digits can be sent toward the far end (RTP or SIP INFO); a provider's media
    /// stream cannot carry them.
    pub sends_digits: bool,
}

/// What the agent asks of the telephony layer (its built-in tools), for the call task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentRequest {
    /// Transfer the call blindly to this number or SIP URI.
    Transfer(String),
    /// Transfer the call warm: dial the destination, whisper `whisper` to whoever answers, then
    /// bridge the caller to them and leave.
    WarmTransfer {
        destination: String,
        whisper: Option<String>,
    },
    /// Press these keys toward the far end.
    SendDtmf(String),
}

/// A call's voice pipeline.
pub(crate) struct Talk {
    listener: Listener,
    conversation: Conversation,
    /// The pipeline of this agent's providers, named in every request.
    pipeline: PipelineId,
    /// Whether the recogniser hears turns live (then turns are streamed as they are spoken).
    streams_live: bool,
    /// The number of the next live turn.
    next_live_turn: u64,
    /// Provider work asked for, in order, for the call's provider shell.
    provider: std::collections::VecDeque<ProviderRequest>,
    hangup: Option<&'static str>,
    requests: std::collections::VecDeque<AgentRequest>,
    /// The media's playback position when this talk began: a workflow may have played audio
    /// before handing the call to the agent, and the conversation counts only its own.
    playback_base: u64,
    /// The caller turn being streamed to a live recogniser, and how much of it went up.
    live: Option<LiveTurn>,
    /// Whether the recogniser's endpointing may end a turn (`turn.stt_endpointing`).
    stt_endpointing: bool,
    /// Call events from live transcription, recorded on the next drive.
    stt_records: Vec<CallEventData>,
    /// Characters this agent's pipeline sent to speech synthesis, heard or not.
    synthesized_chars: u64,
}

/// A caller turn streamed live: its number and the samples of it sent so far.
struct LiveTurn {
    id: u64,
    streamed: usize,
}

impl Talk {
    /// Builds the agent's providers and conversation, and starts the greeting.
    pub(crate) fn start(
        now: Instant,
        factory: &VoiceFactory,
        spec: &AgentSpec,
        parties: &CallParties<'_>,
    ) -> Result<Self, VoiceConfigError> {
        Self::start_in_flow(now, factory, spec, parties, Vec::new(), 0, 1)
    }

    /// As [`start`](Self::start), for an agent a workflow hands the call to: `exits` are the
    /// conditions the model may declare met, and `playback_base` the media's playback position
    /// now (nothing may still be queued); `pipeline` names its providers (the first request
    /// queued opens them).
    pub(crate) fn start_in_flow(
        now: Instant,
        factory: &VoiceFactory,
        spec: &AgentSpec,
        parties: &CallParties<'_>,
        exits: Vec<String>,
        playback_base: u64,
        pipeline: PipelineId,
    ) -> Result<Self, VoiceConfigError> {
        let voice: AgentVoice = factory.build(spec)?;
        let vars = PromptVariables::for_call(
            &spec.variables,
            parties.caller,
            parties.called,
            parties.call_id,
        );
        let turn = TurnConfig {
            end_of_turn_silence: Duration::from_millis(u64::from(spec.turn.end_of_turn_silence_ms)),
            barge_in: spec.turn.barge_in,
            barge_in_min_speech: Duration::from_millis(u64::from(spec.turn.barge_in_min_speech_ms)),
            ..TurnConfig::default()
        };
        let config = ConversationConfig {
            system_prompt: vars.render(&spec.system_prompt),
            first_message: spec.first_message.as_deref().map(|m| vars.render(m)),
            model: voice.llm_model.clone(),
            temperature: voice.temperature,
            max_tokens: voice.max_tokens,
            tools: spec
                .tools
                .iter()
                .map(|t| ToolDefinition {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.parameters.clone(),
                })
                .collect(),
            reprompt_after: spec
                .silence_reprompt_seconds
                .map(|s| Duration::from_secs(u64::from(s))),
            end_call_phrases: spec
                .end_call_phrases
                .iter()
                .map(|p| p.trim().to_lowercase())
                .collect(),
            sentence_flush: Duration::from_millis(u64::from(spec.turn.sentence_flush_ms)),
            filler_after: Duration::from_millis(1500),
            max_tool_rounds: 5,
            transfer_destinations: spec.transfer_destinations.clone(),
            sends_digits: parties.sends_digits,
            lines: Lines::default(),
            exits,
            llm_redactor: spec.privacy.llm_redactor(),
        };
        let tools = spec
            .tools
            .iter()
            .map(|t| ToolTarget {
                endpoint: ToolEndpoint {
                    name: t.name.clone(),
                    url: t.url.clone(),
                    timeout: Duration::from_millis(u64::from(t.timeout_ms)),
                },
            })
            .collect();
        let mut conversation = Conversation::new(now, config);
        conversation.start(now);
        let streams_live = voice.live_stt.is_some();
        let open = ProviderRequest::Open {
            pipeline,
            voice: Box::new(Voice(voice)),
            tools,
        };
        Ok(Self {
            listener: Listener::new(turn),
            conversation,
            pipeline,
            streams_live,
            next_live_turn: 1,
            provider: std::collections::VecDeque::from([open]),
            hangup: None,
            requests: std::collections::VecDeque::new(),
            playback_base,
            live: None,
            stt_endpointing: spec.turn.stt_endpointing,
            stt_records: Vec::new(),
            synthesized_chars: 0,
        })
    }

    /// One frame of the caller's audio.
    pub(crate) fn push_frame(&mut self, now: Instant, frame: &[i16; FRAME_SAMPLES]) {
        self.listener.push_frame(now, frame);
        self.stream_turn_audio();
    }

    /// Sends the open turn's audio that has not gone to the live recogniser yet, frame by frame.
    fn stream_turn_audio(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let audio = self.listener.turn_audio();
        while let Some(chunk) = audio.get(live.streamed..live.streamed + FRAME_SAMPLES) {
            if let Ok(frame) = <[i16; FRAME_SAMPLES]>::try_from(chunk) {
                let pipeline = self.pipeline;
                self.provider.push_back(ProviderRequest::LiveAudio {
                    pipeline,
                    frame: Box::new(frame),
                });
            }
            live.streamed += FRAME_SAMPLES;
        }
    }

    /// Time passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.listener.handle_timeout(now);
        self.conversation.handle_timeout(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (
            self.listener.poll_timeout(),
            self.conversation.poll_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next piece of provider work asked for.
    pub(crate) fn poll_provider_request(&mut self) -> Option<ProviderRequest> {
        super::provider_request::pop_request(&mut self.provider)
    }

    /// Hands a provider result to the conversation (and the reply's audio to the media);
    /// results of another pipeline (a closed one) are dropped.
    pub(crate) fn on_result(
        &mut self,
        now: Instant,
        result: ProviderResult,
        media: &mut CallMedia,
    ) {
        match result {
            ProviderResult::Voice { pipeline, input } if pipeline == self.pipeline => {
                self.on_input(now, input, media)
            }
            _ => {}
        }
    }

    fn on_input(&mut self, now: Instant, input: PipelineInput, media: &mut CallMedia) {
        let c = &mut self.conversation;
        match input {
            PipelineInput::Transcript { turn, result } => c.on_transcript(now, turn, result),
            PipelineInput::LiveStt(report) => self.on_live_stt(now, report),
            PipelineInput::Llm { stream, item } => c.on_llm(now, stream, item),
            PipelineInput::Audio {
                reply,
                sentence,
                samples,
            } => {
                if c.on_audio(now, reply, sentence, samples.len()) {
                    media.play(&samples);
                }
            }
            PipelineInput::SpeechDone {
                reply,
                sentence,
                error,
            } => c.on_speech_done(now, reply, sentence, error),
            PipelineInput::Synthesizing { chars, .. } => {
                self.synthesized_chars = self.synthesized_chars.saturating_add(chars)
            }
            PipelineInput::Tool {
                reply,
                call_id,
                result,
            } => c.on_tool_result(now, reply, &call_id, result),
        }
    }

    /// Characters sent to speech synthesis so far (what a TTS provider bills), heard or not:
    /// the call's record says it apart from what the caller heard.
    pub(crate) fn synthesized_chars(&self) -> u64 {
        self.synthesized_chars
    }

    /// Moves everything along; returns the events to record (kind, payload). After it, check
    /// [`hangup`](Self::hangup).
    pub(crate) fn drive(
        &mut self,
        now: Instant,
        media: &mut CallMedia,
        out: &mut Vec<CallEventData>,
    ) {
        self.listener.set_agent_speaking(media.is_playing());
        out.append(&mut self.stt_records);
        while let Some(event) = self.listener.poll_event() {
            if event == TurnEvent::SpeechStarted {
                // A streaming recogniser hears the turn from its first frame (pre-roll included).
                if self.streams_live {
                    let live_turn = self.next_live_turn;
                    self.next_live_turn += 1;
                    self.provider.push_back(ProviderRequest::LiveBegin {
                        pipeline: self.pipeline,
                        live_turn,
                    });
                    self.live = Some(LiveTurn {
                        id: live_turn,
                        streamed: 0,
                    });
                    self.stream_turn_audio();
                }
            }
            self.conversation.on_turn(now, event);
            // A barge-in must stop the audio within this frame.
            self.execute_actions(media);
        }
        let played = media.playback_position().saturating_sub(self.playback_base);
        self.conversation.on_played(now, played);
        self.execute_actions(media);
        while let Some(event) = self.conversation.poll_event() {
            out.push(record(event));
        }
    }

    /// Why the agent ended the call, once it has.
    pub(crate) fn hangup(&self) -> Option<&'static str> {
        self.hangup
    }

    /// The next thing the agent asked the telephony layer for.
    pub(crate) fn take_request(&mut self) -> Option<AgentRequest> {
        self.requests.pop_front()
    }

    /// The transfer the agent asked for did not go through (`reason`, from the SIP side): the
    /// model is told and answers (on the next [`drive`](Self::drive)), and the call goes on.
    pub(crate) fn transfer_failed(&mut self, now: Instant, reason: &str) {
        self.conversation.on_transfer_failed(now, reason);
    }

    /// The caller took the call off hold: the silence reprompt starts its wait afresh rather
    /// than asking "are you still there?" the moment the caller is back.
    pub(crate) fn resume_after_hold(&mut self, now: Instant) {
        self.conversation.resume_after_hold(now);
    }

    /// The workflow exit the model declared met, if it did.
    pub(crate) fn exit_requested(&self) -> Option<usize> {
        self.conversation.exit_requested()
    }

    /// Says `text` as a fixed line (a warm transfer's whisper).
    pub(crate) fn announce(&mut self, now: Instant, text: &str, media: &mut CallMedia) {
        self.conversation.announce(now, text);
        self.execute_actions(media);
    }

    /// Whether the agent is neither preparing nor speaking a reply.
    pub(crate) fn is_idle(&self) -> bool {
        !self.conversation.replying()
    }

    /// Stops all provider work (queues the pipeline's close); returns the last events to
    /// record: the reply being spoken, as far as the caller heard it.
    pub(crate) fn shutdown(&mut self, now: Instant) -> Vec<CallEventData> {
        let pipeline = self.pipeline;
        self.provider.push_back(ProviderRequest::Close { pipeline });
        self.conversation.end(now);
        std::iter::from_fn(|| self.conversation.poll_event())
            .map(record)
            .collect()
    }

    /// A live recogniser's hint or record.
    fn on_live_stt(&mut self, now: Instant, report: LiveSttReport) {
        match report {
            LiveSttReport::Endpoint { live_turn } => {
                let current = self.live.as_ref().is_some_and(|l| l.id == live_turn);
                if self.stt_endpointing && current {
                    self.listener.endpoint_hint(now);
                }
            }
            LiveSttReport::Streamed(s) => {
                self.stt_records.push(CallEventData::SttStream(SttStream {
                    provider: s.provider.to_owned(),
                    frames_before_end: s.frames_before_end.into(),
                    frames: s.frames.into(),
                    connect_ms: s.connect_ms,
                    finalize_ms: s.finalize_ms,
                    interims: s.interims.into(),
                    last_interim: s.last_interim,
                    endpoints: s.endpoints.into(),
                    extra: Extra::new(),
                }))
            }
            LiveSttReport::Failed { provider, error } => {
                self.stt_records
                    .push(CallEventData::ProviderFailed(ProviderFailed {
                        stage: "stt_stream".to_owned(),
                        provider: Some(provider.to_string()),
                        error: error.to_string(),
                        fallback: Some("batch".to_owned()),
                        fallback_provider: None,
                        timeout_ms: None,
                        extra: Extra::new(),
                    }))
            }
        }
    }

    fn execute_actions(&mut self, media: &mut CallMedia) {
        let pipeline = self.pipeline;
        while let Some(action) = self.conversation.poll_action() {
            match action {
                Action::CancelReply { reply } => {
                    media.stop_playback();
                    self.provider
                        .push_back(ProviderRequest::CancelReply { pipeline, reply });
                }
                Action::Hangup { reason } => self.hangup = Some(reason),
                Action::Transfer {
                    destination,
                    warm: None,
                } => self.requests.push_back(AgentRequest::Transfer(destination)),
                Action::Transfer {
                    destination,
                    warm: Some(whisper),
                } => self.requests.push_back(AgentRequest::WarmTransfer {
                    destination,
                    whisper: Some(whisper),
                }),
                Action::SendDtmf { digits } => {
                    self.requests.push_back(AgentRequest::SendDtmf(digits))
                }
                Action::Transcribe { turn } => {
                    // The turn's last frames go up before the stream is closed.
                    self.stream_turn_audio();
                    self.live = None;
                    let utterance = self.listener.take_utterance();
                    self.provider.push_back(ProviderRequest::Transcribe {
                        pipeline,
                        turn,
                        utterance,
                    });
                }
                Action::Complete {
                    reply,
                    stream,
                    request,
                } => self.provider.push_back(ProviderRequest::Complete {
                    pipeline,
                    reply,
                    stream,
                    request,
                }),
                Action::Speak {
                    reply,
                    sentence,
                    text,
                } => self.provider.push_back(ProviderRequest::Speak {
                    pipeline,
                    reply,
                    sentence,
                    text,
                }),
                Action::RunTool { reply, call } => {
                    self.provider.push_back(ProviderRequest::RunTool {
                        pipeline,
                        reply,
                        call,
                    })
                }
            }
        }
    }
}

/// A conversation event as a call event.
fn record(event: ConversationEvent) -> CallEventData {
    match event {
        ConversationEvent::Transcript {
            role,
            text,
            start_ms,
            end_ms,
            interrupted,
        } => CallEventData::Transcript(Transcript {
            role: role.to_owned(),
            text,
            start_ms,
            end_ms,
            interrupted,
            extra: Extra::new(),
        }),
        ConversationEvent::Latency(l) => CallEventData::TurnLatency(TurnLatency {
            endpointing_ms: l.endpointing_ms,
            stt_ms: l.stt_ms,
            llm_first_token_ms: l.llm_first_token_ms,
            tts_first_byte_ms: l.tts_first_byte_ms,
            first_rtp_ms: l.first_rtp_ms,
            extra: Extra::new(),
        }),
        ConversationEvent::BargeIn {
            heard_chars,
            planned_chars,
        } => CallEventData::BargeIn(BargeIn {
            heard_chars: heard_chars as u64,
            planned_chars: planned_chars as u64,
            extra: Extra::new(),
        }),
        ConversationEvent::Tool {
            name,
            error,
            duration_ms,
        } => {
            let failed = error.is_some();
            let run = ToolRun {
                name,
                error,
                duration_ms,
                extra: Extra::new(),
            };
            if failed {
                CallEventData::ToolFailed(run)
            } else {
                CallEventData::Tool(run)
            }
        }
        ConversationEvent::ProviderFailed { stage, error } => {
            CallEventData::ProviderFailed(ProviderFailed {
                stage: stage.to_owned(),
                provider: None,
                error,
                fallback: None,
                fallback_provider: None,
                timeout_ms: None,
                extra: Extra::new(),
            })
        }
        ConversationEvent::LlmFellBack(notice) => fallback_record(notice),
        ConversationEvent::Reprompt => CallEventData::Reprompt(NoDetails::default()),
    }
}

/// The record of a turn the fallback model answered (`call.provider_failed` naming the primary,
/// the fallback and why), for an agent's turns and a workflow's lines alike.
pub(super) fn fallback_record(notice: FallbackNotice) -> CallEventData {
    CallEventData::ProviderFailed(ProviderFailed {
        stage: "llm".to_owned(),
        provider: Some(notice.primary),
        error: notice.reason.describe(),
        fallback: Some("llm_fallback".to_owned()),
        fallback_provider: Some(notice.fallback),
        timeout_ms: notice.reason.timeout_ms(),
        extra: Extra::new(),
    })
}

//! A call answered by a workflow: the shared [`Executor`] driven through the same media and
//! provider requests an agent uses (sans-IO: provider work, `function` requests included, is
//! queued as [`ProviderRequest`]s for the call's provider shell). The flow's own lines (`say`, `end`, reprompts) are synthesized by the
//! workflow's `voice` and played to the caller; `gather` listens for keypad digits (handed in
//! by the call task) and for a caller turn, transcribed; a generated line asks the flow's model;
//! `function` asks for the customer's endpoint ([`flow_function`](super::flow_function)); `agent`
//! hands the call to a full agent conversation ([`Talk`](super::talk::Talk)) with the node's exits offered to its
//! model as a tool, until it hands back. Every executor step becomes a `call.workflow_step`
//! event. The call core drives it as it drives a [`Talk`](super::talk::Talk): frames, provider results, time, then
//! [`Flow::drive`].

use std::sync::Arc;
use std::time::Instant;

use freya_shared::model::CallEventData;

use super::flow_function::{FunctionOutcome, FunctionRequest};
use super::listener::Listener;
use super::media::{CallMedia, FRAME_SAMPLES};
use super::pipeline::PipelineInput;
use super::provider_request::{PipelineId, ProviderRequest, ProviderResult, Voice};
use super::talk::{AgentRequest, CallParties};
use crate::llm::{ChatMessage, ChatRequest};
use crate::voice::VoiceFactory;
use freya_shared::model::AgentSpec;
use freya_shared::snapshot::{AgentConfig, WorkflowConfig};
use freya_shared::workflow::{
    validate, Executor, Globals, ValidationContext, WorkflowAction, WorkflowEvent, WorkflowOutcome,
};

#[path = "flow_agent.rs"]
mod agent;
#[path = "flow_voice.rs"]
mod voice;

use agent::AgentTurns;
use voice::turn_config;

/// Said when the flow's model cannot write a line.
const GENERATION_FALLBACK: &str = "Sorry, I'm having trouble right now.";

/// Why a flow could not start, for the call's `call.failed` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlowStartError {
    /// The recorded reason (`workflow_invalid`, `workflow_misconfigured`).
    pub reason: &'static str,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub detail: String,
}

/// Who is on the call, owned: the flow builds agent conversations long after it started.
struct Parties {
    call_id: String,
    caller: String,
    called: String,
    sends_digits: bool,
}

/// A line being synthesized and played.
struct Speech {
    reply: u64,
    synthesized: bool,
}

/// One call's run through one workflow version.
pub(crate) struct Flow {
    executor: Executor,
    factory: Arc<VoiceFactory>,
    voice: AgentSpec,
    /// The flow's own voice (its lines, menus' speech, generated lines).
    pipeline: PipelineId,
    /// Provider work asked for by the flow's own nodes, in order.
    provider: std::collections::VecDeque<ProviderRequest>,
    model: String,
    listener: Listener,
    agents: Vec<AgentConfig>,
    parties: Parties,
    started: Instant,
    next_id: u64,
    speech: Option<Speech>,
    /// The completion writing a generated line: its stream and the text so far.
    generating: Option<(u64, String)>,
    /// Whether a `gather` listens for speech now.
    listening_for_speech: bool,
    pending_turn: Option<u64>,
    function: Option<u64>,
    agent: Option<AgentTurns>,
    /// Hang up with this reason once the last line has played.
    ending: Option<&'static str>,
    hangup: Option<&'static str>,
    /// What the flow's own nodes asked of the telephony layer (a `transfer` node).
    requests: std::collections::VecDeque<AgentRequest>,
    /// Characters every pipeline of the call (the flow's and its agents') sent to speech
    /// synthesis, heard or not.
    synthesized_chars: u64,
    /// Records waiting for the next [`drive`](Self::drive) (a line the fallback model wrote).
    noticed: Vec<CallEventData>,
    /// Until when key presses stay masked after a `sensitive` gather heard one: the tone of
    /// the digit that completed it is still in the audio after the flow has moved on.
    sensitive_until: Option<Instant>,
}

/// How long key presses stay masked after a digit heard at a `sensitive` gather.
const SENSITIVE_TAIL: std::time::Duration = std::time::Duration::from_secs(1);

impl Flow {
    /// Compiles the pinned workflow version against the workspace's agents, builds its voice
    /// and enters the start node.
    pub(crate) fn start(
        now: Instant,
        factory: Arc<VoiceFactory>,
        workflow: &WorkflowConfig,
        agents: Vec<AgentConfig>,
        parties: &CallParties<'_>,
    ) -> Result<Self, FlowStartError> {
        let context = ValidationContext::with_agents(agents.iter().map(|a| a.id.clone()));
        let compiled = validate(&workflow.definition, &context).map_err(|errors| {
            let first = errors.first();
            FlowStartError {
                reason: "workflow_invalid",
                field: first
                    .map(|e| match &e.node {
                        Some(node) => format!("nodes[{node}].{}", e.field),
                        None => e.field.clone(),
                    })
                    .unwrap_or_default(),
                detail: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        let misconfigured = |field: String, detail: String| FlowStartError {
            reason: "workflow_misconfigured",
            field,
            detail,
        };
        let voice = freya_shared::workflow::voice_spec(&workflow.definition).map_err(|e| {
            let field = e.first().map(|e| e.field.clone()).unwrap_or_default();
            misconfigured(field, format!("{e:?}"))
        })?;
        let expected = crate::speech::stt::local::ExpectedSpeech {
            keywords: freya_shared::workflow::expected_phrases(&workflow.definition),
            examples: Vec::new(),
            // Which answers lead to a hang-up or a transfer is in the workflow's graph, not
            // known here.
            leaving: Vec::new(),
        };
        let built = factory
            .build_listening_for(&voice, expected)
            .map_err(|e| misconfigured(format!("voice.{}", e.field), e.detail))?;
        let model = built.llm_model.clone();
        let globals = Globals {
            caller_number: parties.caller.to_owned(),
            called_number: parties.called.to_owned(),
            call_id: parties.call_id.to_owned(),
            started_at_ms: freya_shared::ids::now_ms(),
        };
        let open = ProviderRequest::Open {
            pipeline: 1,
            voice: Box::new(Voice(built)),
            tools: Vec::new(),
        };
        let mut flow = Self {
            executor: Executor::new(Arc::new(compiled), globals),
            listener: Listener::new(turn_config(&voice)),
            pipeline: 1,
            provider: std::collections::VecDeque::from([open]),
            factory,
            voice,
            model,
            agents,
            parties: Parties {
                call_id: parties.call_id.to_owned(),
                caller: parties.caller.to_owned(),
                called: parties.called.to_owned(),
                sends_digits: parties.sends_digits,
            },
            started: now,
            // 1 names the flow's own pipeline.
            next_id: 2,
            speech: None,
            generating: None,
            listening_for_speech: false,
            pending_turn: None,
            function: None,
            agent: None,
            ending: None,
            hangup: None,
            requests: std::collections::VecDeque::new(),
            synthesized_chars: 0,
            noticed: Vec::new(),
            sensitive_until: None,
        };
        flow.executor.start(now);
        Ok(flow)
    }

    /// One frame of the caller's audio.
    pub(crate) fn push_frame(&mut self, now: Instant, frame: &[i16; FRAME_SAMPLES]) {
        match self.agent.as_mut() {
            Some(agent) => agent.talk.push_frame(now, frame),
            None => self.listener.push_frame(now, frame),
        }
    }

    /// A keypad digit (RFC 4733 or SIP INFO). An agent's conversation does not take digits.
    pub(crate) fn on_digit(&mut self, now: Instant, digit: char) {
        if self.executor.is_sensitive_now() {
            self.sensitive_until = Some(now + SENSITIVE_TAIL);
        }
        if self.agent.is_none() {
            self.executor
                .handle_event(now, WorkflowEvent::Digits(digit.to_string()));
        }
    }

    /// Whether key presses now belong to a `sensitive` gather (it listens, or heard one a
    /// moment ago): masked in the recording and the call's records.
    pub(crate) fn masks_digits(&self, now: Instant) -> bool {
        (self.agent.is_none() && self.executor.is_sensitive_now())
            || self.sensitive_until.is_some_and(|until| now < until)
    }

    /// Time passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.listener.handle_timeout(now);
        if let Some(agent) = self.agent.as_mut() {
            agent.talk.handle_timeout(now);
        }
        self.executor.handle_timeout(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.listener.poll_timeout(),
            self.agent.as_ref().and_then(|a| a.talk.poll_timeout()),
            self.executor.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next piece of provider work asked for (the agent's, then the flow's own).
    pub(crate) fn poll_provider_request(&mut self) -> Option<ProviderRequest> {
        if let Some(agent) = self.agent.as_mut() {
            if let Some(request) = agent.talk.poll_provider_request() {
                return Some(request);
            }
        }
        super::provider_request::pop_request(&mut self.provider)
    }

    /// Hands a result to whoever waits for it (the agent's audio and the flow's to the media);
    /// results of a closed pipeline or an abandoned function request are dropped.
    pub(crate) fn on_result(
        &mut self,
        now: Instant,
        result: ProviderResult,
        media: &mut CallMedia,
    ) {
        match result {
            // Counted here for every pipeline: an agent's is closed when it hands the call back.
            ProviderResult::Voice {
                input: PipelineInput::Synthesizing { chars, .. },
                ..
            } => self.synthesized_chars = self.synthesized_chars.saturating_add(chars),
            ProviderResult::Voice { pipeline, input } if pipeline == self.pipeline => {
                self.on_voice(now, input, media)
            }
            ProviderResult::Voice { .. } => {
                if let Some(agent) = self.agent.as_mut() {
                    agent.talk.on_result(now, result, media);
                }
            }
            ProviderResult::Function { seq, outcome } => {
                if self.function != Some(seq) {
                    return;
                }
                self.function = None;
                let event = match outcome {
                    FunctionOutcome::Answered {
                        status,
                        body,
                        elapsed,
                    } => WorkflowEvent::FunctionResult {
                        status,
                        body,
                        elapsed,
                    },
                    FunctionOutcome::Failed { reason } => WorkflowEvent::FunctionFailed { reason },
                };
                self.executor.handle_event(now, event);
            }
        }
    }

    /// Moves everything along; returns the events to record (kind, payload). After it, check
    /// [`hangup`](Self::hangup).
    pub(crate) fn drive(
        &mut self,
        now: Instant,
        media: &mut CallMedia,
        out: &mut Vec<CallEventData>,
    ) {
        if self.agent.is_some() {
            self.drive_agent(now, media, out);
        } else {
            self.listen(now, media.is_playing());
        }
        let played = self
            .speech
            .as_ref()
            .is_some_and(|s| s.synthesized && !media.is_playing());
        if played {
            self.speech = None;
            match self.ending.take() {
                Some(reason) => self.hangup = Some(reason),
                None => self.executor.handle_event(now, WorkflowEvent::Spoken),
            }
        }
        out.append(&mut self.noticed);
        self.carry_out(now, media, out);
        while let Some(step) = self.executor.poll_step() {
            out.push(CallEventData::WorkflowStep(step));
        }
    }

    /// Says `text` on the flow's voice outside its steps: a warm transfer's summary to the
    /// party it dialled (the flow is finished by then; its executor ignores the line's end).
    pub(crate) fn announce(&mut self, now: Instant, text: &str) {
        let mut out = Vec::new();
        self.speak(now, text.to_owned(), &mut out);
        self.noticed.append(&mut out);
    }

    /// Whether a line of the flow's own is being synthesized or played.
    pub(crate) fn is_speaking(&self) -> bool {
        self.speech.is_some()
    }

    /// Characters sent to speech synthesis so far by the flow and the agents it handed the call
    /// to, heard or not.
    pub(crate) fn synthesized_chars(&self) -> u64 {
        self.synthesized_chars
    }

    /// Why the flow ended the call, once it has.
    pub(crate) fn hangup(&self) -> Option<&'static str> {
        self.hangup
    }

    /// The next thing the flow (or the agent it handed the call to) asked the telephony layer
    /// for.
    pub(crate) fn take_request(&mut self) -> Option<AgentRequest> {
        if let Some(agent) = self.agent.as_mut() {
            if let Some(request) = agent.talk.take_request() {
                return Some(request);
            }
        }
        self.requests.pop_front()
    }

    /// A transfer did not go through. An agent that asked for it says so and goes on; a
    /// `transfer` node ended the flow, so the call ends.
    pub(crate) fn transfer_failed(&mut self, now: Instant, reason: &str) {
        match self.agent.as_mut() {
            Some(agent) => agent.talk.transfer_failed(now, reason),
            None => self.hangup = Some("transfer_failed"),
        }
    }

    /// The call is over: the flow records how (a caller who hung up mid-flow) and stops all
    /// provider work. Returns the last events to record.
    pub(crate) fn shutdown(&mut self, now: Instant) -> Vec<CallEventData> {
        self.executor.handle_event(now, WorkflowEvent::Hangup);
        let mut records = Vec::new();
        if let Some(mut agent) = self.agent.take() {
            records = agent.talk.shutdown(now);
            self.provider
                .extend(std::iter::from_fn(|| agent.talk.poll_provider_request()));
        }
        let pipeline = self.pipeline;
        self.provider.push_back(ProviderRequest::Close { pipeline });
        records.extend(
            std::iter::from_fn(|| self.executor.poll_step()).map(CallEventData::WorkflowStep),
        );
        records
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn offset_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// Carries out what the executor asks for until it waits for the outside world.
    fn carry_out(&mut self, now: Instant, media: &mut CallMedia, out: &mut Vec<CallEventData>) {
        while let Some(action) = self.executor.poll_action() {
            if !matches!(action, WorkflowAction::Listen { .. }) {
                self.listening_for_speech = false;
            }
            match action {
                WorkflowAction::Speak { text } => self.speak(now, text, out),
                WorkflowAction::Generate { prompt } => {
                    let stream = self.id();
                    self.generating = Some((stream, String::new()));
                    let request = ChatRequest::new(
                        self.model.clone(),
                        vec![
                            ChatMessage::system(prompt),
                            ChatMessage::user(
                                "Say your line to the caller now, in one or two sentences.",
                            ),
                        ],
                    );
                    self.provider.push_back(ProviderRequest::Complete {
                        pipeline: self.pipeline,
                        reply: stream,
                        stream,
                        request,
                    });
                }
                WorkflowAction::Listen { speech, .. } => self.listening_for_speech = speech,
                WorkflowAction::CallFunction {
                    url,
                    method,
                    headers,
                    body,
                    timeout,
                } => {
                    let seq = self.id();
                    self.function = Some(seq);
                    let request = FunctionRequest {
                        url,
                        method,
                        headers,
                        body,
                        timeout,
                    };
                    self.provider.push_back(ProviderRequest::CallFunction {
                        seq,
                        request: Box::new(request),
                    });
                }
                WorkflowAction::RunAgent {
                    agent_id,
                    exits,
                    max_turns,
                } => self.run_agent(now, media, &agent_id, exits, max_turns, out),
                // The flow is over; the call task asks the SIP side for the transfer (REFER) and
                // ends the call when it succeeds, or tells the flow when it fails.
                WorkflowAction::Transfer { to, warm: None } => {
                    self.requests.push_back(AgentRequest::Transfer(to))
                }
                // A warm transfer: the core dials, whispers the summary, bridges, leaves.
                WorkflowAction::Transfer {
                    to,
                    warm: Some(summary),
                } => self.requests.push_back(AgentRequest::WarmTransfer {
                    destination: to,
                    whisper: summary,
                }),
                WorkflowAction::Hangup { text } => {
                    let reason = match self.executor.outcome() {
                        Some(WorkflowOutcome::Failed { .. }) => "workflow_failed",
                        _ => "workflow_completed",
                    };
                    match text.filter(|t| !t.trim().is_empty()) {
                        Some(text) => {
                            self.ending = Some(reason);
                            self.speak(now, text, out);
                        }
                        None => self.hangup = Some(reason),
                    }
                }
            }
        }
    }
}

//! What answers a call, seen from the call task: an agent's conversation ([`Talk`]) or a
//! workflow ([`Flow`]). Both take the same inputs — caller frames, digits, provider results,
//! time — and give back the same outputs — audio into the media, call events, provider requests,
//! a hang-up — so the call core drives either without knowing which.

use std::sync::Arc;
use std::time::Instant;

use freya_shared::model::CallEventData;

use super::flow::Flow;
use super::media::{CallMedia, FRAME_SAMPLES};
use super::provider_request::{ProviderRequest, ProviderResult};
use super::talk::{AgentRequest, CallParties, Talk};
use crate::voice::VoiceFactory;
use freya_shared::model::AgentSpec;
use freya_shared::snapshot::{AgentConfig, EdgeConfigSnapshot, RouteTarget, WorkflowConfig};

/// The workflow version a call runs, with the agents its `agent` nodes may hand the call to.
#[derive(Debug, Clone)]
pub struct PinnedWorkflow {
    pub config: WorkflowConfig,
    pub agents: Vec<AgentConfig>,
}

/// Why a call's answerer could not be built, for its `call.failed` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponderError {
    /// The recorded reason (`agent_misconfigured`, `workflow_invalid`, ...).
    pub reason: &'static str,
    pub field: String,
    pub detail: String,
}

/// The agent or workflow answering one call.
pub(crate) enum Responder {
    Agent(Box<Talk>),
    Workflow(Box<Flow>),
}

impl Responder {
    /// The workflow when the call has one, else the agent; starts speaking at once.
    pub(crate) fn start(
        now: Instant,
        factory: &Arc<VoiceFactory>,
        agent: &AgentConfig,
        workflow: Option<&PinnedWorkflow>,
        parties: &CallParties<'_>,
    ) -> Result<Self, ResponderError> {
        match workflow {
            None => Talk::start(now, factory, &agent.spec, parties)
                .map(|talk| Responder::Agent(Box::new(talk)))
                .map_err(|e| ResponderError {
                    reason: "agent_misconfigured",
                    field: e.field,
                    detail: e.detail,
                }),
            Some(pinned) => Flow::start(
                now,
                Arc::clone(factory),
                &pinned.config,
                pinned.agents.clone(),
                parties,
            )
            .map(|flow| Responder::Workflow(Box::new(flow)))
            .map_err(|e| ResponderError {
                reason: e.reason,
                field: e.field,
                detail: e.detail,
            }),
        }
    }

    /// One frame of the caller's audio.
    pub(crate) fn push_frame(&mut self, now: Instant, frame: &[i16; FRAME_SAMPLES]) {
        match self {
            Responder::Agent(talk) => talk.push_frame(now, frame),
            Responder::Workflow(flow) => flow.push_frame(now, frame),
        }
    }

    /// A keypad digit; only a workflow acts on digits (the call task records them anyway).
    pub(crate) fn on_digit(&mut self, now: Instant, digit: char) {
        if let Responder::Workflow(flow) = self {
            flow.on_digit(now, digit);
        }
    }

    /// Whether key presses now are a secret of the flow's (a `sensitive` gather listening, or
    /// just answered): the call masks them in its recording and records.
    pub(crate) fn masks_digits(&self, now: Instant) -> bool {
        match self {
            Responder::Agent(_) => false,
            Responder::Workflow(flow) => flow.masks_digits(now),
        }
    }

    /// Time passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Responder::Agent(talk) => talk.handle_timeout(now),
            Responder::Workflow(flow) => flow.handle_timeout(now),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Responder::Agent(talk) => talk.poll_timeout(),
            Responder::Workflow(flow) => flow.poll_timeout(),
        }
    }

    /// The next piece of provider work asked for, for the call's provider shell.
    pub(crate) fn poll_provider_request(&mut self) -> Option<ProviderRequest> {
        match self {
            Responder::Agent(talk) => talk.poll_provider_request(),
            Responder::Workflow(flow) => flow.poll_provider_request(),
        }
    }

    /// Hands a provider result on.
    pub(crate) fn on_result(
        &mut self,
        now: Instant,
        result: ProviderResult,
        media: &mut CallMedia,
    ) {
        match self {
            Responder::Agent(talk) => talk.on_result(now, result, media),
            Responder::Workflow(flow) => flow.on_result(now, result, media),
        }
    }

    /// Moves everything along; returns the events to record.
    pub(crate) fn drive(
        &mut self,
        now: Instant,
        media: &mut CallMedia,
        out: &mut Vec<CallEventData>,
    ) {
        match self {
            Responder::Agent(talk) => talk.drive(now, media, out),
            Responder::Workflow(flow) => flow.drive(now, media, out),
        }
    }

    /// Why the call should end, once it should.
    pub(crate) fn hangup(&self) -> Option<&'static str> {
        match self {
            Responder::Agent(talk) => talk.hangup(),
            Responder::Workflow(flow) => flow.hangup(),
        }
    }

    /// The next thing the agent or workflow asked the telephony layer for.
    pub(crate) fn take_request(&mut self) -> Option<AgentRequest> {
        match self {
            Responder::Agent(talk) => talk.take_request(),
            Responder::Workflow(flow) => flow.take_request(),
        }
    }

    /// The caller took the call off hold: an agent's silence reprompt starts its wait afresh
    /// (a workflow's timers simply resume).
    pub(crate) fn resume_after_hold(&mut self, now: Instant) {
        if let Responder::Agent(talk) = self {
            talk.resume_after_hold(now);
        }
    }

    /// Says `text` (a warm transfer's whisper to the answering party); a workflow has no
    /// whisper and says nothing.
    pub(crate) fn announce(&mut self, now: Instant, text: &str, media: &mut CallMedia) {
        match self {
            Responder::Agent(talk) => talk.announce(now, text, media),
            Responder::Workflow(flow) => flow.announce(now, text),
        }
    }

    /// Whether the voice is preparing or saying something.
    pub(crate) fn is_speaking(&self) -> bool {
        match self {
            Responder::Agent(talk) => !talk.is_idle(),
            Responder::Workflow(flow) => flow.is_speaking(),
        }
    }

    /// The transfer asked for did not go through, for `reason` (the SIP side's words).
    pub(crate) fn transfer_failed(&mut self, now: Instant, reason: &str) {
        match self {
            Responder::Agent(talk) => talk.transfer_failed(now, reason),
            Responder::Workflow(flow) => flow.transfer_failed(now, reason),
        }
    }

    /// Characters the call's voice sent to speech synthesis so far, heard or not: for the
    /// `call.ended` record, beside the transcript's count of what was heard.
    pub(crate) fn synthesized_chars(&self) -> u64 {
        match self {
            Responder::Agent(talk) => talk.synthesized_chars(),
            Responder::Workflow(flow) => flow.synthesized_chars(),
        }
    }

    /// Stops all provider work (queues the pipelines' close); returns the last events to record.
    pub(crate) fn shutdown(&mut self, now: Instant) -> Vec<CallEventData> {
        match self {
            Responder::Agent(talk) => talk.shutdown(now),
            Responder::Workflow(flow) => flow.shutdown(now),
        }
    }
}

/// The agent and workflow that answer a routed call. A workflow's call carries an agent-shaped
/// voice (its `voice` sections under the workflow's name, id and workspace) for the parts of the
/// call task that read an agent, and the workspace's agents for its `agent` nodes.
pub(crate) fn answerer(
    snapshot: &EdgeConfigSnapshot,
    target: RouteTarget<'_>,
) -> (AgentConfig, Option<PinnedWorkflow>) {
    match target {
        RouteTarget::Agent(agent) => (agent.clone(), None),
        RouteTarget::Workflow(workflow) => {
            let mut spec =
                freya_shared::workflow::voice_spec(&workflow.definition).unwrap_or_else(|_| {
                    AgentSpec {
                        name: workflow.definition.name.clone(),
                        ..AgentSpec::default()
                    }
                });
            // The flow's own choice, not its voice's: a voice section cannot ask for it.
            spec.record = workflow.definition.record;
            let voice = AgentConfig {
                id: workflow.id.clone(),
                workspace_id: workflow.workspace_id.clone(),
                spec,
            };
            let pinned = PinnedWorkflow {
                config: workflow.clone(),
                agents: snapshot
                    .agents_of(&workflow.workspace_id)
                    .cloned()
                    .collect(),
            };
            (voice, Some(pinned))
        }
    }
}

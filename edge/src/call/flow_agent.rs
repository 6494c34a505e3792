//! A workflow call handed to an agent: the agent's full conversation ([`Talk`]) with its own
//! providers (or the workflow's where it names none), the node's exits offered to its model as
//! a tool, until it exits, finishes, or has answered `max_turns` caller turns.

use std::time::Instant;

use freya_shared::model::call_payloads::{Extra, WorkflowError};
use freya_shared::model::CallEventData;

use super::Flow;
use crate::call::media::CallMedia;
use crate::call::talk::{CallParties, Talk};
use freya_shared::workflow::{AgentExit, WorkflowEvent};

/// An agent the flow handed the call to.
pub(super) struct AgentTurns {
    pub(super) talk: Talk,
    max_turns: Option<u32>,
    caller_turns: u32,
}

impl Flow {
    pub(super) fn run_agent(
        &mut self,
        now: Instant,
        media: &mut CallMedia,
        agent_id: &str,
        exits: Vec<String>,
        max_turns: Option<u32>,
        out: &mut Vec<CallEventData>,
    ) {
        let Some(agent) = self.agents.iter().find(|a| a.id == agent_id) else {
            out.push(CallEventData::WorkflowError(WorkflowError {
                agent_id: agent_id.to_owned(),
                field: None,
                error: "the agent is not in this edge's configuration".to_owned(),
                extra: Extra::new(),
            }));
            self.hangup = Some("workflow_misconfigured");
            return;
        };
        // The agent's own providers, or the workflow's where the agent names none.
        let mut spec = agent.spec.clone();
        spec.stt = spec.stt.or_else(|| self.voice.stt.clone());
        if spec.llm.is_none() {
            spec.llm = self.voice.llm.clone();
            spec.llm_fallback = spec
                .llm_fallback
                .or_else(|| self.voice.llm_fallback.clone());
        }
        spec.tts = spec.tts.or_else(|| self.voice.tts.clone());
        let pipeline = self.id();
        let parties = CallParties {
            call_id: &self.parties.call_id,
            caller: &self.parties.caller,
            called: &self.parties.called,
            sends_digits: self.parties.sends_digits,
        };
        match Talk::start_in_flow(
            now,
            &self.factory,
            &spec,
            &parties,
            exits,
            media.playback_position(),
            pipeline,
        ) {
            Ok(talk) => {
                self.agent = Some(AgentTurns {
                    talk,
                    max_turns,
                    caller_turns: 0,
                });
            }
            Err(e) => {
                out.push(CallEventData::WorkflowError(WorkflowError {
                    agent_id: agent_id.to_owned(),
                    field: Some(e.field),
                    error: e.detail,
                    extra: Extra::new(),
                }));
                self.hangup = Some("agent_misconfigured");
            }
        }
    }

    /// Lets the agent converse, and takes the call back when it exits, finishes, or has
    /// answered `max_turns` caller turns.
    pub(super) fn drive_agent(
        &mut self,
        now: Instant,
        media: &mut CallMedia,
        out: &mut Vec<CallEventData>,
    ) {
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        let before = out.len();
        agent.talk.drive(now, media, out);
        agent.caller_turns += out[before..]
            .iter()
            .filter(|e| matches!(e, CallEventData::Transcript(line) if line.role == "caller"))
            .count() as u32;
        let exit = match agent.talk.hangup() {
            Some("workflow_exit") => Some(
                agent
                    .talk
                    .exit_requested()
                    .map(AgentExit::Condition)
                    .unwrap_or(AgentExit::Finished),
            ),
            Some(_) => Some(AgentExit::Finished),
            None if agent.max_turns.is_some_and(|max| agent.caller_turns >= max)
                && agent.talk.is_idle() =>
            {
                Some(AgentExit::MaxTurns)
            }
            None => None,
        };
        if let Some(exit) = exit {
            out.extend(agent.talk.shutdown(now));
            // The agent's last requests (its pipeline's close among them) still go out.
            let talk = &mut agent.talk;
            self.provider
                .extend(std::iter::from_fn(|| talk.poll_provider_request()));
            self.agent = None;
            media.stop_playback();
            self.executor
                .handle_event(now, WorkflowEvent::AgentExited(exit));
        }
    }
}

//! The scripted model turns and the readings of what the agent said that several of the core's
//! test files share: a reply that calls a tool (after optional words), the texts the agent
//! spoke, and a leg dialled by the API.

use std::time::{Duration, Instant};

use super::harness::Sim;
use crate::call::core::LegId;
use crate::call::provider_request::ProviderRequest;
use crate::llm::{FinishReason, LlmError, LlmEvent};

/// A completion that says `words` (when given) after `first` ms, then calls the tool `name`
/// with `arguments` (as call `id`) and stops for its result.
pub(super) fn calls_tool(
    first: u64,
    words: Option<&str>,
    id: &str,
    name: &str,
    arguments: serde_json::Value,
) -> Vec<(Duration, Result<LlmEvent, LlmError>)> {
    let mut events = Vec::new();
    let mut wait = Duration::from_millis(first);
    if let Some(words) = words {
        events.push((wait, Ok(LlmEvent::Token(words.into()))));
        wait = Duration::from_millis(10);
    }
    let call = LlmEvent::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    };
    let stop = LlmEvent::Done {
        finish_reason: FinishReason::ToolCalls,
        usage: None,
    };
    events.push((wait, Ok(call)));
    events.push((Duration::from_millis(10), Ok(stop)));
    events
}

/// The text of a request to speak.
pub(super) fn speak_text(request: &ProviderRequest) -> Option<String> {
    match request {
        ProviderRequest::Speak { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// Every text the agent asked to have spoken, in order.
pub(super) fn spoken(sim: &Sim) -> Vec<String> {
    sim.requests
        .iter()
        .filter_map(|(_, r)| speak_text(r))
        .collect()
}

/// The texts the agent asked to have spoken at or after `since`.
pub(super) fn spoken_since(sim: &Sim, since: Instant) -> Vec<String> {
    sim.requests
        .iter()
        .filter(|(at, _)| *at >= since)
        .filter_map(|(_, r)| speak_text(r))
        .collect()
}

/// Dials `to` as the API would, now, and hands the core's requests out.
pub(super) fn dial(sim: &mut Sim, to: &str) -> LegId {
    let now = sim.now;
    let leg = sim.core.dial(now, to, "api", None).expect("dial");
    sim.drain();
    leg
}

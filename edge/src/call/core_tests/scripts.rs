//! The scripted model turns and the readings of what the agent said and the parties heard that
//! several of the core's test files share: a reply that calls a tool (after optional words), the
//! texts the agent spoke, a leg dialled by the API, the tones of a bridged call, and the
//! provider failures a call recorded.

use std::time::{Duration, Instant};

use super::harness::Sim;
use crate::call::core::LegId;
use crate::call::provider_request::ProviderRequest;
use crate::llm::{FinishReason, LlmError, LlmEvent};

/// The caller's tone and the added party's.
pub(super) const CALLER_HZ: f64 = 440.0;
pub(super) const PARTY_HZ: f64 = 1800.0;
/// A tone heard clearly (sent at 3000) and one not heard at all.
pub(super) const HEARD: f64 = 1500.0;
pub(super) const UNHEARD: f64 = 150.0;
/// The first added leg.
pub(super) const ONE: LegId = LegId(1);

/// The payloads of the call's `call.provider_failed` events, as the control plane stores them.
pub(super) fn provider_failures(sim: &Sim) -> Vec<serde_json::Value> {
    sim.events
        .iter()
        .filter(|(_, e)| e.kind() == "call.provider_failed")
        .map(|(_, e)| e.to_payload())
        .collect()
}

/// What a call records when its primary model gave no first token within 800 ms and the
/// fallback model answered instead.
pub(super) fn first_token_timeout_record() -> serde_json::Value {
    serde_json::json!({
        "stage": "llm",
        "provider": "openai/gpt-4o-mini",
        "error": "timeout: no first token within 800 ms",
        "fallback": "llm_fallback",
        "fallback_provider": "anthropic/claude-haiku-4-5",
        "timeout_ms": 800,
    })
}

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

/// Asserts that, from `settled` on, leg 1 (the `party`) hears the caller and not itself and the
/// caller hears it.
pub(super) fn assert_hear_each_other(sim: &Sim, settled: Instant, party: &str) {
    let party_hears = sim.party_level(ONE, settled, CALLER_HZ);
    assert!(
        party_hears > HEARD,
        "the {party} hears the caller: {party_hears}"
    );
    assert!(
        sim.party_level(ONE, settled, PARTY_HZ) < UNHEARD,
        "not itself"
    );
    let caller_hears = sim.caller_level(settled, sim.now, PARTY_HZ);
    assert!(
        caller_hears > HEARD,
        "the caller hears the {party}: {caller_hears}"
    );
}

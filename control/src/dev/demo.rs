//! The demo agent `freya dev` seeds: a front desk that tells callers what it can do, answers
//! opening hours and the address, takes booking requests through a signed tool (the demo desk,
//! [`super::desk`]), puts callers through to a person (`freya dev --transfer-to`), and says
//! goodbye and hangs up — offline, with the `rules` replier, the local recogniser and espeak-ng.

use freya_shared::model::agent::ToolSpec;
use freya_shared::model::{AgentSpec, RulesSpec};
use serde_json::json;

/// The demo agent's name, also how a seeded demo is recognised.
pub(super) const NAME: &str = "Demo agent";
/// Its booking tool.
pub(super) const BOOKING_TOOL: &str = "record_booking";

/// The demo agent, its booking tool at `desk_url`, signed with `tool_secret`.
pub(super) fn agent(desk_url: &str, tool_secret: &str, transfer_to: &str) -> AgentSpec {
    AgentSpec {
        name: NAME.into(),
        language: "en".into(),
        system_prompt: "You are the friendly front desk of a demo business. Keep answers short."
            .into(),
        first_message: Some(
            "Hello, thanks for calling Freya. Ask me about our hours, our address, a booking, \
             or a person."
                .into(),
        ),
        max_call_seconds: 900,
        silence_reprompt_seconds: Some(10),
        tools: vec![booking_tool(desk_url)],
        tool_secret: Some(tool_secret.into()),
        transfer_destinations: vec![transfer_to.into()],
        rules: Some(RulesSpec::demo(BOOKING_TOOL, transfer_to)),
        ..Default::default()
    }
}

/// The booking tool, posting to `desk_url`.
pub(super) fn booking_tool(desk_url: &str) -> ToolSpec {
    ToolSpec {
        name: BOOKING_TOOL.into(),
        description: "Records a caller's request for an appointment, for a person to confirm."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {"request": {"type": "string", "description": "What the caller asked for, in their words."}},
            "required": ["request"]
        }),
        url: desk_url.into(),
        timeout_ms: 5_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_agent_is_valid_and_offers_what_its_greeting_promises() {
        let spec = agent("http://127.0.0.1:8080/demo/bookings", "secret", "+15550100");
        assert_eq!(spec.validate(), []);
        let greeting = spec.first_message.clone().unwrap_or_default();
        let rules = spec.rules.expect("rules");
        for (intent, promised) in [
            ("hours", "hours"),
            ("address", "address"),
            ("booking", "booking"),
            ("person", "person"),
        ] {
            assert!(greeting.contains(promised), "{greeting}");
            assert!(rules.rules.iter().any(|r| r.intent == intent));
        }
    }
}

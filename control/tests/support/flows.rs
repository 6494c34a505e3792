//! The example workflow of the workflow issue, which both the workflow API tests and the
//! calls routed through a workflow use: a greeting, a menu (one for sales, two for accounts),
//! an agent node that can hand over to a person, and a goodbye — all on offline providers.

use serde_json::{json, Value};

/// The support line; `sales` hands calls to `agent`, and the menu waits `menu_timeout_ms` for
/// a choice before asking again.
pub fn support_line(agent: &str, menu_timeout_ms: u32) -> Value {
    json!({"name": "Support line", "start": "greet",
    "voice": {"tts": {"provider": "espeak"}, "stt": {"provider": "local"}, "llm": {"provider": "rules"}},
    "variables": {"tier": "basic", "business": "Acme"},
    "nodes": [
     {"id": "greet", "type": "say", "text": "Welcome to {{business}}. Press one for sales, two for accounts.", "next": "menu"},
     {"id": "menu", "type": "gather", "input": ["dtmf", "speech"], "max_digits": 1, "timeout_ms": menu_timeout_ms, "save_as": "choice", "next": "route"},
     {"id": "route", "type": "condition", "branches": [{"when": "choice == '1'", "next": "sales"}, {"when": "choice == '2'", "next": "accounts"}], "else": "menu"},
     {"id": "sales", "type": "agent", "agent_id": agent, "exits": [{"when_caller": "wants to speak to a person", "next": "handoff"}], "max_turns": 20, "next": "bye"},
     {"id": "handoff", "type": "transfer", "to": "+15551234567"},
     {"id": "accounts", "type": "say", "text": "Connecting you to billing.", "next": "bye"},
     {"id": "bye", "type": "end", "text": "Goodbye."}
    ]})
}

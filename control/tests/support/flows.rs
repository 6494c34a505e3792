//! The example workflow of the workflow issue, which both the workflow API tests and the
//! calls routed through a workflow use: a greeting, a menu (one for sales, two for accounts),
//! an agent node that can hand over to a person, and a goodbye — all on offline providers.

use freya_control::server::ControlPlane;
use serde_json::{json, Value};

use super::http::{workspace_with_keys, Api};
use super::{Backend, TestDb};

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

/// The support line as the workflow API tests create it (a 5 s menu).
pub fn api_support_line(agent: &str) -> Value {
    support_line(agent, 5000)
}

/// `flow` with `edit` applied to its node `id`.
pub fn with_node(mut flow: Value, id: &str, edit: impl FnOnce(&mut Value)) -> Value {
    if let Some(node) = flow["nodes"]
        .as_array_mut()
        .and_then(|nodes| nodes.iter_mut().find(|n| n["id"] == id))
    {
        edit(node);
    }
    flow
}

/// A problem's place: its node and field.
pub type Located = (&'static str, &'static str);

pub fn located(body: &Value) -> Vec<(Value, Value)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| (e["node"].clone(), e["field"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A control plane with a workspace (its four keys) and an agent for the flows to name.
pub struct FlowWorld {
    pub db: TestDb,
    pub control: ControlPlane,
    pub api: Api,
    /// owner, admin, editor, viewer
    pub keys: [String; 4],
    pub agent: String,
}

/// A fresh [`FlowWorld`] on `backend`.
pub async fn flow_world(backend: Backend) -> FlowWorld {
    let (db, control, api) = super::http::started(backend).await;
    let (_, keys) = workspace_with_keys(&control, "Flows").await;
    let sales = json!({"name": "Sales"});
    let agent = api.create("/v1/agents", &keys[0], sales).await;
    let agent = agent["id"].as_str().expect("agent id").to_owned();
    FlowWorld {
        db,
        control,
        api,
        keys,
        agent,
    }
}

impl FlowWorld {
    /// What the viewer reads at `path` (200).
    pub async fn read(&self, path: &str) -> Value {
        self.api.expect(200, "GET", path, &self.keys[3], None).await
    }

    /// `flow` created by the editor (201); the answer's body.
    pub async fn create(&self, flow: Value) -> Value {
        self.api.create("/v1/workflows", &self.keys[2], flow).await
    }

    /// Stops the control plane and drops its database.
    pub async fn stop(self) {
        self.control.stop().await;
        self.db.cleanup().await;
    }
}

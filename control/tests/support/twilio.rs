//! What the Twilio tests share: a control plane and an edge in-process, a Twilio account per
//! `(auth token, REST base URL)` created through `/v1/providers`, an agent on `NUMBER` whose STT,
//! LLM and TTS are the fake OpenAI servers, and helpers to read the finished call.

use std::time::Duration;

use freya_control::store::{CallRecord, Role, StoredEvent};
use serde_json::json;

use super::eventually;
use super::http::Api;

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "twilio-auth-token";
pub const NUMBER: &str = "+15550100";
/// Where the agent may transfer calls.
pub const TRANSFER_TO: &str = "+15559990000";
/// The priority of the first Twilio account `world` creates (the next ones follow it), so a
/// test can rank a trunk before (lower) or after (higher) them.
pub const TWILIO_PRIORITY: usize = 10;

/// The call world of these tests, and an admin key of its workspace.
pub struct World {
    pub world: super::world::World,
    pub admin: String,
}

impl std::ops::Deref for World {
    type Target = super::world::World;

    fn deref(&self) -> &Self::Target {
        &self.world
    }
}

/// A control plane, an edge, the speech and LLM fakes, and number `NUMBER` answered by an agent
/// using them; `accounts` are Twilio accounts `(auth token, REST base URL)` in priority order
/// from `TWILIO_PRIORITY`, created through `/v1/providers`.
pub async fn world(first_message: &str, accounts: &[(&str, String)]) -> World {
    let world = super::world::World::builder()
        .workspace("Twilio")
        .voice()
        .agent(json!({
            "name": "Front desk",
            "system_prompt": "You are the front desk. The caller is {{caller_number}}.",
            "first_message": first_message,
            "transfer_destinations": [TRANSFER_TO]
        }))
        .number(NUMBER)
        .start()
        .await;
    let admin = world.key(Role::Admin).await;
    let api = Api::of(&world.control);
    for (i, (token, base_url)) in accounts.iter().enumerate() {
        api
            .create("/v1/providers", &admin, json!({"kind": "twilio", "name": format!("Twilio {i}"), "account_sid": SID,
                            "auth_token": token, "priority": TWILIO_PRIORITY + i, "api_base_url": base_url})).await;
    }
    let wanted = accounts.len();
    super::until_edge_holds(&world.edge, "the edge to learn the accounts", |s| {
        s.providers.len() == wanted
    })
    .await;
    World { world, admin }
}

/// `world` with one Twilio account (`SID`, `TOKEN`) created through `/v1/providers` by an admin
/// of its workspace; its REST API is nowhere, for tests that place no call through it.
pub async fn with_account(world: super::world::World) -> World {
    let admin = world.key(Role::Admin).await;
    Api::of(&world.control)
        .create(
            "/v1/providers",
            &admin,
            json!({"kind": "twilio", "name": "Twilio", "account_sid": SID,
                        "auth_token": TOKEN, "api_base_url": "http://127.0.0.1:9"}),
        )
        .await;
    World { world, admin }
}

pub fn voice_url(w: &World) -> String {
    format!("http://{}/twilio/voice", w.edge.http_addr)
}

pub fn webhook_form<'a>(call_sid: &'a str, to: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", SID),
        ("CallSid", call_sid),
        ("From", "+15557770123"),
        ("To", to),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
}

pub async fn finished_call(w: &World, direction: &str) -> (CallRecord, Vec<StoredEvent>) {
    let call = eventually(Duration::from_secs(20), "the call to end", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        let direction = direction.to_owned();
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            calls
                .into_iter()
                .find(|c| c.direction == direction && c.ended_at_ms.is_some())
        }
    })
    .await;
    let events = w
        .control
        .store
        .call_events(&w.scope, &call.id)
        .await
        .expect("events");
    (call, events)
}

#[allow(unused_imports)]
pub use super::voice_call::of_kind;

pub async fn teardown(w: World) {
    w.world.stop().await;
}

/// Asks the control plane to place a call from `NUMBER` to `to` (retrying until the edge has
/// registered and can take it).
pub async fn place_call(w: &World, to: &str) -> String {
    let api = Api::of(&w.control);
    let placed = eventually(Duration::from_secs(10), "the edge to take calls", || {
        let api = &api;
        let admin = w.admin.clone();
        async move {
            let answer = api
                .call(
                    "POST",
                    "/v1/calls",
                    &admin,
                    Some(json!({"from": NUMBER, "to": to})),
                )
                .await;
            answer.status.is_success().then_some(answer)
        }
    })
    .await;
    placed.body["id"].as_str().expect("id").to_owned()
}

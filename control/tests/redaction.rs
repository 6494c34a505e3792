//! An agent's `privacy.redact` on the control plane, on SQLite and PostgreSQL: a call's
//! transcript with a card number and an e-mail address (written and spoken) is stored, listed
//! and sent to a webhook with placeholders instead, while the call's own numbers stay; an agent
//! without the section keeps its transcript verbatim; an unknown kind is a 422 naming the field.

use crate::support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::local_http::serve_until;
use crate::support::on_both_engines;
use crate::support::{eventually, Backend};
use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_shared::ids::new_id;
use freya_shared::model::CallEvent;

const CARD: &str = "4111 1111 1111 1111";
const SPOKEN_EMAIL: &str = "bob dot smith at example dot com";
const EMAIL: &str = "jane.doe@example.org";
const CALLER: &str = "+14155550123";

type Bodies = Arc<Mutex<Vec<String>>>;

async fn receiver(stop: CancellationToken) -> (Bodies, SocketAddr) {
    async fn receive(State(seen): State<Bodies>, body: Bytes) -> AxumStatus {
        seen.lock()
            .expect("lock")
            .push(String::from_utf8_lossy(&body).into_owned());
        AxumStatus::OK
    }
    let seen = Bodies::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    (seen, serve_until(app, stop).await)
}

async fn agent(api: &Api, key: &str, privacy: Option<Value>) -> String {
    let mut body = json!({"name": "Payments"});
    if let Some(p) = privacy {
        body["privacy"] = p;
    }
    let created = api.create("/v1/agents", key, body).await;
    created["id"].as_str().expect("agent id").to_owned()
}

/// Stores a call of `agent_id` with one caller line holding a card number and two addresses.
async fn call_with_pii(control: &ControlPlane, ws: &str, agent_id: &str) -> String {
    let call = new_id();
    let started = CallEvent::raw(
        &call,
        ws,
        "call.started",
        json!({"direction": "inbound", "from": CALLER, "to": "+15550100", "agent_id": agent_id}),
    );
    let line = format!("my card is {CARD} and my email is {SPOKEN_EMAIL} or {EMAIL}");
    let transcript = CallEvent::raw(
        &call,
        ws,
        "call.transcript",
        json!({"role": "caller", "text": line, "start_ms": 10, "end_ms": 900}),
    );
    // One batch: the call's row is written by the first event of the same transaction.
    control
        .store
        .record_call_events("edge-1", &[started, transcript])
        .await
        .expect("events stored");
    call
}

fn leaks(text: &str) -> Vec<&'static str> {
    [CARD, "4111111111111111", SPOKEN_EMAIL, EMAIL]
        .into_iter()
        .filter(|s| text.contains(s))
        .collect()
}

async fn a_redacting_agent_stores_and_sends_no_card_or_email(backend: Backend) {
    let stop = CancellationToken::new();
    let (seen, addr) = receiver(stop.clone()).await;
    let (db, control) = support::control_plane(backend).await;
    let api = Api::of(&control);
    let (ws, [_, admin, ..]) = workspace_with_keys(&control, "W").await;
    api.create(
        "/v1/webhooks",
        &admin,
        json!({"url": format!("http://{addr}/hook"), "events": ["*"],
                    "secret": "whsec-0123456789abcdef"}),
    )
    .await;
    let private = agent(
        &api,
        &admin,
        Some(json!({"redact": ["card_number", "email"]})),
    )
    .await;
    let open = agent(&api, &admin, None).await;

    let call = call_with_pii(&control, &ws, &private).await;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let events = control
        .store
        .call_events(&scope, &call)
        .await
        .expect("events");
    let stored = serde_json::to_string(&events).expect("json");
    assert_eq!(leaks(&stored), Vec::<&str>::new(), "{stored}");
    let text = events
        .iter()
        .find(|e| e.kind == "call.transcript")
        .and_then(|e| e.payload["text"].as_str())
        .expect("the transcript line");
    assert_eq!(
        text,
        "my card is [card_number] and my email is [email] or [email]"
    );
    // The call's own number is its record's key: kept.
    assert!(stored.contains(CALLER), "{stored}");
    // What is really in the database, and what the API and the webhook show.
    let row = db
        .read_text(
            "SELECT payload FROM call_events WHERE call_id = $1 AND kind = 'call.transcript'",
            &call,
        )
        .await;
    assert!(row.contains("[card_number]"), "{row}");
    assert_eq!(leaks(&row), Vec::<&str>::new());
    let listed = api
        .expect(200, "GET", &format!("/v1/calls/{call}"), &admin, None)
        .await;
    assert_eq!(leaks(&listed.to_string()), Vec::<&str>::new());
    let bodies = eventually(Duration::from_secs(10), "both webhooks", || async {
        let bodies = seen.lock().expect("lock").clone();
        (bodies.len() >= 2).then_some(bodies)
    })
    .await;
    for body in &bodies {
        assert_eq!(leaks(body), Vec::<&str>::new(), "{body}");
    }
    assert!(bodies.iter().any(|b| b.contains("[card_number]")));

    // The same line for an agent that redacts nothing is kept as said.
    let verbatim = call_with_pii(&control, &ws, &open).await;
    let events = control
        .store
        .call_events(&scope, &verbatim)
        .await
        .expect("events");
    let stored = serde_json::to_string(&events).expect("json");
    assert_eq!(leaks(&stored), vec![CARD, SPOKEN_EMAIL, EMAIL]);

    control.stop().await;
    stop.cancel();
    db.cleanup().await;
}

async fn an_unknown_kind_is_refused_by_field(backend: Backend) {
    let (db, control) = support::control_plane(backend).await;
    let api = Api::of(&control);
    let (_, [_, admin, ..]) = workspace_with_keys(&control, "W").await;
    let refused = api
        .expect(
            422,
            "POST",
            "/v1/agents",
            &admin,
            Some(json!({"name": "A", "privacy": {"redact": ["email", "passport"]}})),
        )
        .await;
    assert_eq!(refused["errors"][0]["field"], "privacy.redact[1]");
    let typo = api
        .expect(
            422,
            "POST",
            "/v1/agents",
            &admin,
            Some(json!({"name": "A", "privacy": {"redact": ["email"], "redact_befor_llm": true}})),
        )
        .await;
    assert!(typo.to_string().contains("redact_befor_llm"), "{typo}");
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    a_redacting_agent_stores_and_sends_no_card_or_email,
    an_unknown_kind_is_refused_by_field
);

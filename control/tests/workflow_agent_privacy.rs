//! A workflow's `agent` node on the control plane, on SQLite and PostgreSQL: a control plane and
//! an edge in-process, a real SIP call from the project's UAC speaking espeak-ng audio, and a
//! fake speech-to-text that hears the caller say a card number and an e-mail address. The
//! agent the node hands the call to redacts card numbers, the flow redacts e-mail addresses;
//! every stored transcript line and event payload of the call, and every webhook sent for it,
//! shows both placeholders and neither value, while the call's own numbers stay.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::http::Api;
use crate::support::on_both_engines;
use crate::support::voice_call::{of_kind, only_call_events, patient_caller, place_spoken_call};
use crate::support::webhook_sink::webhook_receiver;
use crate::support::world::World;
use crate::support::{eventually, Backend};
use freya_control::store::Role;
use freya_edge::llm::fakes::FakeReply;
use freya_edge::sip::sdp::Codec;

const HEARD: &str =
    "my card is 4111 1111 1111 1111 and my email is bob dot smith at example dot com";
const REDACTED: &str = "my card is [card_number] and my email is [email]";
const SECRETS: [&str; 4] = [
    "4111 1111 1111 1111",
    "4111111111111111",
    "bob dot smith",
    "example dot com",
];

/// A flow that greets nobody and hands the call to `agent` at once.
fn card_desk(agent: &str) -> Value {
    json!({"name": "Card desk", "start": "desk",
    "privacy": {"redact": ["email"]},
    "nodes": [
     {"id": "desk", "type": "agent", "agent_id": agent, "max_turns": 5, "next": "bye"},
     {"id": "bye", "type": "end"}
    ]})
}

fn leaks(text: &str) -> Vec<&'static str> {
    SECRETS.into_iter().filter(|s| text.contains(s)).collect()
}

async fn an_agent_nodes_transcript_is_redacted_by_the_flow_and_the_agent(backend: Backend) {
    let w = World::builder()
        .backend(backend)
        .workspace("Payments")
        .voice()
        .agent(json!({
            "name": "Card agent",
            "system_prompt": "You take payments.",
            "first_message": "Hello.",
            "privacy": {"redact": ["card_number"]}
        }))
        .workflow(card_desk)
        .start()
        .await;
    let stop = CancellationToken::new();
    let (hooks, url) = webhook_receiver(stop.clone()).await;
    let api = Api::of(&w.control);
    let admin = w.key(Role::Admin).await;
    let body = json!({"url": url, "events": ["*"], "secret": "whsec-0123456789abcdef"});
    api.expect(201, "POST", "/v1/webhooks", &admin, Some(body))
        .await;
    w.llm().respond_with(|_| {
        FakeReply::text("Card 4111 1111 1111 1111 for bob dot smith at example dot com, noted.")
    });
    w.speech().set_default_transcript(HEARD);

    let report = place_spoken_call(
        w.edge.sip_addr,
        Codec::Pcmu,
        &["My card number and my email address."],
        patient_caller(Duration::from_millis(1500)),
        Duration::from_secs(9),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.failure);

    let events = only_call_events(&w.control, &w.scope).await;
    let started = of_kind(&events, "call.started");
    assert!(
        started[0].payload["workflow_id"].is_string(),
        "a workflow's call: {events:#?}"
    );
    let lines: Vec<(&str, &str)> = of_kind(&events, "call.transcript")
        .iter()
        .filter_map(|e| Some((e.payload["role"].as_str()?, e.payload["text"].as_str()?)))
        .collect();
    assert!(
        lines.contains(&("caller", REDACTED)),
        "the caller's line, both kinds redacted: {lines:?}"
    );
    assert!(
        lines.iter().any(|(role, text)| *role != "caller"
            && text.contains("[card_number]")
            && text.contains("[email]")),
        "the agent's line, both kinds redacted: {lines:?}"
    );
    let stored = serde_json::to_string(&events).expect("json");
    assert_eq!(leaks(&stored), Vec::<&str>::new(), "{stored}");
    assert!(stored.contains("+15550123"), "the caller's number is kept");

    // What is really in the database, not only what the store hands back.
    let call_id = &events[0].call_id;
    let row =
        w.db.read_text(
            "SELECT payload FROM call_events WHERE call_id = $1 AND kind = 'call.transcript' \
             AND payload LIKE '%\"caller\"%'",
            call_id,
        )
        .await;
    assert!(row.contains("[card_number]"), "{row}");
    assert_eq!(leaks(&row), Vec::<&str>::new(), "{row}");

    // Every webhook of the call, the transcript lines among them.
    let transcripts = events
        .iter()
        .filter(|e| e.kind == "call.transcript")
        .count();
    let bodies = eventually(Duration::from_secs(20), "the call's webhooks", || async {
        let bodies: Vec<String> = hooks
            .lock()
            .expect("hooks")
            .iter()
            .map(Value::to_string)
            .collect();
        let sent = bodies
            .iter()
            .filter(|b| b.contains(r#""type":"call.transcript_ready""#))
            .count();
        let ended = bodies.iter().any(|b| b.contains(r#""type":"call.ended""#));
        (ended && sent >= transcripts).then_some(bodies)
    })
    .await;
    for body in &bodies {
        assert_eq!(leaks(body), Vec::<&str>::new(), "{body}");
    }
    assert!(bodies.iter().any(|b| b.contains("[card_number]")));
    stop.cancel();
    w.teardown().await;
}

on_both_engines!(multi_thread; an_agent_nodes_transcript_is_redacted_by_the_flow_and_the_agent);

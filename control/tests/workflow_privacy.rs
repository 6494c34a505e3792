//! A workflow's privacy end to end: a control plane and an edge in-process, a real HTTP
//! endpoint for the flow's `function` node, and sipp pressing a card's digits (RFC 4733 events
//! and in-band tones) at a `sensitive` gather. The endpoint receives the real digits; the
//! stored record (and so its webhooks) shows `[redacted]` for them and `[email]` for the
//! address the endpoint answered with (the flow's `privacy.redact`); the recording has no key
//! tone; and no log line, at debug level, carries the digits, the address or the caller's
//! number. The same flow without `sensitive` keeps the keys, so the test can tell.

mod support;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use serde_json::{json, Value};

use support::keypad::{call_pressing, keys_heard};
use support::local_http::serve;
use support::world::World;

const KEYS: &str = "411";
const ADDRESS: &str = "bob.smith@example.com";
const CALLER: &str = "+15550001";

/// Every log line of the process, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }

    fn clear(&self) {
        self.0.lock().expect("logs").clear();
    }
}

/// A payment endpoint that keeps what it was sent and answers with the card and an address.
async fn payment_endpoint() -> (String, Arc<Mutex<Vec<Value>>>) {
    let asked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = asked.clone();
    let app = axum::Router::new().route(
        "/charge",
        post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let card = body["card"].as_str().unwrap_or_default().to_owned();
                kept.lock().expect("asked").push(body);
                axum::Json(
                    json!({"ok": true, "note": format!("charged card {card} for {ADDRESS}")}),
                )
            }
        }),
    );
    let url = format!("http://{}/charge", serve(app).await);
    (url, asked)
}

fn card_line(url: &str, sensitive: bool) -> Value {
    json!({"name": "Card line", "start": "card", "record": true,
    "privacy": {"redact": ["email"]},
    "voice": {"tts": {"provider": "espeak"}, "stt": {"provider": "local"}, "llm": {"provider": "rules"}},
    "nodes": [
     {"id": "card", "type": "gather", "input": ["dtmf"], "max_digits": 3, "timeout_ms": 10000,
      "sensitive": sensitive, "save_as": "card", "next": "pay"},
     {"id": "pay", "type": "function", "url": url, "body": {"card": "{{card}}"},
      "save_as": "receipt", "timeout_ms": 10000, "next": "wait", "on_error": "wait"},
     {"id": "wait", "type": "gather", "input": ["dtmf"], "timeout_ms": 30000, "retries": 0,
      "save_as": "more", "next": "bye", "no_input": "bye"},
     {"id": "bye", "type": "end"}
    ]})
}

/// One call through the card line; the stored events, the caller's channel of the recording
/// as the API serves it, and what the endpoint was sent.
async fn card_call(sensitive: bool) -> (Vec<Value>, Vec<i16>, Vec<Value>) {
    let (url, asked) = payment_endpoint().await;
    let world = World::builder()
        .workspace("Payments")
        .number("cards")
        .workflow(move |_| card_line(&url, sensitive))
        .start()
        .await;
    let (call, events) = call_pressing(&world, KEYS).await;
    let (caller, _) = world.recording(&call.id).await;
    let events = events
        .into_iter()
        .map(|e| json!({"kind": e.kind, "payload": e.payload}))
        .collect();
    world.teardown().await;
    let asked = asked.lock().expect("asked").clone();
    (events, caller, asked)
}

fn steps<'a>(events: &'a [Value], step: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "call.workflow_step" && e["payload"]["step"] == step)
        .map(|e| &e["payload"])
        .collect()
}

fn digits(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "call.dtmf")
        .filter_map(|e| e["payload"]["digit"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_gather_reaches_the_endpoint_but_no_record_recording_or_log() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the test's log subscriber");

    let (events, caller, asked) = card_call(true).await;
    assert_eq!(
        asked,
        [json!({"card": KEYS})],
        "the endpoint gets the digits"
    );
    assert_eq!(digits(&events), vec!["[digit]"; KEYS.len()], "{events:#?}");
    let changed: Vec<&Value> = steps(&events, "variables_changed")
        .into_iter()
        .map(|s| &s["changes"])
        .collect();
    assert_eq!(changed[0]["card"], "[redacted]", "{changed:?}");
    assert_eq!(
        changed[1]["receipt"]["note"], "charged card [redacted] for [email]",
        "{changed:?}"
    );
    let stored = serde_json::to_string(&events).expect("json");
    assert!(!stored.contains(ADDRESS), "{stored}");
    assert!(!stored.contains(&format!("card {KEYS}")), "{stored}");
    let loud = caller.iter().filter(|s| s.unsigned_abs() > 3_000).count();
    assert!(loud > 4_000, "the caller's 1 kHz tone is recorded: {loud}");
    assert_eq!(keys_heard(&caller), "", "no key tone in the recording");

    let logged = logs.text();
    assert!(logged.contains("call answered"), "the logs are captured");
    assert!(logged.contains("digit=[digit]"), "{logged}");
    for secret in [ADDRESS, CALLER, "digit=4", "digit=1", "card 411", "\"411\""] {
        assert!(!logged.contains(secret), "`{secret}` logged");
    }

    // The same flow without `sensitive`: the keys are on record and in the recording.
    logs.clear();
    let (events, caller, asked) = card_call(false).await;
    assert_eq!(asked, [json!({"card": KEYS})]);
    assert_eq!(digits(&events).concat(), KEYS);
    assert_eq!(
        steps(&events, "variables_changed")[0]["changes"]["card"],
        KEYS
    );
    assert_eq!(
        keys_heard(&caller),
        KEYS,
        "the detector finds unmasked keys"
    );
    // The flow's redaction still holds for what is not marked sensitive.
    assert!(!serde_json::to_string(&events)
        .expect("json")
        .contains(ADDRESS));
    assert!(
        !logs.text().contains(CALLER),
        "numbers are masked in every call's logs"
    );
}

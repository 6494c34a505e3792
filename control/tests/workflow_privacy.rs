//! A workflow's privacy end to end: a control plane and an edge in-process, a real HTTP
//! endpoint for the flow's `function` node, and sipp pressing a card's digits (RFC 4733 events
//! and in-band tones) at a `sensitive` gather. The endpoint receives the real digits; the
//! stored record (and so its webhooks) shows `[redacted]` for them and `[email]` for the
//! address the endpoint answered with (the flow's `privacy.redact`); the recording has no key
//! tone, and none of the caller's audio while the gather collects, though their tone before it
//! (during the greeting) and after it is there; and no log line, at debug level, carries the
//! digits, the address or the caller's number. The same flow without `sensitive` keeps the keys
//! and the caller's audio throughout, so the test can tell.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use serde_json::{json, Value};

use crate::support::caller::sipp_with_media;
use crate::support::keypad::{keys_heard, pressing_between};
use crate::support::local_http::serve;
use crate::support::world::World;

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

/// The caller's 1 kHz tone before the first key and after the last (20 ms frames): the
/// greeting ends within the first, the gather's masking (1 s after the last key) well within
/// the second.
const LEAD_FRAMES: usize = 100;
const TAIL_FRAMES: usize = 150;

fn card_line(url: &str, sensitive: bool) -> Value {
    json!({"name": "Card line", "start": "hello", "record": true,
    "privacy": {"redact": ["email"]},
    "voice": {"tts": {"provider": "espeak"}, "stt": {"provider": "local"}, "llm": {"provider": "rules"}},
    "nodes": [
     {"id": "hello", "type": "say", "text": "Card line.", "next": "card"},
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
    let pcap = pressing_between(KEYS, LEAD_FRAMES, TAIL_FRAMES);
    let scenario = longer_call();
    let code = sipp_with_media(
        world.edge.sip_addr,
        &world.number,
        &scenario.path().to_string_lossy(),
        &[("pcmu_dtmf.pcap", &pcap)],
    )
    .await;
    let (call, events) = world.ended_call().await;
    assert_eq!(code, 0, "sipp's call went as scripted; {events:#?}");
    let (caller, _) = world.recording(&call.id).await;
    let events = events
        .into_iter()
        .map(|e| json!({"kind": e.kind, "payload": e.payload}))
        .collect();
    world.teardown().await;
    let asked = asked.lock().expect("asked").clone();
    (events, caller, asked)
}

/// `uac_pcmu_rfc4733_tones.xml` hanging up once the whole pcap of [`pressing_between`] with
/// the lead and tail here has been played (its own pause is for the short keypad pcap), as a
/// temporary file.
fn longer_call() -> tempfile::NamedTempFile {
    let scenario = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sipp/uac_pcmu_rfc4733_tones.xml"
    ))
    .expect("the scenario");
    let played_ms = (LEAD_FRAMES + KEYS.len() * 20 + TAIL_FRAMES) * 20;
    let pause = format!("milliseconds=\"{}\"", played_ms + 800);
    assert!(scenario.contains("milliseconds=\"3000\""));
    let longer = scenario.replace("milliseconds=\"3000\"", &pause);
    let mut file = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("temp file");
    std::io::Write::write_all(&mut file, longer.as_bytes()).expect("scenario written");
    file
}

/// Which 20 ms frames of the caller's channel between `from_ms` and `to_ms` are loud (the
/// 1 kHz tone or a key's tones, not silence).
fn loud_frames(caller: &[i16], from_ms: usize, to_ms: usize) -> usize {
    let frames = caller
        .chunks(160)
        .skip(from_ms / 20)
        .take((to_ms - from_ms) / 20);
    frames
        .filter(|f| f.iter().filter(|s| s.unsigned_abs() > 3_000).count() > 40)
        .count()
}

fn steps<'a>(events: &'a [Value], step: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "call.workflow_step" && e["payload"]["step"] == step)
        .map(|e| &e["payload"])
        .collect()
}

/// Loud frames of the caller's channel before the gather (the first 600 ms, while "Card
/// line." is said), during it (1.8 s to 3.6 s: the keys are pressed from 2 s to 2.9 s), and
/// after it (from 4.6 s, the masking over, to 6 s).
fn windows(caller: &[i16]) -> (usize, usize, usize) {
    (
        loud_frames(caller, 0, 600),
        loud_frames(caller, 1_800, 3_600),
        loud_frames(caller, 4_600, 6_000),
    )
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
    assert_eq!(keys_heard(&caller), "", "no key tone in the recording");
    // The caller's tone during the greeting and after the gather is recorded; while the gather
    // collects (from the greeting's end to 1 s after the last key) nothing of theirs is.
    let (before, during, after) = windows(&caller);
    assert!(
        before > 10,
        "the caller before the gather: {before} loud frames"
    );
    assert_eq!(
        during, 0,
        "nothing of the caller during the sensitive gather"
    );
    assert!(
        after > 40,
        "the caller after the gather: {after} loud frames"
    );

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
    let (before, during, after) = windows(&caller);
    assert!(
        before > 10 && during > 60 && after > 40,
        "the caller throughout: {before}, {during}, {after} loud frames"
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

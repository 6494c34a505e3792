//! A workflow's privacy end to end: a control plane and an edge in-process, a real HTTP
//! endpoint for the flow's `function` node, and sipp pressing a card's digits (RFC 4733 events
//! and in-band tones) at a `sensitive` gather. The endpoint receives the real digits; the
//! stored record (and so its webhooks) shows `[redacted]` for them and `[email]` for the
//! address the endpoint answered with (the flow's `privacy.redact`); the recording has no key
//! tone, and none of the caller's audio while the line asking for the card plays (callers
//! answer over it) nor while the gather collects, though their tone before it (during the
//! greeting, which a listening menu separates from the prompt) and after it is there; and no log line, at debug level, carries the digits, the
//! address or the caller's number. The same flow without `sensitive` keeps the keys and the
//! caller's audio throughout, so the test can tell.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use serde_json::{json, Value};

use crate::support::caller::sipp_with_media;
use crate::support::keypad::{keys_heard, pressing_between};
use crate::support::local_http::serve;
use crate::support::logs::CapturedLogs;
use crate::support::world::World;

const KEYS: &str = "411";
const ADDRESS: &str = "bob.smith@example.com";
const CALLER: &str = "+15550001";

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
/// greeting, the menu's wait and the prompt end within the first (with seconds to spare for a
/// slow synthesis on a busy machine: keys pressed before the prompt would prove nothing), the
/// gather's masking (1 s after the last key) well within the second.
const LEAD_FRAMES: usize = 400;
const TAIL_FRAMES: usize = 200;
/// When the first key is pressed, and the last key's tone ends.
const FIRST_KEY_MS: usize = LEAD_FRAMES * 20;
const LAST_KEY_MS: usize = FIRST_KEY_MS + KEYS.len() * 20 * 20;
/// How long sipp's call lasts from its ACK: the whole pcap, and 0.8 s more.
const CALL_MS: usize = (LEAD_FRAMES + KEYS.len() * 20 + TAIL_FRAMES) * 20 + 800;
/// The line that asks for the card, said straight before the gather. The greeting before it
/// is followed by a menu that listens (a second on the keypad), so the caller over the greeting
/// is not on the way into the sensitive gather and is recorded.
const PROMPT: &str = "Please key in your card number now.";

fn card_line(url: &str, sensitive: bool) -> Value {
    json!({"name": "Card line", "start": "hello", "record": true,
    "privacy": {"redact": ["email"]},
    "voice": {"tts": {"provider": "espeak"}, "stt": {"provider": "local"}, "llm": {"provider": "rules"}},
    "nodes": [
     {"id": "hello", "type": "say", "text": "Card line.", "next": "menu"},
     {"id": "menu", "type": "gather", "input": ["dtmf"], "max_digits": 1, "timeout_ms": 1000,
      "retries": 0, "save_as": "choice", "next": "ask", "no_input": "ask"},
     {"id": "ask", "type": "say", "text": PROMPT, "next": "card"},
     {"id": "card", "type": "gather", "input": ["dtmf"], "max_digits": 3, "timeout_ms": 10000,
      "sensitive": sensitive, "save_as": "card", "next": "pay"},
     {"id": "pay", "type": "function", "url": url, "body": {"card": "{{card}}"},
      "save_as": "receipt", "timeout_ms": 10000, "next": "wait", "on_error": "wait"},
     {"id": "wait", "type": "gather", "input": ["dtmf"], "timeout_ms": 30000, "retries": 0,
      "save_as": "more", "next": "bye", "no_input": "bye"},
     {"id": "bye", "type": "end"}
    ]})
}

/// One call through the card line; the stored events, the caller's and the agent's channels of
/// the recording as the API serves it, and what the endpoint was sent.
async fn card_call(sensitive: bool) -> (Vec<Value>, Recorded, Vec<Value>) {
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
    let (caller, agent) = world.recording(&call.id).await;
    let events = events
        .into_iter()
        .map(|e| json!({"kind": e.kind, "payload": e.payload}))
        .collect();
    world.teardown().await;
    let asked = asked.lock().expect("asked").clone();
    (events, Recorded { caller, agent }, asked)
}

/// Both channels of a call's recording.
struct Recorded {
    caller: Vec<i16>,
    agent: Vec<i16>,
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
    let pause = format!("milliseconds=\"{CALL_MS}\"");
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

/// Whether a 20 ms frame of the agent's channel carries speech (espeak-ng is quieter than the
/// caller's tone).
fn spoken(frame: &[i16]) -> bool {
    frame.iter().filter(|s| s.unsigned_abs() > 1_000).count() > 20
}

/// The start (ms) of the first spoken 20 ms frame of the agent's channel from `from_ms` on.
fn first_spoken_frame(agent: &[i16], from_ms: usize) -> usize {
    let first = agent.chunks(160).skip(from_ms / 20).position(spoken);
    from_ms / 20 * 20 + first.expect("the prompt is in the recording") * 20
}

/// When the prompt was asked for, in ms from the call's start (its transcript line).
fn prompt_ms(events: &[Value]) -> usize {
    events
        .iter()
        .find(|e| e["kind"] == "call.transcript" && e["payload"]["text"] == PROMPT)
        .and_then(|e| e["payload"]["start_ms"].as_u64())
        .and_then(|ms| usize::try_from(ms).ok())
        .unwrap_or_else(|| panic!("the prompt was said: {events:#?}"))
}

/// Loud frames of the caller's channel: before the prompt (the first 600 ms, while "Card
/// line." is said), over the prompt's first 1.2 s, over the prompt and the gather (to the last
/// key: sipp's tone may start up to some hundred ms before the recording, and the mask holds
/// 1 s after the last key), and after it (from 2.8 s to 1 s before the recording's end: sipp's
/// tone stops 0.8 s before its BYE, and the tail after the last key is 4 s).
///
/// The windows after the greeting are placed by sipp's timeline (when it pressed the keys),
/// which the recording follows only while the edge keeps up: after a stall on a busy machine
/// the edge's pacer skips the ticks it missed (`rtp/pacer.rs`), and the recording, one frame per
/// tick, loses that time and ends early. The `after` window is therefore placed from the
/// recording's end (the hang-up, the same moment on both timelines), not from the keys, and the
/// `during` window ends as much before the last key as the recording is shorter than the call,
/// and the test prints both.
struct Windows {
    before: usize,
    prompt: usize,
    during: usize,
    after: usize,
}

fn windows(recorded: &Recorded, events: &[Value]) -> Windows {
    // Masked from when the prompt is asked for; heard from when its synthesis is done.
    let asked = prompt_ms(events);
    let prompt = first_spoken_frame(&recorded.agent, asked + 100);
    assert!(
        prompt + 1_200 < FIRST_KEY_MS,
        "the prompt played before the keys: from {prompt} ms"
    );
    let said = recorded
        .agent
        .chunks(160)
        .skip(prompt / 20)
        .take(60)
        .filter(|f| spoken(f))
        .count();
    assert!(
        said > 15,
        "the prompt is playing then: {said} spoken frames"
    );
    let caller = &recorded.caller;
    let recorded_ms = caller.len() / 8;
    assert!(
        recorded_ms > LAST_KEY_MS + 1_000,
        "the recording runs past the keys' mask: {recorded_ms} ms"
    );
    // Time the recording lost to skipped ticks, at most (sipp's call lasts CALL_MS from its
    // ACK): a position of the recording is at most this much earlier than the moment of the
    // call it holds, so the `during` window ends this much before the last key, and must still
    // hold the keys.
    let lost_ms = CALL_MS.saturating_sub(recorded_ms);
    assert!(
        LAST_KEY_MS - lost_ms > FIRST_KEY_MS + 100,
        "the recording lost {lost_ms} ms to a stalled edge: the keys cannot be placed in it"
    );
    // For a failure's story: sipp's tone may start a few hundred ms before the recording.
    let per_second: Vec<usize> = (0..recorded_ms / 1_000)
        .map(|s| loud_frames(caller, s * 1_000, s * 1_000 + 1_000))
        .collect();
    eprintln!("prompt asked at {asked} ms, heard from {prompt} ms; {recorded_ms} ms recorded ({lost_ms} ms lost at most); the caller's loud frames per second: {per_second:?}");
    Windows {
        before: loud_frames(caller, 0, 600.min(asked)),
        prompt: loud_frames(caller, prompt, prompt + 1_200),
        during: loud_frames(caller, asked + 100, LAST_KEY_MS - lost_ms),
        after: loud_frames(caller, recorded_ms - 2_800, recorded_ms - 1_000),
    }
}

/// The distinct keys in `keys`.
fn key_set(keys: &str) -> std::collections::BTreeSet<char> {
    keys.chars().collect()
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
    let logs = CapturedLogs::install(tracing::Level::DEBUG);

    let (events, recorded, asked) = card_call(true).await;
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
    assert_eq!(
        keys_heard(&recorded.caller),
        "",
        "no key tone in the recording"
    );
    // The caller's tone during the greeting and after the gather is recorded; while the prompt
    // plays and the gather collects (to 1 s after the last key) nothing of theirs is.
    let heard = windows(&recorded, &events);
    assert!(
        heard.before > 10,
        "the caller before the prompt: {} loud frames",
        heard.before
    );
    assert_eq!(heard.prompt, 0, "nothing of the caller over the prompt");
    assert_eq!(
        heard.during, 0,
        "nothing of the caller during the sensitive gather"
    );
    assert!(
        heard.after > 40,
        "the caller after the gather: {} loud frames",
        heard.after
    );

    let logged = logs.text();
    assert!(logged.contains("call answered"), "the logs are captured");
    assert!(logged.contains("digit=[digit]"), "{logged}");
    for secret in [ADDRESS, CALLER, "digit=4", "digit=1", "card 411", "\"411\""] {
        assert!(!logged.contains(secret), "`{secret}` logged");
    }

    // The same flow without `sensitive`: the keys are on record and in the recording.
    logs.clear();
    let (events, recorded, asked) = card_call(false).await;
    assert_eq!(asked, [json!({"card": KEYS})]);
    assert_eq!(digits(&events).concat(), KEYS);
    assert_eq!(
        steps(&events, "variables_changed")[0]["changes"]["card"],
        KEYS
    );
    // Key tones are in the unmasked recording, and only pressed keys' tones: the detector that
    // finds nothing in the masked recording above can hear keys in this one. Not their exact
    // sequence: the recording is the edge's real playout, and on a busy machine, where sipp's
    // packets come late and in bursts, the jitter buffer discards and conceals frames, so a
    // 100 ms press can go unheard or be heard twice (`41`, `111` for `411` were seen); the
    // record's `call.dtmf` above, from the RFC 4733 events, is exact.
    let unmasked = keys_heard(&recorded.caller);
    assert!(
        !unmasked.is_empty() && key_set(&unmasked).is_subset(&key_set(KEYS)),
        "the detector finds the unmasked keys: {unmasked:?}"
    );
    let heard = windows(&recorded, &events);
    assert!(
        heard.before > 10 && heard.prompt > 15 && heard.during > 100 && heard.after > 40,
        "the caller throughout: {}, {}, {}, {} loud frames",
        heard.before,
        heard.prompt,
        heard.during,
        heard.after
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

//! A secret *spoken* at a workflow's `sensitive` gather, end to end: a control plane and an
//! edge in-process, a real SIP call from the project's UAC saying a PIN in espeak-ng audio, a
//! fake speech-to-text that hears it. The flow asks for the PIN, gathers it by speech, reads it
//! back ("Thanks, ... it is.") and waits. The answer reaches the flow (the read-back is
//! synthesized with it), but no stored event, transcript line or webhook holds it: the step
//! records `[redacted]`, the read-back's transcript line shows `[redacted]` in its place, and
//! the recording holds none of the caller's words. The same flow without `sensitive` keeps
//! the caller's words in the recording and the answer on record, so the test can tell.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::eventually;
use crate::support::http::Api;
use crate::support::voice_call::{patient_caller, place_spoken_call};
use crate::support::webhook_sink::webhook_receiver;
use crate::support::world::World;
use freya_control::store::Role;
use freya_edge::sip::sdp::Codec;
use freya_edge::speech::fakes::FakeOpenAiSpeech;
use freya_loadtest::uac::TalkerConfig;

/// What the caller says and the recogniser hears.
const PIN: &str = "seven three nine two";
/// The line asking for it, straight before the gather: one sentence, synthesized in one piece,
/// so no pause between two sentences' synthesis (long on a busy machine) can pass for its end
/// and draw the caller's answer while the flow is still speaking.
const PROMPT: &str = "Welcome to the PIN line, please say your PIN.";
/// How long the caller stays on: past the read-back however slow a busy machine's synthesis is
/// (the flow then waits for keys far longer, so the caller is the one to hang up).
const CALL_HOLD: Duration = Duration::from_secs(24);

/// The PIN line: the prompt, the gather by speech, a read-back, then a long wait for keys so
/// that the caller hangs up.
fn pin_line(stt_url: &str, sensitive: bool) -> Value {
    json!({"name": "PIN line", "start": "ask", "record": true,
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "model": "whisper-1", "base_url": stt_url, "api_key": "stt-key"},
              "llm": {"provider": "rules"}},
    "nodes": [
     {"id": "ask", "type": "say", "text": PROMPT, "next": "pin"},
     {"id": "pin", "type": "gather", "input": ["speech"], "timeout_ms": 10000,
      "sensitive": sensitive, "save_as": "pin", "next": "thanks"},
     {"id": "thanks", "type": "say", "text": "Thanks, {{pin}} it is.", "next": "wait"},
     {"id": "wait", "type": "gather", "input": ["dtmf"], "timeout_ms": 60000, "retries": 0,
      "save_as": "more", "next": "bye", "no_input": "bye"},
     {"id": "bye", "type": "end"}
    ]})
}

/// What one call through the PIN line left: its stored events, the caller's channel of the
/// recording, every webhook body sent for it, and how many utterances the recogniser was sent.
struct PinCall {
    events: Vec<Value>,
    caller: Vec<i16>,
    webhooks: Vec<String>,
    heard_by_recogniser: usize,
}

async fn pin_call(sensitive: bool) -> PinCall {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_default_transcript(PIN);
    let stt_url = speech.base_url();
    let world = World::builder()
        .workspace("PINs")
        .workflow(move |_| pin_line(&stt_url, sensitive))
        .start()
        .await;
    let stop = CancellationToken::new();
    let (hooks, url) = webhook_receiver(stop.clone()).await;
    let admin = world.key(Role::Admin).await;
    let body = json!({"url": url, "events": ["*"], "secret": "whsec-0123456789abcdef"});
    Api::of(&world.control)
        .expect(201, "POST", "/v1/webhooks", &admin, Some(body))
        .await;

    // The caller answers once the prompt has played (however long its synthesis took: up to
    // 15 s before it starts), then stays on until the flow has read the answer back.
    let talker = TalkerConfig {
        await_greeting: true,
        first_turn_after: Duration::from_secs(15),
        // A stalled edge's playout can pause mid-prompt; a pause this long is its end.
        far_end_silence: Duration::from_millis(1_500),
        ..patient_caller(Duration::ZERO)
    };
    let report =
        place_spoken_call(world.edge.sip_addr, Codec::Pcmu, &[PIN], talker, CALL_HOLD).await;
    assert!(report.succeeded(), "{:?}", report.failure);
    let (call, events) = world.ended_call().await;
    let (caller, _) = world.recording(&call.id).await;
    let events: Vec<Value> = events
        .into_iter()
        .map(|e| json!({"kind": e.kind, "payload": e.payload}))
        .collect();
    let webhooks = eventually(Duration::from_secs(20), "the call's webhooks", || async {
        let bodies: Vec<String> = hooks
            .lock()
            .expect("hooks")
            .iter()
            .map(Value::to_string)
            .collect();
        let ended = bodies.iter().any(|b| b.contains(r#""type":"call.ended""#));
        ended.then_some(bodies)
    })
    .await;
    stop.cancel();
    world.teardown().await;
    PinCall {
        events,
        caller,
        webhooks,
        heard_by_recogniser: speech.utterances().len(),
    }
}

/// When the line starting with `text` began, in ms from the call's start.
fn line_ms(events: &[Value], text: &str) -> usize {
    events
        .iter()
        .find(|e| {
            e["kind"] == "call.transcript"
                && e["payload"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(text))
        })
        .and_then(|e| e["payload"]["start_ms"].as_u64())
        .and_then(|ms| usize::try_from(ms).ok())
        .unwrap_or_else(|| panic!("`{text}` was said: {events:#?}"))
}

/// 20 ms frames of the caller's channel between `from_ms` and `to_ms` that carry speech.
fn voiced_frames(caller: &[i16], from_ms: usize, to_ms: usize) -> usize {
    caller
        .chunks(160)
        .skip(from_ms / 20)
        .take(to_ms.saturating_sub(from_ms) / 20)
        .filter(|f| f.iter().filter(|s| s.unsigned_abs() > 1_000).count() > 10)
        .count()
}

fn agent_lines(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "call.transcript")
        .filter_map(|e| e["payload"]["text"].as_str().map(str::to_owned))
        .collect()
}

fn gathered(events: &[Value]) -> Option<Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "call.workflow_step" && e["payload"]["step"] == "variables_changed"
        })
        .find_map(|e| e["payload"]["changes"].get("pin").cloned())
}

/// Frames of the caller's words between the prompt's start and the read-back's.
fn words_in_gather(call: &PinCall) -> usize {
    let from = line_ms(&call.events, PROMPT) + 100;
    let to = line_ms(&call.events, "Thanks");
    assert!(to > from + 2_000, "the gather listened: {from}..{to} ms");
    voiced_frames(&call.caller, from, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_sensitive_answer_reaches_the_flow_but_no_record_webhook_or_recording() {
    let call = pin_call(true).await;
    assert_eq!(
        call.heard_by_recogniser, 1,
        "the caller's answer was transcribed: {:#?}",
        call.events
    );
    assert_eq!(gathered(&call.events), Some(json!("[redacted]")));
    assert!(
        agent_lines(&call.events).contains(&"Thanks, [redacted] it is.".to_owned()),
        "the read-back is said with the answer, kept without it: {:?}",
        agent_lines(&call.events)
    );
    let stored = serde_json::to_string(&call.events).expect("json");
    assert!(!stored.contains(PIN), "{stored}");
    assert!(call.webhooks.len() >= 2, "{:?}", call.webhooks);
    for body in &call.webhooks {
        assert!(!body.contains(PIN), "{body}");
    }
    assert_eq!(
        words_in_gather(&call),
        0,
        "none of the caller's words in the recording"
    );

    // Without `sensitive`: the caller's words are recorded and the answer is on record.
    let plain = pin_call(false).await;
    assert_eq!(gathered(&plain.events), Some(json!(PIN)));
    assert!(agent_lines(&plain.events).contains(&format!("Thanks, {PIN} it is.")));
    let words = words_in_gather(&plain);
    assert!(words > 20, "the caller's words: {words} voiced frames");
}

//! Live streaming speech-to-text end to end: a control plane and an edge in-process, an agent
//! whose STT is the fake Deepgram server (the real WebSocket client talks to it), its LLM and TTS
//! the fake OpenAI servers, and the project's own UAC placing a real SIP call that speaks
//! espeak-ng audio. The fake notes when audio arrived and when `CloseStream` did, which tells a
//! turn streamed while the caller spoke from one uploaded after it. Nothing asserts on speed:
//! the only time bound is the agent's own end-of-turn silence, which a turn ended by Deepgram's
//! endpointing cannot have waited for.

use std::time::Duration;

use crate::support::voice_call::{of_kind, only_call_events, patient_caller, place_spoken_call};
use crate::support::world::World;
use freya_control::store::StoredEvent;
use freya_edge::llm::fakes::FakeReply;
use freya_edge::sip::sdp::Codec;
use freya_edge::speech::fakes::{FakeDeepgram, FaultPlan};
use freya_loadtest::audio::Utterance;
use freya_loadtest::uac::{CallReport, TalkerConfig};
use serde_json::json;

const QUESTION: &str = "What are your opening hours?";

/// A control plane, an edge, the fakes, and number `demo` answered by an agent that hears with
/// the fake Deepgram and takes its turn timing from `turn`.
async fn world(turn: serde_json::Value) -> (World, FakeDeepgram) {
    let deepgram = FakeDeepgram::start().await.expect("fake deepgram");
    deepgram.require_api_key("dg-key");
    // Like Deepgram's endpointing=300: the final comes once the caller has been quiet 300 ms.
    deepgram.endpoint_after_silence(300);
    let w = World::builder()
        .workspace("Voice")
        .voice()
        .agent(json!({
            "name": "Front desk",
            "system_prompt": "You are the front desk of Acme.",
            "first_message": "Hello, thanks for calling Acme.",
            "stt": {"provider": "deepgram", "model": "nova-2", "base_url": deepgram.url(), "api_key": "dg-key"},
            "turn": turn
        }))
        .start()
        .await;
    (w, deepgram)
}

/// Places one G.711 call that asks [`QUESTION`] once the greeting has had time to play.
async fn call(w: &World, reply_timeout: Duration, hold: Duration) -> CallReport {
    let talker = TalkerConfig {
        reply_timeout,
        ..patient_caller(Duration::from_millis(1500))
    };
    place_spoken_call(w.edge.sip_addr, Codec::Pcmu, &[QUESTION], talker, hold).await
}

/// The recorded events of the one finished call.
async fn recorded_events(w: &World) -> Vec<StoredEvent> {
    only_call_events(&w.control, &w.scope).await
}

/// The caller's lines in the call's transcript.
fn caller_lines(events: &[StoredEvent]) -> Vec<String> {
    of_kind(events, "call.transcript")
        .iter()
        .filter(|e| e.payload["role"] == "caller")
        .map(|e| e.payload["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deepgram_agent_hears_the_turn_while_it_is_spoken_and_answers() {
    let (w, deepgram) = world(json!({})).await;
    deepgram.push_utterance(QUESTION, 0);
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    let report = call(&w, Duration::from_secs(6), Duration::from_secs(9)).await;
    assert!(report.succeeded(), "{:?}", report.failure);
    assert_eq!(report.turns_spoken, 1);
    assert_eq!(report.v2v_ms.len(), 1, "the reply was heard: {report:?}");

    // One session for the caller's turn, fed while the caller spoke and closed at its end.
    let conns = deepgram.connections();
    assert_eq!(conns.len(), 1, "{conns:?}");
    let turn = &conns[0];
    assert_eq!(turn.authorization.as_deref(), Some("Token dg-key"));
    assert!(
        turn.close_stream,
        "the turn ended with CloseStream: {turn:?}"
    );
    let head_start = turn.head_start().expect("audio, then CloseStream");
    assert!(
        head_start >= Duration::from_millis(800),
        "audio arrived as it was spoken, not in one upload at the end: {head_start:?}"
    );
    let rate = if turn.uri.contains("sample_rate=16000") {
        16_000
    } else {
        8_000
    };
    assert!(
        turn.audio_ms(rate) >= 1_000,
        "the whole turn went up: {} ms",
        turn.audio_ms(rate)
    );

    let requests = w.llm().requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].user_texts(), [QUESTION]);
    let spoken = w.spoken();
    assert_eq!(
        spoken,
        [
            "Hello, thanks for calling Acme.",
            "We are open from nine to five."
        ]
    );

    let events = recorded_events(&w).await;
    assert_eq!(caller_lines(&events), [QUESTION]);
    assert!(
        of_kind(&events, "call.provider_failed").is_empty(),
        "{events:?}"
    );
    let streamed = of_kind(&events, "call.stt_stream");
    assert_eq!(streamed.len(), 1, "one record per turn: {events:?}");
    let s = &streamed[0].payload;
    assert_eq!(s["provider"], "deepgram");
    assert!(s["frames_before_end"].as_u64().unwrap_or(0) >= 40, "{s}");
    assert_eq!(s["last_interim"], "What are your", "{s}");
    assert_eq!(s["endpoints"], 1, "{s}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deepgram_endpointing_ends_the_turn_before_the_silence_timeout() {
    // Five seconds of silence would end the turn without help; Deepgram's signal comes after 300 ms.
    let (w, deepgram) =
        world(json!({"end_of_turn_silence_ms": 5000, "stt_endpointing": true})).await;
    deepgram.push_utterance(QUESTION, 0);
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    let report = call(&w, Duration::from_secs(8), Duration::from_secs(12)).await;
    assert!(report.succeeded(), "{:?}", report.failure);
    assert_eq!(report.v2v_ms.len(), 1, "the reply was heard: {report:?}");
    assert!(
        report.v2v_ms[0] < 5_000.0,
        "the turn ended on the endpoint, not after 5 s of silence: {:?}",
        report.v2v_ms
    );
    let conns = deepgram.connections();
    assert_eq!(conns.len(), 1, "{conns:?}");
    let spoken = Utterance::from_spec(&format!("say:{QUESTION}"))
        .expect("espeak-ng speaks")
        .duration();
    let rate = if conns[0].uri.contains("sample_rate=16000") {
        16_000
    } else {
        8_000
    };
    // Audio time, not wall time: pre-roll (300 ms) + speech + a little silence, never 5 s of it.
    let sent = Duration::from_millis(conns[0].audio_ms(rate));
    assert!(
        sent < spoken + Duration::from_millis(3_000),
        "the stream was closed soon after the speech: {sent:?} for {spoken:?} of speech"
    );
    assert_eq!(w.llm().requests()[0].user_texts(), [QUESTION]);
    let events = recorded_events(&w).await;
    assert_eq!(caller_lines(&events), [QUESTION]);
    let streamed = of_kind(&events, "call.stt_stream");
    assert_eq!(streamed.len(), 1, "{events:?}");
    assert_eq!(streamed[0].payload["endpoints"], 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_live_session_falls_back_to_the_batch_path_without_dead_air() {
    let (w, deepgram) = world(json!({})).await;
    // The live session is refused; the batch path's own session then gets the utterance.
    deepgram.set_faults(FaultPlan {
        fail_next: 1,
        fail_status: 503,
        ..FaultPlan::default()
    });
    deepgram.push_utterance(QUESTION, 0);
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    let report = call(&w, Duration::from_secs(8), Duration::from_secs(10)).await;
    assert!(report.succeeded(), "{:?}", report.failure);
    assert_eq!(report.v2v_ms.len(), 1, "the reply was heard: {report:?}");
    let conns = deepgram.connections();
    assert_eq!(conns.len(), 2, "refused, then the batch upload: {conns:?}");
    assert!(conns[1].close_stream);
    assert_eq!(w.llm().requests()[0].user_texts(), [QUESTION]);
    let events = recorded_events(&w).await;
    assert_eq!(caller_lines(&events), [QUESTION]);
    let failed = of_kind(&events, "call.provider_failed");
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].payload["stage"], "stt_stream");
    assert_eq!(failed[0].payload["fallback"], "batch");
    assert!(
        failed[0].payload["error"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{}",
        failed[0].payload
    );
    assert!(of_kind(&events, "call.stt_stream").is_empty());
    w.stop().await;
}

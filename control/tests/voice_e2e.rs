//! The voice pipeline end to end: a control plane and an edge in-process, an agent whose STT, LLM
//! and TTS are the fake OpenAI servers from `freya_edge::speech::fakes` and `freya_edge::llm::fakes`
//! (the real clients talk to them over HTTP), and the project's own UAC (`freya-loadtest`)
//! placing a real SIP call and speaking real espeak-ng audio. Each test checks what the fakes
//! received, what the caller heard (the UAC's own measurement of reply audio) and the call events
//! the control plane recorded. Nothing here asserts on speed.

use std::sync::Arc;
use std::time::Duration;

use crate::support::local_http::serve;
use crate::support::voice_call::{
    booking_tool, model_books_friday, of_kind, only_call_events, patient_caller, place_spoken_call,
};
use crate::support::world::World;
use freya_control::store::StoredEvent;
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply, RecordedRequest};
use freya_edge::sip::sdp::Codec;
use freya_edge::speech::fakes::tone;
use freya_loadtest::uac::{CallReport, TalkerConfig};

/// A control plane, an edge, the fakes, and number `demo` answered by an agent using them.
async fn world(first_message: &str) -> World {
    world_with(first_message, serde_json::json!({})).await
}

/// As [`world`], with `extra` agent fields (tools, ...) merged into the agent.
async fn world_with(first_message: &str, extra: serde_json::Value) -> World {
    World::builder()
        .workspace("Voice")
        .voice()
        .agent(serde_json::json!({
            "name": "Front desk",
            "system_prompt": "You are the front desk of {{business_name}}. The caller is {{caller_number}}.",
            "first_message": first_message,
            "variables": {"business_name": "Acme"}
        }))
        .agent(extra)
        .start()
        .await
}

/// Places one call offering `codec` whose caller says `turns` (espeak-ng; the fake
/// speech-to-text hears each as the first) and hangs up after `hold`; the call must succeed.
async fn call(
    w: &World,
    codec: Codec,
    turns: &[&str],
    talker: TalkerConfig,
    hold: Duration,
) -> CallReport {
    w.speech().set_default_transcript(turns[0]);
    let report = place_spoken_call(w.edge.sip_addr, codec, turns, talker, hold).await;
    assert!(report.succeeded(), "{:?}", report.failure);
    report
}

/// The recorded events of the one finished call.
async fn recorded_events(w: &World) -> Vec<StoredEvent> {
    only_call_events(&w.control, &w.scope).await
}

/// One call offering `codec` whose caller asks for the opening hours after 1.5 s and hangs up
/// after `hold`: the greeting and one reply must be heard, and the fake speech-to-text must
/// have got the whole turn.
async fn opening_hours_call(w: &World, codec: Codec, hold: Duration) -> CallReport {
    let talker = patient_caller(Duration::from_millis(1500));
    let report = call(w, codec, &["What are your opening hours?"], talker, hold).await;
    assert!(report.first_audio_ms.is_some(), "the greeting was heard");
    assert_eq!(report.v2v_ms.len(), 1, "the reply was heard: {report:?}");
    let utterances = w.speech().utterances();
    assert_eq!(utterances.len(), 1, "the fake STT got the caller's turn");
    assert!(
        utterances[0].duration > Duration::from_millis(800),
        "the whole utterance was sent: {:?}",
        utterances[0].duration
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_speaks_hears_the_models_answer() {
    let w = world("Hello, thanks for calling Acme.").await;
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five. Anything else?"));
    let report = opening_hours_call(&w, Codec::Pcmu, Duration::from_secs(9)).await;
    assert_eq!(report.turns_spoken, 1);
    let requests = w.llm().requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].system_prompt().as_deref(),
        Some("You are the front desk of Acme. The caller is +15550123.")
    );
    assert_eq!(requests[0].user_texts(), ["What are your opening hours?"]);
    let spoken = w.spoken();
    assert_eq!(
        spoken,
        [
            "Hello, thanks for calling Acme.",
            "We are open from nine to five.",
            "Anything else?"
        ]
    );

    let events = recorded_events(&w).await;
    let lines: Vec<(String, String)> = of_kind(&events, "call.transcript")
        .iter()
        .map(|e| {
            (
                e.payload["role"].as_str().unwrap_or_default().to_string(),
                e.payload["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("agent".into(), "Hello, thanks for calling Acme.".into()),
            ("caller".into(), "What are your opening hours?".into()),
            (
                "agent".into(),
                "We are open from nine to five. Anything else?".into()
            ),
        ]
    );
    let latency = of_kind(&events, "call.turn_latency");
    assert_eq!(latency.len(), 1);
    for stage in [
        "stt_ms",
        "llm_first_token_ms",
        "tts_first_byte_ms",
        "first_rtp_ms",
    ] {
        assert!(
            latency[0].payload[stage].is_u64(),
            "{stage} in {}",
            latency[0].payload
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opus_caller_is_understood_and_hears_the_agent() {
    let w = world("Hello, thanks for calling Acme.").await;
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    // The edge decoded the caller's Opus well enough for its ear to send the whole turn.
    opening_hours_call(&w, Codec::Opus, Duration::from_secs(8)).await;
    let events = recorded_events(&w).await;
    assert_eq!(of_kind(&events, "call.started")[0].payload["codec"], "Opus");
    let rtp = &of_kind(&events, "call.ended")[0].payload["rtp"];
    assert_eq!(rtp["junk"], 0, "{rtp}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_talks_over_the_agent_stops_it() {
    let w =
        world("Welcome to Acme, where we have a great many things to tell you about today.").await;
    // Every sentence is six seconds of audio: the greeting is still playing when the caller speaks.
    w.speech().set_speech_audio(tone(24_000, 6_000));
    w.llm().respond_with(|_| FakeReply::text("Of course."));
    let talker = TalkerConfig {
        first_turn_after: Duration::from_millis(1000),
        // Speaks over the agent 300 ms later rather than wait for it to finish.
        reply_timeout: Duration::from_millis(300),
        pause_after_reply: Duration::from_millis(400),
        barge_in_after: None,
        ..TalkerConfig::default()
    };
    call(
        &w,
        Codec::Pcmu,
        &["Sorry, can I ask something?"],
        talker,
        Duration::from_secs(6),
    )
    .await;

    let events = recorded_events(&w).await;
    let barge = of_kind(&events, "call.barge_in");
    assert_eq!(barge.len(), 1, "{events:?}");
    let heard = barge[0].payload["heard_chars"].as_u64().unwrap_or(u64::MAX);
    let planned = barge[0].payload["planned_chars"].as_u64().unwrap_or(0);
    assert!(
        heard < planned,
        "the greeting was cut: {}",
        barge[0].payload
    );
    let greeting = of_kind(&events, "call.transcript")
        .into_iter()
        .find(|e| e.payload["role"] == "agent")
        .map(|e| e.payload.clone());
    if let Some(greeting) = greeting {
        assert_eq!(greeting["interrupted"], true, "{greeting}");
    }
    // The caller's words were still answered, with the cut greeting in the model's context.
    let requests = w.llm().requests();
    assert_eq!(requests.len(), 1, "one answer");
    let sent = &requests[0].body["messages"];
    let assistant = sent
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "assistant"))
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        !assistant.contains("tell you about today"),
        "only the heard part of the greeting is in the context: {assistant:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_testers_interrupting_caller_measures_the_agent_falling_silent() {
    let w = world("").await;
    // Each reply is six seconds long: only a barge-in ends one early.
    w.speech().set_speech_audio(tone(24_000, 6_000));
    w.llm().respond_with(|_| FakeReply::text("Of course."));
    let talker = TalkerConfig {
        first_turn_after: Duration::from_millis(300),
        reply_timeout: Duration::from_secs(6),
        pause_after_reply: Duration::from_millis(400),
        barge_in_after: Some(Duration::from_millis(500)),
        ..TalkerConfig::default()
    };
    let report = call(
        &w,
        Codec::Pcmu,
        &["I have a question.", "Wait, one more thing."],
        talker,
        Duration::from_secs(7),
    )
    .await;
    assert_eq!(report.v2v_ms.len(), 2, "both turns answered: {report:?}");
    assert_eq!(
        report.barge_in_ms.len(),
        1,
        "the second turn interrupted the first reply: {report:?}"
    );
    // Measured from the caller's first word to the reply's silence, well before the
    // reply's own end (six seconds in).
    assert!(
        report.barge_in_ms[0] < 3_000.0,
        "the reply was cut, not played out: {:?}",
        report.barge_in_ms
    );
    let events = recorded_events(&w).await;
    assert_eq!(of_kind(&events, "call.barge_in").len(), 1, "{events:?}");
    w.stop().await;
}

/// One PCMU call of 8 s at most in which a patient caller (1.2 s of quiet ends its turn) says
/// `line` once.
async fn one_question(w: &World, line: &str) -> CallReport {
    let talker = patient_caller(Duration::from_millis(1200));
    call(w, Codec::Pcmu, &[line], talker, Duration::from_secs(8)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_still_gets_the_caller_an_answer() {
    let w = world("Hello.").await;
    w.llm()
        .respond_with(|_| FakeReply::status(500, "the model is down"));
    let report = one_question(&w, "Hello, is anyone there?").await;
    assert_eq!(report.v2v_ms.len(), 1, "the apology was heard: {report:?}");
    let spoken = w.spoken();
    assert!(
        spoken.iter().any(|s| s.starts_with("Sorry")),
        "an apology was spoken: {spoken:?}"
    );
    let events = recorded_events(&w).await;
    let failed = of_kind(&events, "call.provider_failed");
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].payload["stage"], "llm");
    let ended = of_kind(&events, "call.ended");
    assert_eq!(ended[0].payload["hangup_by"], "remote", "the call went on");
    w.stop().await;
}

/// A world whose agent answers with `primary` (model `gpt-4o-mini`, `timeout_ms` to its first
/// token) and, behind it, the `llm_fallback` `backup` (model `backup-model`): two fake
/// OpenAI servers of the test's own, reached over HTTP by the real clients.
async fn world_with_fallback(
    primary: &FakeLlmServer,
    backup: &FakeLlmServer,
    timeout_ms: u32,
) -> World {
    world_with(
        "Hello.",
        serde_json::json!({
            "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": primary.base_url(),
                    "api_key": "llm-key", "timeout_ms": timeout_ms},
            "llm_fallback": {"provider": "openai", "model": "backup-model",
                             "base_url": backup.base_url(), "api_key": "fallback-key"}
        }),
    )
    .await
}

/// The `call.provider_failed` events of the one finished call that say the fallback answered.
async fn fallback_events(w: &World) -> Vec<serde_json::Value> {
    let events = recorded_events(w).await;
    of_kind(&events, "call.provider_failed")
        .into_iter()
        .filter(|e| e.payload["fallback"] == "llm_fallback")
        .map(|e| e.payload.clone())
        .collect()
}

/// One call asking "When are you open?" of a world whose primary model (`timeout_ms` to its
/// first token) answers with `primary` and whose fallback says "nine to five"; the reply must be
/// heard and the record must say once that the fallback answered. The world, the fallback
/// server, and that event.
async fn answered_by_the_fallback(
    primary: impl Fn(&RecordedRequest) -> FakeReply + Send + Sync + 'static,
    timeout_ms: u32,
) -> (World, FakeLlmServer, serde_json::Value) {
    let first = FakeLlmServer::openai().await.expect("fake primary");
    let backup = FakeLlmServer::openai().await.expect("fake backup");
    first.respond_with(primary);
    backup.respond_with(|_| FakeReply::text("We are open from nine to five."));
    let w = world_with_fallback(&first, &backup, timeout_ms).await;
    let report = one_question(&w, "When are you open?").await;
    assert_eq!(report.v2v_ms.len(), 1, "the reply was heard: {report:?}");
    let recorded = fallback_events(&w).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let event = recorded[0].clone();
    assert_eq!(event["provider"], "openai/gpt-4o-mini");
    assert_eq!(event["fallback_provider"], "openai/backup-model");
    (w, backup, event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_primary_model_is_answered_by_the_fallback_and_the_record_says_why() {
    let (w, backup, event) = answered_by_the_fallback(
        |_| FakeReply::status(503, "the primary is overloaded"),
        1500,
    )
    .await;
    assert!(w.spoken().iter().any(|s| s.contains("nine to five")));
    assert_eq!(backup.requests()[0].body["model"], "backup-model");
    assert_eq!(event["stage"], "llm");
    let error = event["error"].as_str().expect("error text");
    assert!(
        error.starts_with("error: ") && error.contains("503"),
        "{error}"
    );
    assert!(event.get("timeout_ms").is_none(), "{event}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_model_slow_to_its_first_token_is_replaced_and_the_record_says_after_how_long() {
    let (w, _, event) = answered_by_the_fallback(
        |_| FakeReply::text("Too late.").with_first_token_delay(Duration::from_secs(20)),
        700,
    )
    .await;
    assert!(!w.spoken().iter().any(|s| s.contains("Too late")));
    assert_eq!(event["timeout_ms"], 700);
    assert_eq!(event["error"], "timeout: no first token within 700 ms");
    w.stop().await;
}

/// What the customer's tool endpoint received, once it verified the signature.
#[derive(Debug, Clone)]
struct ToolHit {
    call_id: String,
    arguments: serde_json::Value,
}

/// A customer's tool endpoint on 127.0.0.1 that checks Freya's signature with `secret`, as a
/// customer would, and answers with a booking confirmation.
async fn tool_endpoint(secret: &'static str) -> (String, Arc<std::sync::Mutex<Vec<ToolHit>>>) {
    use axum::http::{HeaderMap, StatusCode};
    use freya_edge::llm::tools::{verify_signature, CALL_ID_HEADER, SIGNATURE_HEADER, TOLERANCE};
    let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hits.clone();
    let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let verdict = verify_signature(
                secret.as_bytes(),
                &header(SIGNATURE_HEADER),
                &body,
                std::time::SystemTime::now(),
                TOLERANCE,
            );
            if verdict.is_err() {
                return (StatusCode::UNAUTHORIZED, "bad signature".to_string());
            }
            let arguments = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            if let Ok(mut hits) = seen.lock() {
                hits.push(ToolHit {
                    call_id: header(CALL_ID_HEADER),
                    arguments,
                });
            }
            (StatusCode::OK, r#"{"booked": "Friday 10:00"}"#.to_string())
        }
    };
    let app = axum::Router::new().route("/book", axum::routing::post(handler));
    let url = format!("http://{}/book", serve(app).await);
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_tool_round_trips_through_a_signed_request_during_the_call() {
    const SECRET_OF_TOOLS: &str = "tool-secret-for-the-test";
    let (url, hits) = tool_endpoint(SECRET_OF_TOOLS).await;
    let w = world_with(
        "",
        serde_json::json!({
            "tool_secret": SECRET_OF_TOOLS,
            "tools": [booking_tool(&url)]
        }),
    )
    .await;
    model_books_friday(w.llm());
    let talker = patient_caller(Duration::from_millis(300));
    let report = call(
        &w,
        Codec::Pcmu,
        &["Book me in on Friday."],
        talker,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(report.v2v_ms.len(), 1, "the caller heard the answer");

    let hits = hits.lock().expect("hits").clone();
    assert_eq!(hits.len(), 1, "one signed tool request: {hits:?}");
    assert_eq!(hits[0].arguments, serde_json::json!({"day": "friday"}));
    assert!(!hits[0].call_id.is_empty(), "the call id travels with it");
    // The result went back to the model, which then answered.
    let requests = w.llm().requests();
    assert_eq!(
        requests.len(),
        2,
        "the model was asked again with the result"
    );
    let messages = requests[1].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tool_result = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("a tool message");
    assert_eq!(tool_result["tool_call_id"], "call_1");
    assert!(
        tool_result["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Friday 10:00"),
        "{tool_result}"
    );
    let events = recorded_events(&w).await;
    let tool = of_kind(&events, "call.tool");
    assert_eq!(tool.len(), 1, "{events:?}");
    assert_eq!(tool[0].payload["name"], "book_appointment");
    w.stop().await;
}

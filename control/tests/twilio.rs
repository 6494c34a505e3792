//! Calls through Twilio, end to end: a control plane and an edge in-process, a Twilio account
//! created through `/v1/providers`, an agent whose STT, LLM and TTS are the fake OpenAI servers,
//! and the fake Twilio of `freya_edge::twilio::fakes` playing Twilio: it signs and POSTs the voice
//! webhook, follows the TwiML to the edge's media-stream WebSocket and speaks real espeak-ng
//! audio as μ-law frames every 20 ms — or, for outbound calls, takes the REST request and
//! streams the answered call back. Nothing here asserts on speed.

mod support;

use std::time::Duration;

use freya_control::server::ControlPlane;
use freya_control::store::{CallRecord, StoredEvent, WorkspaceScope};
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::speech::fakes::{tone, FakeOpenAiSpeech};
use freya_edge::twilio::fakes::{post_voice_webhook, CallerAction, FakeTwilio, StreamCaller};
use freya_edge::Edge;
use freya_loadtest::audio::Utterance;
use freya_shared::model::AgentSpec;
use reqwest::StatusCode;
use serde_json::json;
use support::http::{workspace_with_keys, Api};
use support::{
    agent_on_number, control_config, edge_config, eventually, until_routed, Backend, TestDb, SECRET,
};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token";
const NUMBER: &str = "+15550100";

struct World {
    db: TestDb,
    control: ControlPlane,
    edge: Edge,
    scope: WorkspaceScope,
    admin: String,
    speech: FakeOpenAiSpeech,
    llm: FakeLlmServer,
    _dir: tempfile::TempDir,
}

/// A control plane, an edge, the speech and LLM fakes, and number `NUMBER` answered by an agent
/// using them; `accounts` are Twilio accounts `(auth token, REST base URL)` in priority order.
async fn world(first_message: &str, accounts: &[(&str, String)]) -> World {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    let llm = FakeLlmServer::openai().await.expect("fake llm");
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let (workspace_id, [_, admin, ..]) = workspace_with_keys(&control, "Twilio").await;
    let scope = WorkspaceScope { workspace_id };
    let agent: AgentSpec = serde_json::from_value(json!({
        "name": "Front desk",
        "system_prompt": "You are the front desk. The caller is {{caller_number}}.",
        "first_message": first_message,
        "stt": {"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "k"},
        "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"}
    }))
    .expect("agent");
    agent_on_number(&control, &scope, NUMBER, &agent).await;
    let api = Api::of(&control);
    for (i, (token, base_url)) in accounts.iter().enumerate() {
        let created = api
            .call(
                "POST",
                "/v1/providers",
                &admin,
                Some(
                    json!({"kind": "twilio", "name": format!("Twilio {i}"), "account_sid": SID,
                            "auth_token": token, "priority": i, "api_base_url": base_url}),
                ),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    until_routed(&edge, NUMBER).await;
    let state = edge.state.clone();
    let wanted = accounts.len();
    eventually(
        Duration::from_secs(10),
        "the edge to learn the accounts",
        || {
            let state = state.clone();
            async move { (state.snapshot().providers.len() == wanted).then_some(()) }
        },
    )
    .await;
    World {
        db,
        control,
        edge,
        scope,
        admin,
        speech,
        llm,
        _dir: dir,
    }
}

fn voice_url(w: &World) -> String {
    format!("http://{}/twilio/voice", w.edge.http_addr)
}

fn webhook_form<'a>(call_sid: &'a str, to: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", SID),
        ("CallSid", call_sid),
        ("From", "+15557770123"),
        ("To", to),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
}

async fn finished_call(w: &World, direction: &str) -> (CallRecord, Vec<StoredEvent>) {
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

fn of_kind<'a>(events: &'a [StoredEvent], kind: &str) -> Vec<&'a StoredEvent> {
    events.iter().filter(|e| e.kind == kind).collect()
}

async fn teardown(w: World) {
    w.edge.stop().await;
    w.control.stop().await;
    w.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_with_a_wrong_signature_or_bad_form_are_refused() {
    let w = world("Hello.", &[(TOKEN, "http://127.0.0.1:9".into())]).await;
    let url = voice_url(&w);
    let forged = post_voice_webhook(&url, "not-the-token", &webhook_form("CA1", NUMBER))
        .await
        .expect("answer");
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(
        forged.body.contains("X-Twilio-Signature"),
        "{}",
        forged.body
    );
    assert!(forged.stream.is_none());

    let mut form = webhook_form("CA1", NUMBER);
    form.retain(|(k, _)| *k != "To");
    let missing = post_voice_webhook(&url, TOKEN, &form)
        .await
        .expect("answer");
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("`To`"), "{}", missing.body);

    let unknown = post_voice_webhook(&url, TOKEN, &webhook_form("CA1", "+15550000"))
        .await
        .expect("answer");
    assert_eq!(unknown.status, 404);

    let mut other_account = webhook_form("CA1", NUMBER);
    other_account[0].1 = "ACffffffffffffffffffffffffffffffff";
    let stranger = post_voice_webhook(&url, TOKEN, &other_account)
        .await
        .expect("answer");
    assert_eq!(stranger.status, 403);

    // The right token gets TwiML connecting the call to this edge's media stream.
    let good = post_voice_webhook(&url, TOKEN, &webhook_form("CA1", NUMBER))
        .await
        .expect("answer");
    assert_eq!(good.status, 200, "{}", good.body);
    let stream = good.stream.expect("a <Connect><Stream>");
    assert_eq!(
        stream.url,
        format!("ws://{}/twilio/media", w.edge.http_addr)
    );
    assert_eq!(stream.parameters[0].0, "ticket");

    // A stream whose ticket was tampered with, or that claims another call, is closed.
    let mut tampered = stream.clone();
    tampered.parameters[0].1.insert(3, 'x');
    for (stream, call_sid) in [(tampered, "CA1"), (stream, "CA2")] {
        let report = StreamCaller::new(stream, SID, call_sid)
            .run(&[CallerAction::Wait(Duration::from_secs(3))])
            .await
            .expect("stream runs");
        assert!(report.closed_by_edge, "{report:?}");
        assert_eq!(report.media_messages, 0);
    }
    let calls = w.control.store.calls(&w.scope, 10).await.expect("calls");
    assert!(calls.is_empty(), "{calls:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", w.edge.http_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        r#"freya_edge_twilio_webhooks_total{outcome="bad_signature"} 1"#,
        r#"freya_edge_twilio_webhooks_total{outcome="connected"} 1"#,
        r#"freya_edge_twilio_webhooks_total{outcome="no_route"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_twilio_call_reaches_the_agent_and_the_caller_hears_it() {
    let w = world(
        "Hello, thanks for calling Acme.",
        &[(TOKEN, "http://127.0.0.1:9".into())],
    )
    .await;
    w.speech
        .set_default_transcript("What are your opening hours?");
    w.llm
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    let answer = post_voice_webhook(&voice_url(&w), TOKEN, &webhook_form("CA100", NUMBER))
        .await
        .expect("answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let stream = answer.stream.expect("a stream");
    let question = Utterance::from_spec("say:What are your opening hours?").expect("espeak-ng");
    let report = StreamCaller::new(stream, SID, "CA100")
        .run(&[
            CallerAction::ListenFor {
                voiced_frames: 10,
                limit: Duration::from_secs(8),
            },
            CallerAction::Wait(Duration::from_millis(800)),
            CallerAction::Speak(question.samples.to_vec()),
            CallerAction::Press('5'),
            CallerAction::ListenFor {
                voiced_frames: 10,
                limit: Duration::from_secs(10),
            },
            CallerAction::Wait(Duration::from_millis(500)),
        ])
        .await
        .expect("stream runs");
    assert_eq!(report.junk, 0, "{report:?}");
    assert!(
        report.voiced_samples() > 1600,
        "the caller heard the agent: {} voiced samples of {}",
        report.voiced_samples(),
        report.heard.len()
    );
    assert!(!report.marks.is_empty(), "marks after the agent's turns");

    let utterances = w.speech.utterances();
    assert!(!utterances.is_empty(), "the STT got the caller's turn");
    assert!(utterances[0].duration > Duration::from_millis(800));
    let requests = w.llm.requests();
    assert!(!requests.is_empty(), "the LLM was asked");
    assert_eq!(
        requests[0].system_prompt().as_deref(),
        Some("You are the front desk. The caller is +15557770123.")
    );
    assert_eq!(requests[0].user_texts(), ["What are your opening hours?"]);

    let (call, events) = finished_call(&w, "inbound").await;
    assert_eq!(call.from_number.as_deref(), Some("+15557770123"));
    assert_eq!(call.to_number.as_deref(), Some(NUMBER));
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let started = of_kind(&events, "call.started");
    assert_eq!(started[0].payload["provider"]["provider"], "twilio");
    assert_eq!(started[0].payload["provider"]["provider_call_id"], "CA100");
    assert_eq!(started[0].payload["media"], "media_stream");
    let digits = of_kind(&events, "call.dtmf");
    assert_eq!(digits.len(), 1, "{events:?}");
    assert_eq!(digits[0].payload["digit"], "5");
    assert!(
        of_kind(&events, "call.transcript")
            .iter()
            .any(|e| e.payload["role"] == "agent"),
        "{events:?}"
    );
    assert_eq!(of_kind(&events, "call.ended").len(), 1);
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_over_the_agent_clears_twilios_buffer() {
    let w = world(
        "Welcome to Acme, where we have a great many things to tell you about today.",
        &[(TOKEN, "http://127.0.0.1:9".into())],
    )
    .await;
    // Six seconds of greeting: still playing when the caller speaks.
    w.speech.set_speech_audio(tone(24_000, 6_000));
    w.speech
        .set_default_transcript("Sorry, can I ask something?");
    w.llm.respond_with(|_| FakeReply::text("Of course."));
    let answer = post_voice_webhook(&voice_url(&w), TOKEN, &webhook_form("CA200", NUMBER))
        .await
        .expect("answer");
    let question = Utterance::from_spec("say:Sorry, can I ask something?").expect("espeak-ng");
    let report = StreamCaller::new(answer.stream.expect("a stream"), SID, "CA200")
        .run(&[
            CallerAction::ListenFor {
                voiced_frames: 25,
                limit: Duration::from_secs(8),
            },
            CallerAction::Speak(question.samples.to_vec()),
            CallerAction::Wait(Duration::from_secs(2)),
        ])
        .await
        .expect("stream runs");
    assert!(report.clears >= 1, "a clear on barge-in: {report:?}");
    let (_, events) = finished_call(&w, "inbound").await;
    assert_eq!(of_kind(&events, "call.barge_in").len(), 1, "{events:?}");
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_goes_through_twilio_failing_over_from_a_refusing_account() {
    // The first account's token is wrong (its fake answers 401); the second one takes the call.
    let refusing = FakeTwilio::start(SID, "the-real-token")
        .await
        .expect("fake");
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    let greeting = "Hello, this is Acme calling about your order.";
    let w = world(
        greeting,
        &[
            ("a-stale-token", refusing.base_url()),
            (TOKEN, twilio.base_url()),
        ],
    )
    .await;
    twilio.answer_with(vec![
        CallerAction::ListenFor {
            voiced_frames: 10,
            limit: Duration::from_secs(8),
        },
        CallerAction::Wait(Duration::from_millis(300)),
    ]);
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
                    Some(json!({"from": NUMBER, "to": "+15557770001"})),
                )
                .await;
            (answer.status.is_success()).then_some(answer)
        }
    })
    .await;
    let call_id = placed.body["id"].as_str().expect("id").to_owned();

    let requests = eventually(Duration::from_secs(10), "Twilio to be asked", || {
        let requests = twilio.requests();
        async move { (!requests.is_empty()).then_some(requests) }
    })
    .await;
    assert_eq!(refusing.unauthorized(), 1, "basic auth checked");
    assert!(refusing.requests().is_empty());
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].to.as_str(), requests[0].from.as_str()),
        ("+15557770001", NUMBER)
    );
    assert!(
        requests[0].twiml.contains(&format!(
            "<Connect><Stream url=\"ws://{}/twilio/media\">",
            w.edge.http_addr
        )),
        "{}",
        requests[0].twiml
    );
    let reports = eventually(Duration::from_secs(20), "the stream to finish", || {
        let reports = twilio.take_reports();
        async move { (!reports.is_empty()).then_some(reports) }
    })
    .await;
    let report = reports
        .into_iter()
        .next()
        .expect("a report")
        .expect("stream ran");
    assert!(
        report.voiced_samples() > 1600,
        "the callee heard the agent: {report:?}"
    );
    let spoken: Vec<String> = w
        .speech
        .speech_requests()
        .into_iter()
        .map(|r| r.input)
        .collect();
    assert_eq!(spoken.first().map(String::as_str), Some(greeting));

    let (call, events) = finished_call(&w, "outbound").await;
    assert_eq!(call.id, call_id);
    assert_eq!(call.to_number.as_deref(), Some("+15557770001"));
    let started = of_kind(&events, "call.started");
    assert_eq!(started.len(), 1, "{events:?}");
    assert_eq!(started[0].payload["provider"], "twilio");
    assert_eq!(started[0].payload["provider_call_id"], requests[0].sid);
    let attempts = started[0].payload["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["reason"], "provider_refused");
    assert_eq!(of_kind(&events, "call.answered").len(), 1);
    assert_eq!(of_kind(&events, "call.ended").len(), 1);
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_fails_with_a_reason_when_every_twilio_account_refuses() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    twilio.fail_with(503);
    let w = world("Hello.", &[(TOKEN, twilio.base_url())]).await;
    let api = Api::of(&w.control);
    eventually(Duration::from_secs(10), "the edge to take calls", || {
        let api = &api;
        let admin = w.admin.clone();
        async move {
            let answer = api
                .call(
                    "POST",
                    "/v1/calls",
                    &admin,
                    Some(json!({"from": NUMBER, "to": "+15557770002"})),
                )
                .await;
            answer.status.is_success().then_some(())
        }
    })
    .await;
    let call = eventually(Duration::from_secs(10), "the call to fail", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            calls.into_iter().find(|c| c.status == "failed")
        }
    })
    .await;
    assert_eq!(call.end_reason.as_deref(), Some("providers_failed"));
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_outbound_twilio_call_is_recorded_with_twilios_status() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    twilio.leave_unanswered("busy");
    let w = world("Hello.", &[(TOKEN, twilio.base_url())]).await;
    let api = Api::of(&w.control);
    eventually(Duration::from_secs(10), "the edge to take calls", || {
        let api = &api;
        let admin = w.admin.clone();
        async move {
            let answer = api
                .call(
                    "POST",
                    "/v1/calls",
                    &admin,
                    Some(json!({"from": NUMBER, "to": "+15557770003"})),
                )
                .await;
            answer.status.is_success().then_some(())
        }
    })
    .await;
    let call = eventually(Duration::from_secs(10), "the call to fail", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            calls.into_iter().find(|c| c.status == "failed")
        }
    })
    .await;
    assert_eq!(call.end_reason.as_deref(), Some("busy"));
    let requests = twilio.requests();
    assert_eq!(requests.len(), 1);
    // A status callback signed with another token is refused.
    let callback = format!("http://{}/twilio/status?ticket=x", w.edge.http_addr);
    let forged = post_voice_webhook(&callback, TOKEN, &[("CallStatus", "busy")])
        .await
        .expect("answer");
    assert_eq!(forged.status, 403);
    teardown(w).await;
}

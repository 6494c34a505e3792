//! Inbound calls through Twilio, end to end: the fake Twilio of `freya_edge::twilio::fakes`
//! plays Twilio — it signs and POSTs the voice webhook, follows the TwiML to the edge's
//! media-stream WebSocket and speaks real espeak-ng audio as μ-law frames every 20 ms — against
//! a control plane and an edge in-process (see `support::twilio`). Nothing here asserts on speed.

use crate::support;

use std::time::Duration;

use crate::support::twilio::{
    finished_call, of_kind, teardown, voice_url, webhook_form, world, World, NUMBER, SID, TOKEN,
    TRANSFER_TO,
};
use freya_edge::llm::fakes::FakeReply;
use freya_edge::speech::fakes::tone;
use freya_edge::twilio::fakes::{
    post_voice_webhook, CallerAction, FakeTwilio, StreamCaller, StreamReport,
};
use freya_loadtest::audio::Utterance;

/// The one call update Twilio was sent, which must be to call `sid`; its TwiML.
fn the_one_update(twilio: &FakeTwilio, sid: &str) -> String {
    let updates = twilio.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].call_sid, sid);
    updates[0].twiml.clone()
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

    // A stream whose ticket was tampered with, that claims another call, or whose upgrade is
    // unsigned or signed with another token, is closed.
    let mut tampered = stream.clone();
    tampered.parameters[0].1.insert(3, 'x');
    let refused = [
        (tampered, "CA1", Some(TOKEN)),
        (stream.clone(), "CA2", Some(TOKEN)),
        (stream.clone(), "CA1", None),
        (stream, "CA1", Some("not-the-token")),
    ];
    for (stream, call_sid, token) in refused {
        let mut caller = StreamCaller::new(stream, SID, call_sid);
        if let Some(token) = token {
            caller = caller.signed_with(token);
        }
        let report = caller
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
        // The forged one and the one from an account no workspace here has.
        r#"freya_edge_twilio_webhooks_total{outcome="bad_signature"} 2"#,
        r#"freya_edge_twilio_webhooks_total{outcome="connected"} 1"#,
        r#"freya_edge_twilio_webhooks_total{outcome="no_route"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_webhook_gets_the_same_answer_for_known_and_unknown_numbers() {
    let w = world("Hello.", &[(TOKEN, "http://127.0.0.1:9".into())]).await;
    let url = voice_url(&w);
    let mut answers = Vec::new();
    for to in [NUMBER, "+15550000"] {
        let forged = post_voice_webhook(&url, "not-the-token", &webhook_form("CA1", to))
            .await
            .expect("answer");
        answers.push((format!("forged, To {to}"), forged.status, forged.body));
        let mut stranger = webhook_form("CA1", to);
        stranger[0].1 = "ACffffffffffffffffffffffffffffffff";
        let stranger = post_voice_webhook(&url, TOKEN, &stranger)
            .await
            .expect("answer");
        answers.push((
            format!("unknown account, To {to}"),
            stranger.status,
            stranger.body,
        ));
        let unsigned = reqwest::Client::new()
            .post(&url)
            .form(&webhook_form("CA1", to))
            .send()
            .await
            .expect("answer");
        let status = unsigned.status().as_u16();
        let text = unsigned.text().await.expect("body");
        answers.push((format!("unsigned, To {to}"), status, text));
    }
    let (_, status, body) = &answers[0];
    assert_eq!(*status, 403, "{body}");
    for (what, other_status, other_body) in &answers {
        assert_eq!(
            (other_status, other_body),
            (status, body),
            "{what} answered differently"
        );
    }
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ticket_opens_one_stream_only() {
    let w = world("Hello.", &[(TOKEN, "http://127.0.0.1:9".into())]).await;
    let caller = streamed_caller(&w, "CA300", NUMBER).await;
    let first = caller.run(&[listen(10, 8)]).await.expect("stream runs");
    assert!(!first.closed_by_edge, "{first:?}");
    assert!(first.media_messages > 0, "{first:?}");
    finished_call(&w, "inbound").await;
    // The same ticket, with Twilio's signature of the (unchanging) stream URL, after the call.
    let replayed = caller
        .run(&[CallerAction::Wait(Duration::from_secs(3))])
        .await
        .expect("stream runs");
    assert!(replayed.closed_by_edge, "{replayed:?}");
    assert_eq!(replayed.media_messages, 0);
    let calls = w.control.store.calls(&w.scope, 10).await.expect("calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_twilio_call_reaches_the_agent_and_the_caller_hears_it() {
    let w = world(
        "Hello, thanks for calling Acme.",
        &[(TOKEN, "http://127.0.0.1:9".into())],
    )
    .await;
    w.speech()
        .set_default_transcript("What are your opening hours?");
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));
    let caller = streamed_caller(&w, "CA100", NUMBER).await;
    let question = Utterance::from_spec("say:What are your opening hours?").expect("espeak-ng");
    let report = caller
        .run(&[
            listen(10, 8),
            CallerAction::Wait(Duration::from_millis(800)),
            CallerAction::Speak(question.samples.to_vec()),
            CallerAction::Press('5'),
            listen(10, 10),
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

    let utterances = w.speech().utterances();
    assert!(!utterances.is_empty(), "the STT got the caller's turn");
    assert!(utterances[0].duration > Duration::from_millis(800));
    let requests = w.llm().requests();
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
    w.speech().set_speech_audio(tone(24_000, 6_000));
    w.speech()
        .set_default_transcript("Sorry, can I ask something?");
    w.llm().respond_with(|_| FakeReply::text("Of course."));
    let caller = streamed_caller(&w, "CA200", NUMBER).await;
    let question = Utterance::from_spec("say:Sorry, can I ask something?").expect("espeak-ng");
    let report = caller
        .run(&[
            listen(25, 8),
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

/// The caller of Twilio call `call_sid` to `number`: the voice webhook answers 200 with a
/// Media Streams URL, and the caller is ready to stream it, signed as Twilio signs.
async fn streamed_caller(w: &World, call_sid: &str, number: &str) -> StreamCaller {
    let answer = post_voice_webhook(&voice_url(w), TOKEN, &webhook_form(call_sid, number))
        .await
        .expect("answer");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let stream = answer.stream.expect("a stream");
    StreamCaller::new(stream, SID, call_sid).signed_with(TOKEN)
}

/// Listening until `voiced_frames` of the agent were heard, for up to `seconds`.
fn listen(voiced_frames: usize, seconds: u64) -> CallerAction {
    CallerAction::ListenFor {
        voiced_frames,
        limit: Duration::from_secs(seconds),
    }
}

/// A caller on stream `call_sid` who waits for the greeting, says `words`, and stays on the line
/// for `stay` (unless the edge closes the stream first).
async fn caller_says(w: &World, call_sid: &str, words: &str, stay: Duration) -> StreamReport {
    let caller = streamed_caller(w, call_sid, NUMBER).await;
    let speech = Utterance::from_spec(&format!("say:{words}")).expect("espeak-ng");
    caller
        .run(&[
            listen(10, 8),
            CallerAction::Wait(Duration::from_millis(800)),
            CallerAction::Speak(speech.samples.to_vec()),
            CallerAction::Wait(stay),
        ])
        .await
        .expect("stream runs")
}

/// The caller asks for sales; the model transfers to [`TRANSFER_TO`], then says `then_says`.
fn caller_asks_for_sales(w: &World, then_says: &'static str) {
    w.speech()
        .set_default_transcript("Put me through to sales.");
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "transfer_call",
        serde_json::json!({"destination": TRANSFER_TO}),
    ));
    w.llm().respond_with(move |_| FakeReply::text(then_says));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_transfers_a_twilio_call_by_redirecting_it_through_the_rest_api() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    let w = world("Hello, Acme front desk.", &[(TOKEN, twilio.base_url())]).await;
    caller_asks_for_sales(&w, "One moment.");
    let report = caller_says(
        &w,
        "CA300",
        "Put me through to sales.",
        Duration::from_secs(8),
    )
    .await;
    assert!(
        report.closed_by_edge,
        "our leg ends once Twilio took the transfer: {report:?}"
    );

    let twiml = the_one_update(&twilio, "CA300");
    assert!(
        twiml.contains(&format!("<Response><Dial>{TRANSFER_TO}</Dial></Response>")),
        "{twiml}"
    );
    let (call, events) = finished_call(&w, "inbound").await;
    assert_eq!(call.end_reason.as_deref(), Some("transferred"));
    let statuses: Vec<&str> = of_kind(&events, "call.transfer")
        .iter()
        .filter_map(|e| e.payload["status"].as_str())
        .collect();
    assert_eq!(statuses, ["requested", "succeeded"], "{events:?}");
    let ended = of_kind(&events, "call.ended");
    assert_eq!(ended[0].payload["transferred_to"], TRANSFER_TO);
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_twilio_refuses_is_reported_and_the_model_answers_it() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    twilio.fail_updates_with(500);
    let w = world("Hello, Acme front desk.", &[(TOKEN, twilio.base_url())]).await;
    caller_asks_for_sales(&w, "Anything else?");
    let report = caller_says(
        &w,
        "CA301",
        "Put me through to sales.",
        Duration::from_secs(6),
    )
    .await;
    assert!(!report.closed_by_edge, "the call goes on: {report:?}");
    assert!(twilio.updates().is_empty());

    let (call, events) = finished_call(&w, "inbound").await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let transfers = of_kind(&events, "call.transfer");
    let failed = transfers
        .iter()
        .find(|e| e.payload["status"] == "failed")
        .expect("a failed transfer recorded");
    assert!(
        failed.payload["reason"]
            .as_str()
            .is_some_and(|r| r.contains("500")),
        "{failed:?}"
    );
    let spoken = w.spoken();
    let told = w.llm().requests().iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["role"] == "tool"
                    && m["content"]
                        .as_str()
                        .is_some_and(|c| c.contains(r#""transferred":false"#) && c.contains("500"))
            })
        })
    });
    assert!(told, "the model reads the failure as the transfer's result");
    assert!(
        spoken.iter().any(|s| s.contains("Anything else?")),
        "the model's answer is spoken: {spoken:?}"
    );
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_dtmf_on_a_twilio_call_is_an_error_the_model_sees_and_the_call_records() {
    let w = world(
        "Hello, Acme front desk.",
        &[(TOKEN, "http://127.0.0.1:9".into())],
    )
    .await;
    w.speech().set_default_transcript("Press one for me.");
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "send_dtmf",
        serde_json::json!({"digits": "1"}),
    ));
    w.llm()
        .respond_with(|_| FakeReply::text("I cannot press keys on this line."));
    let report = caller_says(&w, "CA400", "Press one for me.", Duration::from_secs(5)).await;
    assert!(!report.closed_by_edge, "the call goes on: {report:?}");

    let requests = w.llm().requests();
    assert!(requests.len() >= 2, "the model heard back: {requests:?}");
    let tool_result = requests[1].body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .expect("a tool result");
    assert!(
        tool_result["content"]
            .as_str()
            .is_some_and(|c| c.contains("digits cannot be sent on this call")),
        "{tool_result}"
    );
    let (_, events) = finished_call(&w, "inbound").await;
    let failed = of_kind(&events, "call.tool_failed");
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0].payload["name"], "send_dtmf");
    assert!(of_kind(&events, "call.dtmf_sent").is_empty(), "{events:?}");
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflows_transfer_node_redirects_a_twilio_call() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    let w = world("Hello.", &[(TOKEN, twilio.base_url())]).await;
    let api = support::http::Api::of(&w.control);
    let flow = serde_json::json!({"name": "Straight through", "start": "hello",
    "voice": {"tts": {"provider": "espeak"}},
    "nodes": [
     {"id": "hello", "type": "say", "text": "Transferring you.", "next": "handoff"},
     {"id": "handoff", "type": "transfer", "to": "sip:desk@pbx.example"}
    ]});
    let created = api.create("/v1/workflows", &w.admin, flow).await;
    let id = created["id"].as_str().expect("id").to_owned();
    api.expect(
        201,
        "POST",
        &format!("/v1/workflows/{id}/publish"),
        &w.admin,
        None,
    )
    .await;
    let number = "+15550200";
    let routed = api
        .call(
            "POST",
            "/v1/phone-numbers",
            &w.admin,
            Some(serde_json::json!({"number": number, "workflow_id": id})),
        )
        .await;
    assert_eq!(routed.status, 201, "{}", routed.body);
    support::until_routed(&w.edge, number).await;

    let report = streamed_caller(&w, "CA500", number)
        .await
        .run(&[CallerAction::Wait(Duration::from_secs(10))])
        .await
        .expect("stream runs");
    assert!(
        report.voiced_samples() > 1600,
        "the caller heard the say node: {report:?}"
    );
    assert!(
        report.closed_by_edge,
        "our leg ends with the transfer: {report:?}"
    );
    let twiml = the_one_update(&twilio, "CA500");
    assert!(
        twiml.contains("<Dial><Sip>sip:desk@pbx.example</Sip></Dial>"),
        "{twiml}"
    );
    let (call, _) = finished_call(&w, "inbound").await;
    assert_eq!(call.end_reason.as_deref(), Some("transferred"));
    teardown(w).await;
}

//! Outbound calls through Twilio, end to end: `POST /v1/calls` on a control plane whose edge
//! places the call with the fake Twilio's REST API (`freya_edge::twilio::fakes`), which checks
//! basic auth, answers, and streams the answered call back to the edge — or refuses, or leaves
//! it unanswered and reports so; the edge fails over to the next provider. Nothing here asserts
//! on speed.

use crate::support;

use std::time::Duration;

use crate::support::eventually;
use crate::support::http::Api;
use crate::support::twilio::{
    finished_call, of_kind, place_call, teardown, world, NUMBER, SID, TOKEN,
};
use freya_edge::twilio::fakes::{post_voice_webhook, CallerAction, FakeTwilio, StreamReport};
use serde_json::json;

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
    let call_id = place_call(&w, "+15557770001").await;

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
    let report = first_stream_report(&twilio).await;
    assert!(
        report.voiced_samples() > 1600,
        "the callee heard the agent: {report:?}"
    );
    let spoken = w.spoken();
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
    place_call(&w, "+15557770002").await;
    let call = w.call_in_status("failed").await;
    assert_eq!(call.end_reason.as_deref(), Some("providers_failed"));
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_outbound_twilio_call_is_recorded_with_twilios_status() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    twilio.leave_unanswered("busy");
    let w = world("Hello.", &[(TOKEN, twilio.base_url())]).await;
    place_call(&w, "+15557770003").await;
    let call = w.call_in_status("failed").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_twilio_account_fails_over_to_a_sip_trunk() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    twilio.fail_with(500);
    let w = world("Hello.", &[(TOKEN, twilio.base_url())]).await;
    // The trunk: a bare UDP socket that only listens for the INVITE.
    let trunk = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = trunk.local_addr().expect("addr").port();
    let api = Api::of(&w.control);
    api.create(
        "/v1/providers",
        &w.admin,
        json!({"name": "Backup trunk", "host": "127.0.0.1", "port": port,
                        "priority": 50, "invite_timeout_ms": 1000}),
    )
    .await;
    support::until_edge_holds(&w.edge, "the edge to learn the trunk", |s| {
        s.providers.len() == 2
    })
    .await;
    place_call(&w, "+15557770004").await;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), trunk.recv_from(&mut buf))
        .await
        .expect("an INVITE reaches the trunk")
        .expect("datagram");
    let invite = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        invite.starts_with("INVITE sip:+15557770004@127.0.0.1"),
        "{invite}"
    );
    assert_eq!(twilio.failed(), 1, "Twilio was asked first, and refused");
    teardown(w).await;
}

/// What the fake's first media-stream caller heard, once its stream has finished.
async fn first_stream_report(twilio: &FakeTwilio) -> StreamReport {
    let reports = eventually(
        Duration::from_secs(20),
        "the Twilio stream to finish",
        || {
            let reports = twilio.take_reports();
            async move { (!reports.is_empty()).then_some(reports) }
        },
    )
    .await;
    reports
        .into_iter()
        .next()
        .expect("a report")
        .expect("stream ran")
}

/// A sipp trunk that answers every INVITE with 503, on a port of its own; returns the process
/// (killed on drop) and the port.
async fn refusing_sipp_trunk(work: &std::path::Path) -> (tokio::process::Child, u16) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let scenario =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_unavailable.xml");
    let child = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-p", &port.to_string(), "-m", "1", "-i", "127.0.0.1"])
        .args(["-timeout", "30s", "-nostdin"])
        .current_dir(work)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_sip_trunk_ranked_first_fails_over_to_twilio_and_both_attempts_are_recorded() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake");
    twilio.answer_with(vec![
        CallerAction::ListenFor {
            voiced_frames: 10,
            limit: Duration::from_secs(8),
        },
        CallerAction::Wait(Duration::from_millis(300)),
    ]);
    let w = world("Hello from Acme.", &[(TOKEN, twilio.base_url())]).await;
    let sipp_dir = tempfile::tempdir().expect("temp dir");
    let (mut sipp, port) = refusing_sipp_trunk(sipp_dir.path()).await;
    let api = Api::of(&w.control);
    let created = api
        .create(
            "/v1/providers",
            &w.admin,
            json!({"name": "Down trunk", "host": "127.0.0.1", "port": port,
                        "priority": support::twilio::TWILIO_PRIORITY - 1,
                        "invite_timeout_ms": 5000}),
        )
        .await;
    let trunk_id = created["id"].as_str().expect("id").to_owned();
    support::until_edge_holds(&w.edge, "the edge to learn the trunk", |s| {
        s.providers.len() == 2
    })
    .await;
    let call_id = place_call(&w, "+15557770005").await;

    let status = tokio::time::timeout(Duration::from_secs(40), sipp.wait())
        .await
        .expect("sipp finishes in time")
        .expect("sipp exit status");
    assert!(
        status.success(),
        "sipp saw our INVITE and its ACK: {status}"
    );
    let report = first_stream_report(&twilio).await;
    assert!(
        report.voiced_samples() > 1600,
        "the callee heard the agent through Twilio: {report:?}"
    );
    let requests = twilio.requests();
    assert_eq!(requests.len(), 1, "Twilio was asked once, after the trunk");

    let (call, events) = finished_call(&w, "outbound").await;
    assert_eq!(call.id, call_id);
    assert_eq!(call.status, "ended", "{call:?}");
    assert!(of_kind(&events, "call.failed").is_empty(), "{events:?}");
    let started = of_kind(&events, "call.started");
    let through_twilio = started
        .iter()
        .find(|e| e.payload["provider"] == "twilio")
        .expect("a call.started through Twilio");
    assert_eq!(through_twilio.payload["provider_call_id"], requests[0].sid);
    let attempts = through_twilio.payload["attempts"]
        .as_array()
        .expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["kind"], "sip_trunk");
    assert_eq!(attempts[0]["provider_id"], trunk_id.as_str());
    assert_eq!(attempts[0]["provider"], "Down trunk");
    assert_eq!(attempts[0]["outcome"]["status"], 503, "{attempts:?}");
    // The call's page lists both: the trunk dialled first, then Twilio with the trunk's failure.
    let detail = api
        .expect(200, "GET", &format!("/v1/calls/{call_id}"), &w.admin, None)
        .await;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| *k == "call.started")
        .collect();
    assert_eq!(kinds.len(), 2, "{}", detail);
    teardown(w).await;
}

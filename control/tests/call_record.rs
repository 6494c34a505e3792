//! The record of a call tells the truth, checked black-box with real SIP peers (sipp) against
//! an edge linked to a real control plane: the clock of a call starts at its INVITE (or its
//! dial), not at the answer; ringing is recorded; every trunk tried before the one that
//! carried a placed call is listed with its outcome, and the carrier is named; the side that
//! hung up is named the same way in both directions.

use crate::support::hourly_analytics;

use std::time::Duration;

use crate::support::caller::{free_udp_port, sipp_uas, sipp_with_media};
use crate::support::desk::{ringing_desk, RingingDesk};
use crate::support::{eventually, the_ended_call, Backend};
use freya_control::store::{AnalyticsGroup, CallRecord, StoredEvent};
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{EdgeCommand, HangupCall, PlaceCall};
use freya_shared::model::{ProviderSpec, SipTransport, SipTrunkSpec};
use freya_shared::snapshot::ProviderConfig;
use serde_json::{json, Value};

/// A control plane, an edge that rings `ring_ms` before answering, and an agent on `demo`.
async fn setup(ring_ms: u32) -> RingingDesk {
    ringing_desk(Backend::Sqlite, "Records", ring_ms).await
}

async fn teardown(s: RingingDesk) {
    s.stop().await;
}

fn event<'a>(events: &'a [StoredEvent], kind: &str) -> &'a StoredEvent {
    events
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:?}", kinds(events)))
}

fn kinds(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn answered_after(call: &CallRecord) -> i64 {
    call.answered_at_ms.expect("answered") - call.started_at_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_that_rings_2_s_starts_at_its_invite_and_the_caller_is_the_remote() {
    let s = setup(2_000).await;
    let status = sipp_with_media(s.edge.sip_addr, "demo", "uac_rings_then_talks.xml", &[]).await;
    assert_eq!(status, 0, "sipp's call went as scripted");
    let (call, events) = the_ended_call(&s.control.store, &s.scope).await;
    // Generous bounds: the edge rings exactly 2 s; the rest is scheduling.
    let rang = answered_after(&call);
    assert!(
        (1_900..6_000).contains(&rang),
        "answered {rang} ms after the INVITE"
    );
    let started = event(&events, "call.started");
    assert_eq!(started.at_ms, call.started_at_ms);
    let ringing = event(&events, "call.ringing");
    assert!(
        ringing.at_ms - started.at_ms < 1_000,
        "180 right after the INVITE"
    );
    let ended = &event(&events, "call.ended").payload;
    assert_eq!(ended["reason"], "caller_hangup", "{ended}");
    assert_eq!(ended["hangup_by"], "remote", "{ended}");
    // Analytics count the ringing as time to answer.
    let query = hourly_analytics(call.started_at_ms, 1, AnalyticsGroup::None);
    let buckets = s
        .control
        .store
        .call_analytics(&s.scope, &query)
        .await
        .expect("analytics");
    let times = buckets[0].time_to_answer.expect("time to answer");
    assert_eq!(times.calls, 1);
    assert_eq!(times.p50_ms, times.p95_ms);
    assert!(
        (times.p50_ms - rang).abs() <= 100,
        "{times:?} for {rang} ms"
    );
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cancelled_after_1_5_s_of_ringing_lasts_that_long_in_its_record() {
    let s = setup(5_000).await;
    let status =
        sipp_with_media(s.edge.sip_addr, "demo", "uac_cancel_after_ringing.xml", &[]).await;
    assert_eq!(status, 0, "sipp's call went as scripted");
    let (call, events) = the_ended_call(&s.control.store, &s.scope).await;
    let ended_at = call.ended_at_ms.expect("ended");
    let lasted = ended_at - call.started_at_ms;
    assert!(lasted >= 1_400, "the record says it rang {lasted} ms");
    assert_eq!(call.answered_at_ms, None);
    assert_eq!(call.end_reason.as_deref(), Some("caller_cancelled"));
    let ended = &event(&events, "call.ended").payload;
    assert_eq!(ended["hangup_by"], "remote", "{ended}");
    assert_eq!(
        kinds(&events),
        ["call.started", "call.ringing", "call.ended"],
        "one start, at the INVITE"
    );
    teardown(s).await;
}

/// A sipp UAS running `scenario` (`tests/sipp/`) for one call, and its port.
async fn trunk(scenario: &str) -> (tokio::process::Child, tempfile::TempDir, u16) {
    trunk_for(scenario, 1).await
}

/// As [`trunk`], for `calls` calls.
async fn trunk_for(scenario: &str, calls: u32) -> (tokio::process::Child, tempfile::TempDir, u16) {
    let (media, calls) = (free_udp_port().to_string(), calls.to_string());
    let trunk = sipp_uas(scenario, &["-m", &calls, "-mp", &media], "60s");
    tokio::time::sleep(Duration::from_millis(400)).await;
    trunk
}

fn set_trunks(s: &RingingDesk, trunks: &[(&str, u16)]) {
    let on_loopback: Vec<_> = trunks.iter().map(|&(n, p)| (n, "127.0.0.1", p)).collect();
    set_trunks_at(s, &on_loopback);
}

/// The workspace's trunks, `(name, host, port)`, in priority order.
fn set_trunks_at(s: &RingingDesk, trunks: &[(&str, &str, u16)]) {
    let mut snapshot = (*s.edge.state.snapshot()).clone();
    snapshot.providers = trunks
        .iter()
        .enumerate()
        .map(|(i, (name, host, port))| ProviderConfig {
            id: format!("trunk-{name}"),
            workspace_id: s.scope.workspace_id.clone(),
            spec: ProviderSpec::SipTrunk(SipTrunkSpec {
                name: (*name).into(),
                host: (*host).into(),
                port: *port,
                transport: SipTransport::Udp,
                username: None,
                password: None,
                caller_id: Some("+15550100".into()),
                priority: i32::try_from(i).expect("few trunks") + 1,
                regions: Vec::new(),
                invite_timeout_ms: 30_000,
                outbound_proxy: None,
                registration: None,
                srtp: Default::default(),
                srtp_allow_without_tls: false,
            }),
        })
        .collect();
    s.edge.state.set_snapshot(snapshot);
}

async fn command(s: &RingingDesk, command: Command) {
    let command = EdgeCommand {
        id: uuid::Uuid::now_v7().to_string(),
        command: Some(command),
    };
    let (hub, edge_id) = (s.control.commands.clone(), s.edge.id.clone());
    eventually(Duration::from_secs(10), "the edge's command stream", || {
        let (hub, edge_id, command) = (hub.clone(), edge_id.clone(), command.clone());
        async move { hub.send(&edge_id, command).await.ok() }
    })
    .await;
}

async fn place_call(s: &RingingDesk) -> String {
    let call_id = uuid::Uuid::now_v7().to_string();
    let place = PlaceCall {
        call_id: call_id.clone(),
        workspace_id: s.scope.workspace_id.clone(),
        from: "+15550199".into(),
        to: "+15557770009".into(),
        agent_id: s.agent_id.clone(),
    };
    command(s, Command::PlaceCall(place)).await;
    call_id
}

/// The call's events once one of `kind` is among them (hang guard: 20 s).
async fn events_until(s: &RingingDesk, call_id: &str, kind: &str) -> Vec<StoredEvent> {
    eventually(Duration::from_secs(20), kind, || {
        let (store, scope) = (s.control.store.clone(), s.scope.clone());
        async move {
            let events = store.call_events(&scope, call_id).await.ok()?;
            events.iter().any(|e| e.kind == kind).then_some(events)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_then_an_answer_after_2_s_of_ringing_lists_the_503_names_the_carrier_and_the_far_end_hangs_up_as_remote(
) {
    let s = setup(0).await;
    let (_refusing, _w1, first) = trunk("uas_unavailable.xml").await;
    let (mut answering, _w2, second) = trunk("uas_ring_then_answer.xml").await;
    set_trunks(&s, &[("first", first), ("second", second)]);
    let call_id = place_call(&s).await;
    let events = events_until(&s, &call_id, "call.ended").await;
    let status = tokio::time::timeout(Duration::from_secs(30), answering.wait())
        .await
        .expect("sipp finishes")
        .expect("sipp status");
    assert!(status.success(), "the carrier's call went as scripted");
    let answered = &event(&events, "call.answered").payload;
    assert_eq!(answered["provider"], "sip_trunk", "{answered}");
    assert_eq!(answered["provider_id"], "trunk-second", "{answered}");
    assert_eq!(answered["provider_name"], "second", "{answered}");
    let attempts = answered["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{answered}");
    let refused = &attempts[0];
    assert_eq!(refused["provider_id"], "trunk-first");
    assert_eq!(refused["provider"], "first");
    assert_eq!(refused["kind"], "sip_trunk");
    assert_eq!(
        refused["outcome"],
        json!({"status": 503, "reason": "Service Unavailable"}),
        "{refused}"
    );
    let started = event(&events, "call.started");
    let tried_at = refused["started_at_ms"].as_i64().expect("started_at_ms");
    assert!((started.at_ms - 1_000..=started.at_ms + 5_000).contains(&tried_at));
    assert!(refused["duration_ms"].as_u64().expect("duration_ms") < 5_000);
    // The far end rang 2 s before its 200: the record shows it.
    let ringing = event(&events, "call.ringing");
    let answer = event(&events, "call.answered");
    let rang = answer.at_ms - ringing.at_ms;
    assert!((1_800..8_000).contains(&rang), "rang {rang} ms");
    assert!(answer.at_ms - started.at_ms >= 1_900);
    let ended = &event(&events, "call.ended").payload;
    assert_eq!(ended["reason"], "remote_hangup", "{ended}");
    assert_eq!(ended["hangup_by"], "remote", "{ended}");
    let call = eventually(Duration::from_secs(10), "the call row", || {
        let (store, scope, id) = (s.control.store.clone(), s.scope.clone(), call_id.clone());
        async move { store.call(&scope, &id).await.ok() }
    })
    .await;
    assert!(answered_after(&call) >= 1_900, "{call:?}");
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_trunk_fails_call_failed_lists_them_in_the_same_shape() {
    let s = setup(0).await;
    let (_a, _w1, first) = trunk("uas_unavailable.xml").await;
    let (_b, _w2, second) = trunk("uas_unavailable.xml").await;
    set_trunks(&s, &[("first", first), ("second", second)]);
    let call_id = place_call(&s).await;
    let events = events_until(&s, &call_id, "call.failed").await;
    let failed = &event(&events, "call.failed").payload;
    let attempts = failed["detail"]["attempts"].as_array().expect("attempts");
    let tried: Vec<(&Value, &Value)> = attempts
        .iter()
        .map(|a| (&a["provider"], &a["outcome"]["status"]))
        .collect();
    assert_eq!(
        tried,
        [
            (&json!("first"), &json!(503)),
            (&json!("second"), &json!(503))
        ],
        "{failed}"
    );
    assert!(
        attempts.iter().all(|a| a["started_at_ms"].is_i64()),
        "{failed}"
    );
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_udp_port_then_an_answer_records_a_transport_error() {
    let s = setup(0).await;
    // A port where nothing listens, on an address no sipp of these tests binds (they bind
    // 127.0.0.1), so no other test's trunk can take it meanwhile.
    let dead = std::net::UdpSocket::bind("127.0.0.3:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let (_answering, _w, up) = trunk("uas_answer.xml").await;
    set_trunks_at(
        &s,
        &[("dead", "127.0.0.3", dead), ("alive", "127.0.0.1", up)],
    );
    let call_id = place_call(&s).await;
    let events = events_until(&s, &call_id, "call.answered").await;
    let answered = &event(&events, "call.answered").payload;
    assert_eq!(answered["provider_name"], "alive", "{answered}");
    assert_eq!(answered["attempts"][0]["provider"], "dead", "{answered}");
    assert_eq!(
        answered["attempts"][0]["outcome"], "transport_error",
        "{answered}"
    );
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_asked_through_the_control_plane_is_recorded_as_api() {
    let s = setup(0).await;
    let (_answering, _w, up) = trunk("uas_ring_then_answer.xml").await;
    set_trunks(&s, &[("alive", up)]);
    let call_id = place_call(&s).await;
    events_until(&s, &call_id, "call.answered").await;
    let hangup = HangupCall {
        call_id: call_id.clone(),
    };
    command(&s, Command::HangupCall(hangup)).await;
    let events = events_until(&s, &call_id, "call.ended").await;
    let ended = &event(&events, "call.ended").payload;
    assert_eq!(ended["reason"], "hangup_requested", "{ended}");
    assert_eq!(ended["hangup_by"], "api", "{ended}");
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_skipped_for_its_open_circuit_breaker_is_listed_as_skipped() {
    let s = setup(0).await;
    // Three 503s open the trunk's breaker (3 failures, 30 s cool-down by default).
    let (_refusing, _w, port) = trunk_for("uas_unavailable.xml", 3).await;
    set_trunks(&s, &[("flaky", port)]);
    for _ in 0..3 {
        let call_id = place_call(&s).await;
        let events = events_until(&s, &call_id, "call.failed").await;
        let failed = &event(&events, "call.failed").payload;
        assert_eq!(
            failed["detail"]["attempts"][0]["outcome"]["status"], 503,
            "{failed}"
        );
    }
    let call_id = place_call(&s).await;
    let events = events_until(&s, &call_id, "call.failed").await;
    let failed = &event(&events, "call.failed").payload;
    assert_eq!(failed["reason"], "trunks_unavailable", "{failed}");
    let skipped = &failed["detail"]["attempts"][0];
    assert_eq!(skipped["provider"], "flaky", "{failed}");
    assert_eq!(skipped["outcome"], "skipped_open_circuit", "{failed}");
    assert!(
        skipped.get("started_at_ms").is_none(),
        "never tried: {failed}"
    );
    teardown(s).await;
}

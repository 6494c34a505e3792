//! The load-test harness against a real edge: the project's own UAC (freya-loadtest) places a
//! small, bounded batch of concurrent calls into an edge linked to a real control plane, and every
//! call must be answered, carry RTP both ways and be hung up cleanly — correctness, not speed.
//! RTCP reports flow both ways (multiplexed or on the odd ports) and reach the call record.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::support::eventually;
use crate::support::http::Api;
use crate::support::voice_call::call_to_demo;
use crate::support::world::World;
use freya_control::store::{CallRecord, Role};
use freya_edge::sip::sdp::Codec;
use freya_loadtest::audio::Utterance;
use freya_loadtest::runner::{run, RunPlan};
use freya_loadtest::uac::{
    place_call, CallConfig, CallReport, MediaOptions, SipEndpoint, TalkerConfig,
};
use tokio_util::sync::CancellationToken;

const CALLS: u64 = 20;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A control plane with one agent on the number `demo`, and an edge that has learnt it.
async fn desk() -> World {
    World::builder().workspace("Load").start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_concurrent_calls_is_answered_with_audio_both_ways() {
    let World {
        db,
        control,
        scope,
        edge,
        dir: _dir,
        ..
    } = desk().await;
    let plan = RunPlan {
        call: CallConfig {
            caller: "loadtest".into(),
            talker: TalkerConfig {
                first_turn_after: Duration::from_millis(200),
                reply_timeout: Duration::from_millis(600),
                pause_after_reply: Duration::from_millis(100),
                barge_in_after: None,
                ..TalkerConfig::default()
            },
            ..quick_call(edge.sip_addr, Codec::Pcmu, Duration::from_millis(1500))
        },
        local_sip: SocketAddr::new(LOCALHOST, 0),
        calls: CALLS,
        concurrency: 10,
        rate: 20.0,
        ramp_up: Duration::from_millis(300),
        max_run: Duration::from_secs(40),
        edge_pids: vec![std::process::id()],
        edge_metrics: vec![format!("http://{}/metrics", edge.http_addr)],
        progress: false,
        targets: Vec::new(),
        kill: None,
        follow: None,
    };
    let summary = run(
        plan,
        serde_json::json!({"test": "loadtest_edge"}),
        CancellationToken::new(),
    )
    .await
    .expect("the run starts");
    assert_eq!(summary.calls as u64, CALLS);
    assert_eq!(summary.failed, 0, "failures: {:?}", summary.failures);
    for record in &summary.call_records {
        let r = &record.report;
        assert!(r.setup_ms.is_some(), "{}: no setup time", r.call_id);
        assert!(r.rtp_sent > 0, "{}: sent no audio", r.call_id);
        // The edge sends a packet every 20 ms for the whole call, silence included: about 50
        // on a quiet machine. The floor checks that audio flowed both ways, not its pace, which
        // a starved 2-core machine stretches (the benchmarks measure that).
        assert!(
            r.rtp.received >= 20,
            "{}: received {} packets",
            r.call_id,
            r.rtp.received
        );
        assert!(r.bye_ms.is_some(), "{}: BYE not answered", r.call_id);
    }
    assert!(summary.interarrival_ms.count > 0);
    // The edge's own account of its sending covers this run's streams: a packet every 20 ms
    // for about 1.5 s each (less the first of each stream, which has no spacing).
    let departure = summary
        .edge_departure
        .as_ref()
        .expect("the edge's /metrics has its departure histogram");
    let received: u64 = summary
        .call_records
        .iter()
        .map(|c| c.report.rtp.received)
        .sum();
    assert!(
        departure.packets + CALLS >= received,
        "the edge counted {} departures, the callers received {received} packets",
        departure.packets
    );
    assert!(departure.p50_ms_at_most.is_some() && departure.over_5ms_pct.is_some());

    // The platform recorded every call as ended by the caller, and none is left running.
    let store = control.store.clone();
    let calls = eventually(Duration::from_secs(15), "every call to be recorded", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let calls = store.calls(&scope, 100).await.ok()?;
            (calls.len() as u64 == CALLS && calls.iter().all(|c| c.ended_at_ms.is_some()))
                .then_some(calls)
        }
    })
    .await;
    assert!(calls
        .iter()
        .all(|c| c.end_reason.as_deref() == Some("caller_hangup")));
    assert_eq!(edge.state.active_calls(), 0);
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

/// One call to `demo` from the project's UAC saying one 400 ms tone, hanging up after `hold`,
/// with the tight set-up and BYE limits and the 60 ms lateness these tests measure with.
fn quick_call(target: SocketAddr, codec: Codec, hold: Duration) -> CallConfig {
    CallConfig {
        setup_timeout: Duration::from_secs(5),
        bye_timeout: Duration::from_secs(2),
        late_after: Duration::from_millis(60),
        ..call_to_demo(target, codec, vec![Utterance::tone(400)], hold)
    }
}

/// One call from the project's UAC with a short hold and frequent RTCP reports.
fn rtcp_call(target: SocketAddr, rtcp_mux: bool, codec: Codec) -> CallConfig {
    CallConfig {
        caller: "rtcp".into(),
        media: MediaOptions {
            rtcp_mux,
            rtcp_interval: Duration::from_millis(400),
            dtmf: Vec::new(),
        },
        ..quick_call(target, codec, Duration::from_millis(3000))
    }
}

/// Places `a` and `b` at once from one UAC endpoint; both reports, each call having succeeded,
/// and the workspace's two call records once both ended.
async fn two_calls(
    desk: &World,
    a: CallConfig,
    b: CallConfig,
) -> ([CallReport; 2], Vec<CallRecord>) {
    let cancel = CancellationToken::new();
    let endpoint = SipEndpoint::bind(SocketAddr::new(LOCALHOST, 0), cancel.clone())
        .await
        .expect("SIP socket");
    let (a, b) = tokio::join!(
        place_call(&endpoint, &a, &cancel),
        place_call(&endpoint, &b, &cancel)
    );
    for report in [&a, &b] {
        assert!(
            report.succeeded(),
            "{}: {:?}",
            report.call_id,
            report.failure
        );
    }
    cancel.cancel();
    let (store, scope) = (desk.control.store.clone(), desk.scope.clone());
    let calls = eventually(Duration::from_secs(15), "both calls to be recorded", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            (calls.len() == 2 && calls.iter().all(|c| c.ended_at_ms.is_some())).then_some(calls)
        }
    })
    .await;
    ([a, b], calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_reports_flow_both_ways_and_show_in_the_call_record() {
    let desk = desk().await;
    // One call multiplexes RTCP on the RTP port, the other uses the odd ports above.
    let muxed = rtcp_call(desk.edge.sip_addr, true, Codec::Pcmu);
    let paired = rtcp_call(desk.edge.sip_addr, false, Codec::Pcmu);
    let (reports, calls) = two_calls(&desk, muxed, paired).await;
    for report in &reports {
        // The edge reports every ~0.5 s (rtp.rtcp_interval_ms in the test config) with an
        // echo of our SRs, so we measured the round trip too.
        assert!(report.rtcp.reports_received >= 2, "{:?}", report.rtcp);
        assert!(report.rtcp.rtt_ms.is_some(), "{:?}", report.rtcp);
        assert_eq!(report.rtcp.peer_cumulative_lost, Some(0));
    }
    let key = desk.key(Role::Viewer).await;
    let api = Api::of(&desk.control);
    for call in calls {
        let detail = api
            .call("GET", &format!("/v1/calls/{}", call.id), &key, None)
            .await;
        assert_eq!(detail.status, reqwest::StatusCode::OK);
        let events = detail.body["events"].as_array().expect("events").clone();
        let ended = events
            .iter()
            .find(|e| e["kind"] == "call.ended")
            .expect("call.ended");
        let rtcp = &ended["payload"]["rtcp"];
        // Our UAC reports every ~0.4 s for 3 s: the edge read them and echoed its SRs back.
        assert!(
            rtcp["reports_received"].as_u64().is_some_and(|n| n >= 2),
            "{rtcp}"
        );
        assert!(
            rtcp["reports_sent"].as_u64().is_some_and(|n| n >= 2),
            "{rtcp}"
        );
        assert!(
            rtcp["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{rtcp}"
        );
        assert_eq!(rtcp["peer_cumulative_lost"], 0, "{rtcp}");
        assert_eq!(rtcp["peer_fraction_lost"], 0.0, "{rtcp}");
        assert_eq!(rtcp["junk"], 0, "{rtcp}");
    }
    desk.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_calls_and_key_presses_from_the_uac_reach_the_edge() {
    let desk = desk().await;
    let presses = freya_loadtest::dtmf_spec::parse_all(&["12#@0.6".into()]).expect("keys");
    let mut opus = rtcp_call(desk.edge.sip_addr, true, Codec::Opus);
    opus.media.dtmf = presses.clone();
    let mut pcmu = rtcp_call(desk.edge.sip_addr, false, Codec::Pcmu);
    pcmu.media.dtmf = presses;
    let (reports, calls) = two_calls(&desk, opus, pcmu).await;
    for report in &reports {
        assert_eq!(report.dtmf_sent, 3);
        // The edge's stream, decoded, over the 3 s call: 150 packets on a quiet machine. A
        // starved 2-core machine delays the edge's pacer (stalls near a second were seen), so
        // what is checked is that the stream flowed and nothing sent was lost, not its pace.
        assert!(report.rtp.received >= 50, "{:?}", report.rtp);
        assert_eq!(report.rtp.lost, 0, "{:?}", report.rtp);
    }
    let mut codecs = Vec::new();
    for call in calls {
        let events = desk.events_of(&call.id).await;
        let digits: String = events
            .iter()
            .filter(|e| e.kind == "call.dtmf")
            .map(|e| {
                assert_eq!(e.payload["via"], "rfc4733");
                e.payload["digit"].as_str().unwrap_or("?").to_string()
            })
            .collect();
        assert_eq!(digits, "12#", "{} heard the keys", call.id);
        let started = events
            .iter()
            .find(|e| e.kind == "call.started")
            .expect("started");
        codecs.push(started.payload["codec"].as_str().unwrap_or("?").to_string());
        let ended = events
            .iter()
            .find(|e| e.kind == "call.ended")
            .expect("ended");
        assert_eq!(ended.payload["rtp"]["junk"], 0, "{}", ended.payload);
        assert_eq!(ended.payload["rtp"]["lost"], 0, "{}", ended.payload);
    }
    codecs.sort();
    assert_eq!(codecs, ["Opus", "Pcmu"]);
    desk.stop().await;
}

//! The load-test harness against a real edge: the project's own UAC (freya-loadtest) places a
//! small, bounded batch of concurrent calls into an edge linked to a real control plane, and every
//! call must be answered, carry RTP both ways and be hung up cleanly — correctness, not speed.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::sip::sdp::Codec;
use freya_edge::Edge;
use freya_loadtest::audio::Utterance;
use freya_loadtest::onset::OnsetConfig;
use freya_loadtest::runner::{run, RunPlan};
use freya_loadtest::uac::{CallConfig, HangupSide, TalkerConfig};
use freya_shared::model::{AgentSpec, PhoneNumberSpec};
use support::{control_config, edge_config, eventually, Backend, TestDb, SECRET};
use tokio_util::sync::CancellationToken;

const CALLS: u64 = 20;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_concurrent_calls_is_answered_with_audio_both_ways() {
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let ws = control
        .store
        .create_workspace("Load")
        .await
        .expect("workspace");
    let scope = WorkspaceScope { workspace_id: ws };
    let agent: AgentSpec =
        serde_json::from_value(serde_json::json!({"name": "Desk"})).expect("agent");
    let agent = control
        .store
        .create_agent(&scope, "test", &agent)
        .await
        .expect("agent");
    let number = PhoneNumberSpec {
        number: "demo".into(),
        region: None,
        agent_id: Some(agent.id),
        workflow_id: None,
    };
    control
        .store
        .create_number(&scope, "test", &number)
        .await
        .expect("number");
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    let state = edge.state.clone();
    eventually(
        Duration::from_secs(10),
        "the edge to learn the number",
        || {
            let state = state.clone();
            async move { state.snapshot().route("demo").map(|_| ()) }
        },
    )
    .await;

    let plan = RunPlan {
        call: CallConfig {
            target: edge.sip_addr,
            number: "demo".into(),
            caller: "loadtest".into(),
            codec: Codec::Pcmu,
            media_ip: LOCALHOST,
            hold: Duration::from_millis(1500),
            hangup: HangupSide::Caller,
            callee_grace: Duration::from_secs(2),
            setup_timeout: Duration::from_secs(5),
            bye_timeout: Duration::from_secs(2),
            turns: Arc::from(vec![Utterance::tone(400)]),
            talker: TalkerConfig {
                first_turn_after: Duration::from_millis(200),
                reply_timeout: Duration::from_millis(600),
                pause_after_reply: Duration::from_millis(100),
            },
            onset: OnsetConfig::default(),
            late_after: Duration::from_millis(60),
            received_audio: None,
        },
        local_sip: SocketAddr::new(LOCALHOST, 0),
        calls: CALLS,
        concurrency: 10,
        rate: 20.0,
        ramp_up: Duration::from_millis(300),
        max_run: Duration::from_secs(40),
        edge_pids: vec![std::process::id()],
        progress: false,
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
        // The edge sends a packet every 20 ms for the whole call, silence included.
        assert!(
            r.rtp.received >= 40,
            "{}: received {} packets",
            r.call_id,
            r.rtp.received
        );
        assert!(r.bye_ms.is_some(), "{}: BYE not answered", r.call_id);
    }
    assert!(summary.interarrival_ms.count > 0);

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

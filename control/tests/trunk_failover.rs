//! A dead UDP trunk costs an outbound call a moment, not its invite timeout: the first trunk
//! is a UDP port where nothing listens, so our INVITE draws an ICMP port-unreachable, which
//! the edge reads off its SIP socket's error queue and treats as a 503 (RFC 3261 section
//! 8.1.3.1); the second trunk, a sipp UAS, answers. Both trunks keep a 30 s invite timeout, so
//! only the ICMP error can explain a quick answer. Prints the time from the command to the
//! answer (`loadtest/BENCHMARKS.md`, "Trunk failover").
//!
//! The edge gets its trunks by writing its configuration snapshot, as `sip_outbound.rs` does.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{EdgeCommand, PlaceCall};
use freya_shared::model::{AgentSpec, PhoneNumberSpec, ProviderSpec, SipTransport, SipTrunkSpec};
use freya_shared::snapshot::ProviderConfig;
use support::{control_config, edge_config, eventually, Backend, TestDb, SECRET};

/// Both trunks' invite timeout: long, so that it cannot be what moves the call on.
const INVITE_TIMEOUT_MS: u32 = 30_000;

struct Setup {
    db: TestDb,
    control: ControlPlane,
    edge: Edge,
    scope: WorkspaceScope,
    agent_id: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let workspace_id = control
        .store
        .create_workspace("Failover")
        .await
        .expect("workspace");
    let scope = WorkspaceScope { workspace_id };
    let agent: AgentSpec =
        serde_json::from_value(serde_json::json!({"name": "Caller"})).expect("agent");
    let agent = control
        .store
        .create_agent(&scope, "test", &agent)
        .await
        .expect("agent");
    // A number, so that the edge's snapshot carries the agent.
    let number = PhoneNumberSpec {
        number: "demo".into(),
        region: None,
        regions: Vec::new(),
        agent_id: Some(agent.id.clone()),
        workflow_id: None,
    };
    let store = &control.store;
    store
        .create_number(&scope, "test", &number)
        .await
        .expect("number");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = edge_config(dir.path(), control.grpc_addr, SECRET);
    let edge = Edge::start(&config).await.expect("edge starts");
    let state = edge.state.clone();
    eventually(Duration::from_secs(10), "the edge's first snapshot", || {
        let state = state.clone();
        async move { state.snapshot().route("demo").map(|_| ()) }
    })
    .await;
    Setup {
        db,
        control,
        edge,
        scope,
        agent_id: agent.id,
        _dir: dir,
    }
}

fn set_trunks(s: &Setup, trunks: Vec<(&str, u16)>) {
    let mut snapshot = (*s.edge.state.snapshot()).clone();
    snapshot.providers = trunks
        .into_iter()
        .enumerate()
        .map(|(i, (name, port))| ProviderConfig {
            id: format!("trunk-{name}"),
            workspace_id: s.scope.workspace_id.clone(),
            spec: ProviderSpec::SipTrunk(SipTrunkSpec {
                name: name.into(),
                host: "127.0.0.1".into(),
                port,
                transport: SipTransport::Udp,
                username: None,
                password: None,
                caller_id: Some("+15550100".into()),
                priority: i32::try_from(i).expect("few trunks") + 1,
                regions: Vec::new(),
                invite_timeout_ms: INVITE_TIMEOUT_MS,
                outbound_proxy: None,
            }),
        })
        .collect();
    s.edge.state.set_snapshot(snapshot);
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A sipp UAS answering one call (`uas_answer.xml`: rings, answers, hangs up after 1.5 s).
async fn answering_trunk() -> (tokio::process::Child, tempfile::TempDir, u16) {
    let work = tempfile::tempdir().expect("temp dir");
    let port = free_udp_port().to_string();
    let media = free_udp_port().to_string();
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_answer.xml");
    let child = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-p", &port, "-m", "1", "-i", "127.0.0.1", "-mp", &media])
        .args(["-timeout", "60s", "-nostdin", "-trace_err"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    // Let sipp bind its socket before the edge calls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    (child, work, port.parse().expect("port"))
}

async fn place_call(s: &Setup) -> String {
    let call_id = uuid::Uuid::now_v7().to_string();
    let command = EdgeCommand {
        id: uuid::Uuid::now_v7().to_string(),
        command: Some(Command::PlaceCall(PlaceCall {
            call_id: call_id.clone(),
            workspace_id: s.scope.workspace_id.clone(),
            from: "+15550199".into(),
            to: "+15557770009".into(),
            agent_id: s.agent_id.clone(),
        })),
    };
    let (hub, edge_id) = (s.control.commands.clone(), s.edge.id.clone());
    eventually(Duration::from_secs(10), "the edge's command stream", || {
        let (hub, edge_id, command) = (hub.clone(), edge_id.clone(), command.clone());
        async move { hub.send(&edge_id, command).await.ok() }
    })
    .await;
    call_id
}

/// The payload of the call's `call.answered`, once recorded (`limit` is a hang guard), and the
/// time between the edge's `call.started` (stamped as it dials) and `call.answered`.
async fn answered(s: &Setup, call_id: &str, limit: Duration) -> (serde_json::Value, Duration) {
    eventually(limit, "the call to be answered", || {
        let (store, scope) = (s.control.store.clone(), s.scope.clone());
        async move {
            let events = store.call_events(&scope, call_id).await.ok()?;
            let at = |kind: &str| events.iter().find(|e| e.kind == kind);
            let (started, answered) = (at("call.started")?, at("call.answered")?);
            let took = u64::try_from(answered.at_ms - started.at_ms).unwrap_or_default();
            Some((answered.payload.clone(), Duration::from_millis(took)))
        }
    })
    .await
}

/// Runs the two-trunk call with `first`'s port as the first trunk: released once sipp has its
/// ports (so neither of them can be given it) when `silent` is false, kept bound and never
/// read when true. The answered payload, the time from the command to the answer seen in the
/// store, and the edge's dial-to-answer time.
async fn fail_over(
    first: std::net::UdpSocket,
    silent: bool,
    limit: Duration,
) -> (serde_json::Value, Duration, Duration) {
    let s = setup().await;
    let (mut sipp, _work, up) = answering_trunk().await;
    let port = first.local_addr().expect("addr").port();
    let _silent = silent.then_some(first);
    set_trunks(&s, vec![("dead", port), ("alive", up)]);
    let asked = Instant::now();
    let call_id = place_call(&s).await;
    let (payload, at_edge) = answered(&s, &call_id, limit).await;
    let took = asked.elapsed();
    let status = tokio::time::timeout(Duration::from_secs(30), sipp.wait())
        .await
        .expect("sipp finishes")
        .expect("sipp status");
    assert!(status.success(), "the second trunk's call went as scripted");
    s.edge.stop().await;
    s.control.stop().await;
    s.db.cleanup().await;
    (payload, took, at_edge)
}

fn first_attempt(payload: &serde_json::Value) -> (&str, &str) {
    let attempts = payload["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{payload}");
    (
        attempts[0]["provider"].as_str().expect("provider"),
        // `transport_error`, `timeout`: outcomes without a status are words.
        attempts[0]["outcome"].as_str().expect("outcome"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_udp_trunk_fails_over_on_its_icmp_error_not_its_invite_timeout() {
    // A port where nothing listens: bound, then released.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("a port");
    // Hang guard only, well under the 30 s invite timeout the old behaviour would take.
    let (payload, took, at_edge) = fail_over(dead, false, Duration::from_secs(10)).await;
    println!(
        "dead first trunk (ICMP): answered {took:?} after the command, {at_edge:?} after dialling"
    );
    assert_eq!(payload["provider_id"], "trunk-alive", "{payload}");
    let (trunk, outcome) = first_attempt(&payload);
    assert_eq!(trunk, "dead");
    assert_eq!(outcome, "transport_error");
}

/// What a dead trunk cost before ICMP errors were read, and still costs when no ICMP comes
/// back (a firewall drops it): a silent peer holds the call for the whole invite timeout.
/// 30 s long, so only run on purpose (`--run-ignored only`), for the benchmark figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes the 30 s invite timeout; run for loadtest/BENCHMARKS.md"]
async fn a_silent_trunk_costs_its_invite_timeout() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a silent peer");
    let (payload, took, at_edge) = fail_over(silent, true, Duration::from_secs(45)).await;
    println!("silent first trunk (no ICMP): answered {took:?} after the command, {at_edge:?} after dialling");
    let (trunk, outcome) = first_attempt(&payload);
    assert_eq!((trunk, outcome), ("dead", "timeout"));
    assert!(at_edge >= Duration::from_millis(u64::from(INVITE_TIMEOUT_MS)));
}

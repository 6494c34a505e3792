//! What the edge does inside a call, end to end against sipp (a foreign SIP peer): an agent
//! whose model (the fake OpenAI server, driven through the real client) calls the built-in
//! `transfer_call` (REFER, NOTIFY progress, our BYE) or `send_dtmf` (SIP INFO when the caller
//! offered no telephone-event), and RFC 4028 session timers (422 for a too-short interval).
//! Checked: what sipp saw (its scenarios assert the requests' contents) and what the control
//! plane recorded.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use freya_control::server::ControlPlane;
use freya_control::store::{CallRecord, StoredEvent, WorkspaceScope};
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::media::g711::G711;
use freya_edge::speech::fakes::FakeOpenAiSpeech;
use freya_edge::Edge;
use freya_loadtest::audio::Utterance;
use freya_shared::model::{AgentSpec, PhoneNumberSpec};
use support::{control_config, edge_config, eventually, Backend, TestDb, SECRET};

/// A pcap (Ethernet/IPv4/UDP/RTP, PCMA, 20 ms packets) of espeak-ng saying `text` followed by
/// `silence_ms` of silence, for sipp's `play_pcap_audio`: the silence is what ends the
/// caller's turn (sipp's own sample audio never pauses long enough).
fn speech_pcap(text: &str, silence_ms: usize) -> Vec<u8> {
    let spoken = Utterance::speak(text).expect("espeak-ng speaks");
    let mut samples = spoken.samples.to_vec();
    samples.extend(std::iter::repeat_n(0i16, silence_ms * 8));
    let mut pcap = Vec::new();
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
        if word == 0x0004_0002 {
            pcap.extend_from_slice(&2u16.to_le_bytes());
            pcap.extend_from_slice(&4u16.to_le_bytes());
        } else {
            pcap.extend_from_slice(&word.to_le_bytes());
        }
    }
    for (i, frame) in samples.chunks_exact(160).enumerate() {
        let mut payload = [0u8; 160];
        G711::Alaw.encode(frame, &mut payload);
        let i = u32::try_from(i).expect("index");
        let mut rtp = vec![0x80, 8];
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&(i * 160).to_be_bytes());
        rtp.extend_from_slice(&0x5eed_u32.to_be_bytes());
        rtp.extend_from_slice(&payload);
        let udp_len = 8 + rtp.len() as u16;
        let mut packet = vec![0u8; 12];
        packet.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0]);
        packet[16..18].copy_from_slice(&(20 + udp_len).to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        packet.extend_from_slice(&6000u16.to_be_bytes());
        packet.extend_from_slice(&6002u16.to_be_bytes());
        packet.extend_from_slice(&udp_len.to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&rtp);
        let micros = i * 20_000;
        let len = u32::try_from(packet.len()).expect("length");
        for word in [micros / 1_000_000, micros % 1_000_000, len, len] {
            pcap.extend_from_slice(&word.to_le_bytes());
        }
        pcap.extend_from_slice(&packet);
    }
    pcap
}

/// Runs sipp once with `scenario` against `target`, dialling `number`; returns its exit code.
async fn sipp(target: std::net::SocketAddr, scenario: &str, number: &str) -> i32 {
    let work = tempfile::tempdir().expect("temp dir");
    let pcap = speech_pcap("Put me through to sales, please.", 3000);
    std::fs::write(work.path().join("speech.pcap"), pcap).expect("pcap written");
    let port = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port().to_string())
            .expect("a free port")
    };
    let (sip_port, media_port) = (port(), port());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("sipp")
            .arg("-sf")
            .arg(path)
            .args(["-s", number, &target.to_string(), "-m", "1"])
            .args(["-i", "127.0.0.1", "-p", &sip_port, "-mp", &media_port])
            .args(["-timeout", "60s", "-nostdin", "-trace_err", "-trace_msg"])
            .current_dir(work.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sipp finishes within 90 s")
    .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    let code = output.status.code().unwrap_or(-1);
    if code != 0 {
        for entry in std::fs::read_dir(work.path()).expect("sipp dir").flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                eprintln!("--- {}:\n{text}", entry.path().display());
            }
        }
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    }
    code
}

/// A control plane, an edge, the fake providers, and number `demo` answered by an agent built
/// from `agent` (its `stt`, `llm` and `tts` sections are filled in with the fakes).
struct World {
    db: TestDb,
    control: ControlPlane,
    edge: Edge,
    scope: WorkspaceScope,
    llm: FakeLlmServer,
    _speech: FakeOpenAiSpeech,
    _dir: tempfile::TempDir,
}

async fn world(mut agent: serde_json::Value) -> World {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_default_transcript("Put me through to sales, please.");
    let llm = FakeLlmServer::openai().await.expect("fake llm");
    agent["stt"] = serde_json::json!({"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"});
    agent["llm"] = serde_json::json!({"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "k"});
    agent["tts"] = serde_json::json!({"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"});
    let agent: AgentSpec = serde_json::from_value(agent).expect("agent");
    assert_eq!(agent.validate(), Vec::new());
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let workspace_id = control
        .store
        .create_workspace("In call")
        .await
        .expect("workspace");
    let scope = WorkspaceScope { workspace_id };
    let agent = control
        .store
        .create_agent(&scope, "test", &agent)
        .await
        .expect("agent");
    control
        .store
        .create_number(
            &scope,
            "test",
            &PhoneNumberSpec {
                number: "demo".into(),
                region: None,
                agent_id: agent.id,
            },
        )
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
    World {
        db,
        control,
        edge,
        scope,
        llm,
        _speech: speech,
        _dir: dir,
    }
}

/// The one call, once it has ended, and its events.
async fn ended_call(w: &World) -> (CallRecord, Vec<StoredEvent>) {
    let calls: Vec<CallRecord> = eventually(Duration::from_secs(15), "the call to end", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            (calls.len() == 1 && calls[0].ended_at_ms.is_some()).then_some(calls)
        }
    })
    .await;
    let events = w
        .control
        .store
        .call_events(&w.scope, &calls[0].id)
        .await
        .expect("events");
    (calls[0].clone(), events)
}

async fn teardown(w: World) {
    assert_eq!(w.edge.state.active_calls(), 0);
    w.edge.stop().await;
    w.control.stop().await;
    w.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_transfers_a_sipp_caller_by_refer_and_hangs_up_when_notified() {
    let w = world(serde_json::json!({
        "name": "Switchboard",
        "system_prompt": "Transfer callers who ask for sales.",
        "transfer_destinations": ["+15550100"]
    }))
    .await;
    // The first answer transfers; anything after it (more of the caller's audio) is plain text.
    w.llm.push_reply(FakeReply::tool_call(
        "call_1",
        "transfer_call",
        serde_json::json!({"destination": "+15550100"}),
    ));
    w.llm.respond_with(|_| FakeReply::text("One moment."));

    let code = sipp(w.edge.sip_addr, "uac_transfer.xml", "demo").await;

    let (call, events) = ended_call(&w).await;
    assert_eq!(
        code, 0,
        "sipp received the REFER, reported progress and got our BYE; events: {events:#?}"
    );
    assert_eq!(call.end_reason.as_deref(), Some("transferred"));
    let transfer: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "call.transfer")
        .filter_map(|e| e.payload["status"].as_str())
        .collect();
    assert_eq!(
        transfer,
        ["requested", "accepted", "trying", "succeeded"],
        "{events:?}"
    );
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("ended");
    assert_eq!(ended.payload["transferred_to"], "+15550100");
    assert_eq!(ended.payload["hangup_by"], "agent");
    let tools = &w.llm.requests()[0].body["tools"];
    assert!(
        tools
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "transfer_call")),
        "the model was offered transfer_call: {tools}"
    );
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_dtmf_reaches_a_caller_without_telephone_event_by_sip_info() {
    let w = world(serde_json::json!({"name": "Menu", "system_prompt": "Press 1 then #."})).await;
    w.llm.push_reply(FakeReply::tool_call(
        "call_1",
        "send_dtmf",
        serde_json::json!({"digits": "1#"}),
    ));
    w.llm.respond_with(|_| FakeReply::text("Done."));

    let code = sipp(w.edge.sip_addr, "uac_dtmf_info.xml", "demo").await;

    let (call, events) = ended_call(&w).await;
    assert_eq!(code, 0, "sipp received both INFOs; events: {events:#?}");
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let sent: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.kind == "call.dtmf_sent")
        .collect();
    assert_eq!(sent.len(), 1, "{events:#?}");
    assert_eq!(sent[0].payload["digits"], "1#");
    assert_eq!(sent[0].payload["via"], "sip_info");
    teardown(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_interval_below_our_minimum_is_refused_with_422() {
    let w = world(serde_json::json!({"name": "Desk"})).await;
    assert_eq!(
        sipp(w.edge.sip_addr, "uac_session_too_small.xml", "demo").await,
        0,
        "sipp got 422 with Min-SE: 90"
    );
    teardown(w).await;
}

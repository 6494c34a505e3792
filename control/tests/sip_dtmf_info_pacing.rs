//! The agent's digits by SIP INFO, over real sockets: a caller written by hand (SIP and RTP on
//! this test's sockets, PCMU without telephone-event) hears the agent press "123" and records
//! when each INFO arrives. Sent back to back they used to arrive within a millisecond; they
//! must come one key per INFO, spaced as RTP presses (240 ms: a 140 ms press and a 100 ms gap).

mod support;

use std::time::{Duration, Instant};

use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::media::g711::G711;
use freya_edge::speech::fakes::FakeOpenAiSpeech;
use freya_edge::Edge;
use freya_loadtest::audio::Utterance;
use freya_shared::model::AgentSpec;
use support::raw_sip::{Call, Offer};
use support::{
    agent_on_number, control_config, edge_config, until_routed, Backend, TestDb, SECRET,
};

/// The RTP path's spacing of two presses, less one 20 ms tick of scheduling on this machine.
const MIN_GAP: Duration = Duration::from_millis(240 - 20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_digits_arrive_one_key_each_spaced_as_rtp_presses() {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_default_transcript("Press one two three.");
    let llm = FakeLlmServer::openai().await.expect("fake llm");
    let agent = serde_json::json!({
        "name": "Menu",
        "system_prompt": "Press 1 2 3.",
        "stt": {"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "k"},
        "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"},
    });
    let agent: AgentSpec = serde_json::from_value(agent).expect("agent");
    llm.push_reply(FakeReply::tool_call(
        "call_1",
        "send_dtmf",
        serde_json::json!({"digits": "123"}),
    ));
    llm.respond_with(|_| FakeReply::text("Done."));
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let workspace_id = control
        .store
        .create_workspace("Digits")
        .await
        .expect("workspace");
    let scope = WorkspaceScope { workspace_id };
    agent_on_number(&control, &scope, "demo", &agent).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    until_routed(&edge, "demo").await;

    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("rtp");
    let call = Call::dial_offering(
        edge.sip_addr,
        &rtp,
        "demo",
        "raw-info-pacing-1",
        Offer::Pcmu,
    )
    .await;
    let (sip, edge_rtp) = (&call.sip, call.edge_rtp);
    let mut buf = vec![0u8; 65_536];

    // One spoken turn, then silence, while the INFOs are answered and timed.
    let mut speech_samples = Utterance::speak("Press one two three, please.")
        .expect("espeak-ng speaks")
        .samples
        .to_vec();
    speech_samples.extend(std::iter::repeat_n(0i16, 8000 * 8));
    let mut frames = speech_samples.chunks_exact(160);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut rtp_buf = [0u8; 2048];
    let mut seq = 0u16;
    let mut infos: Vec<(Instant, String)> = Vec::new();
    let started = Instant::now();
    while infos.len() < 3 && started.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            _ = ticker.tick() => {
                if let Some(frame) = frames.next() {
                    let mut payload = [0u8; 160];
                    G711::Ulaw.encode(frame, &mut payload);
                    let mut packet = vec![0x80, 0];
                    packet.extend_from_slice(&seq.to_be_bytes());
                    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    packet.extend_from_slice(&0x00c0_ffee_u32.to_be_bytes());
                    packet.extend_from_slice(&payload);
                    seq = seq.wrapping_add(1);
                    rtp.send_to(&packet, edge_rtp).await.expect("RTP");
                }
            }
            _ = rtp.recv_from(&mut rtp_buf) => {}
            received = sip.recv_from(&mut buf) => {
                let (n, from) = received.expect("SIP recv");
                let arrived = Instant::now();
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !text.starts_with("INFO ") {
                    continue;
                }
                // Answer it with its own Via, From, To, Call-ID and CSeq.
                let headers: String = text
                    .lines()
                    .filter(|l| ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].iter().any(|h| l.starts_with(h)))
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let ok = format!("SIP/2.0 200 OK\r\n{headers}Content-Length: 0\r\n\r\n");
                sip.send_to(ok.as_bytes(), from).await.expect("200 to INFO");
                let signal = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Signal="))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default();
                infos.push((arrived, signal));
            }
        }
    }
    call.hang_up(2).await;

    let keys: Vec<&str> = infos.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(keys, ["1", "2", "3"], "one INFO per key, in order");
    let gaps: Vec<Duration> = infos.windows(2).map(|p| p[1].0 - p[0].0).collect();
    assert!(
        gaps.iter().all(|g| *g >= MIN_GAP),
        "INFO digits spaced as RTP presses: {gaps:?}"
    );
    let (_, _) = support::the_ended_call(&control.store, &scope).await;
    assert_eq!(edge.state.active_calls(), 0);
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

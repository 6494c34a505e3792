//! The record of a reply the caller hangs up during, over real sockets: a caller written by
//! hand (SIP and RTP on this test's sockets) asks a question, hears about a second of the
//! agent's three-sentence answer and hangs up. The call's transcript must keep the agent's line
//! as far as it was heard, cut with a dash and marked interrupted — it used to have no agent
//! line at all.

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
use support::caller::ulaw;
use support::raw_sip::{Call, Offer};
use support::{
    agent_on_number, control_config, edge_config, until_routed, Backend, TestDb, SECRET,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_the_caller_hangs_up_during_is_recorded_as_far_as_heard() {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_default_transcript("What are your opening hours?");
    // Each sentence: two seconds of tone at 24 kHz.
    speech.set_speech_audio(
        (0..48_000)
            .map(|i| if (i / 30) % 2 == 0 { 8000 } else { -8000 })
            .collect(),
    );
    let llm = FakeLlmServer::openai().await.expect("fake llm");
    let agent = serde_json::json!({
        "name": "Desk",
        "system_prompt": "Tell the opening hours.",
        "stt": {"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "k"},
        "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"},
    });
    let agent: AgentSpec = serde_json::from_value(agent).expect("agent");
    llm.respond_with(|_| {
        FakeReply::text(
            "We open at nine every weekday. We close at six in the evening. On Sundays we rest.",
        )
    });
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let workspace_id = control
        .store
        .create_workspace("Last reply")
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
    let call =
        Call::dial_offering(edge.sip_addr, &rtp, "demo", "raw-last-reply-1", Offer::Pcmu).await;
    let (sip, edge_rtp) = (&call.sip, call.edge_rtp);
    let mut buf = vec![0u8; 65_536];

    // One spoken turn, then silence, until about a second of the answer has been heard.
    let mut speech_samples = Utterance::speak("What are your opening hours?")
        .expect("espeak-ng speaks")
        .samples
        .to_vec();
    speech_samples.extend(std::iter::repeat_n(0i16, 8000 * 10));
    let mut frames = speech_samples.chunks_exact(160);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut rtp_buf = [0u8; 2048];
    let mut seq = 0u16;
    let mut loud_frames = 0;
    let started = Instant::now();
    while loud_frames < 50 && started.elapsed() < Duration::from_secs(20) {
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
            received = rtp.recv_from(&mut rtp_buf) => {
                let (n, _) = received.expect("RTP recv");
                let payload = rtp_buf.get(12..n).unwrap_or_default();
                if payload.iter().any(|b| ulaw(*b).abs() > 2000) {
                    loud_frames += 1;
                }
            }
            _ = sip.recv_from(&mut buf) => {}
        }
    }
    assert!(loud_frames >= 50, "the caller heard a second of the answer");
    call.hang_up(2).await;

    let (call, events) = support::the_ended_call(&control.store, &scope).await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let agent: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.kind == "call.transcript" && e.payload["role"] == "agent")
        .map(|e| &e.payload)
        .collect();
    let [line] = &agent[..] else {
        panic!("one agent line: {events:#?}");
    };
    assert_eq!(line["interrupted"], true, "{line}");
    let text = line["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("We open") && text.ends_with('—') && !text.contains("Sundays"),
        "the words heard, cut: {text:?}"
    );
    let heard_ms = line["end_ms"].as_u64().unwrap_or(0) - line["start_ms"].as_u64().unwrap_or(0);
    assert!(
        heard_ms >= 900,
        "dated from its first sample to the hang-up: {line}"
    );
    assert_eq!(edge.state.active_calls(), 0);
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

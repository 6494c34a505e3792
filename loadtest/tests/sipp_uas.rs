//! A small, bounded load test against sipp acting as a voice agent on 127.0.0.1: sipp answers
//! with PCMU, waits while our caller speaks, then streams a "reply" (the scenario in
//! `uas_reply.xml`). Asserts correctness only — every call answered, audio both ways, every
//! latency measured — never speed. sipp is killed at the end, on failure too (a drop guard).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use freya_edge::media::g711::G711;
use freya_edge::sip::sdp::Codec;
use freya_loadtest::audio::Utterance;
use freya_loadtest::onset::OnsetConfig;
use freya_loadtest::report;
use freya_loadtest::runner::{run, RunPlan};
use freya_loadtest::uac::{CallConfig, HangupSide, MediaOptions, TalkerConfig};
use tokio_util::sync::CancellationToken;

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const CALLS: u64 = 12;

/// Kills sipp when the test ends, however it ends.
struct SippGuard(Child);

impl Drop for SippGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A u-law WAV (format 7) of a voice-like tone: what sipp's rtp_stream plays as the reply.
fn ulaw_reply_wav(ms: u32) -> Vec<u8> {
    let pcm = Utterance::tone(ms).samples;
    let mut payload = vec![0u8; pcm.len()];
    let n = G711::Ulaw.encode(&pcm, &mut payload);
    payload.truncate(n);
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + payload.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for v in [
        16u32.to_le_bytes().to_vec(),
        7u16.to_le_bytes().to_vec(),
        1u16.to_le_bytes().to_vec(),
    ] {
        wav.extend_from_slice(&v);
    }
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    wav.extend_from_slice(&payload);
    wav
}

fn start_sipp(dir: &std::path::Path, sip_port: u16) -> SippGuard {
    let reply = dir.join("reply.wav");
    std::fs::write(&reply, ulaw_reply_wav(800)).unwrap();
    let template = include_str!("uas_reply.xml");
    let scenario = template
        .replace("REPLY_FILE", &reply.display().to_string())
        .replace("REPLY_DELAY_MS", "1200");
    let scenario_path = dir.join("uas.xml");
    std::fs::write(&scenario_path, scenario).unwrap();
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(&scenario_path)
        .args(["-i", "127.0.0.1", "-p", &sip_port.to_string()])
        .args(["-mp", &free_port().to_string(), "-nostdin"])
        .args([
            "-trace_err",
            "-error_file",
            &dir.join("errors.log").display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (Debian package sip-tester) must be installed");
    let guard = SippGuard(child);
    // sipp binds its socket within milliseconds; give it a generous moment.
    std::thread::sleep(Duration::from_millis(500));
    guard
}

#[test]
fn every_call_is_answered_with_audio_both_ways_and_latencies_measured() {
    let dir = tempfile::tempdir().unwrap();
    let sip_port = free_port();
    let mut sipp = start_sipp(dir.path(), sip_port);
    assert!(sipp.0.try_wait().unwrap().is_none(), "sipp exited at start");

    let call = CallConfig {
        target: SocketAddr::new(LOCALHOST, sip_port),
        number: "demo".into(),
        caller: "loadtest".into(),
        codec: Codec::Pcmu,
        media_ip: LOCALHOST,
        hold: Duration::from_millis(2500),
        hangup: HangupSide::Caller,
        callee_grace: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(5),
        bye_timeout: Duration::from_secs(2),
        turns: Arc::from(vec![Utterance::tone(600)]),
        talker: TalkerConfig {
            first_turn_after: Duration::from_millis(300),
            reply_timeout: Duration::from_secs(2),
            pause_after_reply: Duration::from_millis(200),
            barge_in_after: None,
            ..TalkerConfig::default()
        },
        onset: OnsetConfig::default(),
        late_after: Duration::from_millis(60),
        received_audio: None,
        conversation_events: None,
        media: MediaOptions::default(),
    };
    let plan = RunPlan {
        call,
        local_sip: SocketAddr::new(LOCALHOST, 0),
        calls: CALLS,
        concurrency: 6,
        rate: 10.0,
        ramp_up: Duration::from_millis(500),
        max_run: Duration::from_secs(30),
        edge_pids: vec![sipp.0.id()],
        edge_metrics: Vec::new(),
        progress: false,
        targets: Vec::new(),
        kill: None,
        follow: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let summary = runtime
        .block_on(run(
            plan,
            serde_json::json!({"test": true}),
            CancellationToken::new(),
        ))
        .unwrap();

    assert_eq!(summary.calls as u64, CALLS);
    assert_eq!(summary.failed, 0, "failures: {:?}", summary.failures);
    for record in &summary.call_records {
        let r = &record.report;
        assert!(r.setup_ms.is_some(), "{}: no setup time", r.call_id);
        assert!(r.rtp_sent > 0, "{}: sent no audio", r.call_id);
        assert!(r.rtp.received > 0, "{}: received no audio", r.call_id);
        assert!(
            r.first_audio_ms.is_some(),
            "{}: no agent audio detected",
            r.call_id
        );
        assert_eq!(
            r.v2v_ms.len(),
            1,
            "{}: the reply to the caller's turn was not detected",
            r.call_id
        );
        assert!(r.bye_ms.is_some(), "{}: BYE not answered", r.call_id);
    }
    assert_eq!(summary.v2v_ms.count as u64, CALLS);
    assert!(summary.v2v_ms.p50 > 0.0);
    assert!(summary.interarrival_ms.count > 0 && summary.jitter_ms.count as u64 == CALLS);
    assert!(
        summary.timeline.iter().any(|p| p.edge_rss_mib.is_some()),
        "sipp's RSS was sampled"
    );

    let json = dir.path().join("run.json");
    let html = dir.path().join("run.html");
    report::write_json(&summary, &json).unwrap();
    report::write_html(&summary, &html).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        parsed["call_records"].as_array().map(Vec::len),
        Some(CALLS as usize)
    );
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    drop(sipp);
}

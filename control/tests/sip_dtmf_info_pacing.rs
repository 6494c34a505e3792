//! The agent's digits by SIP INFO, over real sockets: a caller written by hand (SIP and RTP on
//! this test's sockets, PCMU without telephone-event) hears the agent press "123" and records
//! when each INFO arrives. Sent back to back they used to arrive within a millisecond; they
//! must come one key per INFO, spaced as RTP presses (240 ms: a 140 ms press and a 100 ms gap).

use std::time::{Duration, Instant};

use crate::support::raw_sip::{Call, CallerVoice, Offer};
use crate::support::world::World;
use freya_edge::llm::fakes::FakeReply;

/// The RTP path's spacing of two presses, less one 20 ms tick of scheduling on this machine.
const MIN_GAP: Duration = Duration::from_millis(240 - 20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_digits_arrive_one_key_each_spaced_as_rtp_presses() {
    let w = World::builder()
        .workspace("Digits")
        .voice()
        .agent(serde_json::json!({"name": "Menu", "system_prompt": "Press 1 2 3."}))
        .start()
        .await;
    w.speech().set_default_transcript("Press one two three.");
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "send_dtmf",
        serde_json::json!({"digits": "123"}),
    ));
    w.llm().respond_with(|_| FakeReply::text("Done."));

    let (call, rtp) =
        Call::dialled(w.edge.sip_addr, &w.number, "raw-info-pacing-1", Offer::Pcmu).await;
    let (sip, edge_rtp) = (&call.sip, call.edge_rtp);
    let mut buf = vec![0u8; 65_536];

    // One spoken turn, then silence, while the INFOs are answered and timed.
    let mut voice = CallerVoice::saying("Press one two three, please.", Duration::from_secs(8));
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut rtp_buf = [0u8; 2048];
    let mut infos: Vec<(Instant, String)> = Vec::new();
    let started = Instant::now();
    while infos.len() < 3 && started.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            _ = ticker.tick() => voice.send_frame(&rtp, edge_rtp).await,
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
    w.ended_call().await;
    assert_eq!(w.edge.state.active_calls(), 0);
    w.stop().await;
}

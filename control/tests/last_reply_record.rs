//! The record of a reply the caller hangs up during, over real sockets: a caller written by
//! hand (SIP and RTP on this test's sockets) asks a question, hears about a second of the
//! agent's three-sentence answer and hangs up. The call's transcript must keep the agent's line
//! as far as it was heard, cut with a dash and marked interrupted — it used to have no agent
//! line at all.

use std::time::{Duration, Instant};

use crate::support::agent_lines;
use crate::support::raw_sip::{is_loud, loud_sentence_audio, Call, CallerVoice, Offer};
use crate::support::world::World;
use freya_edge::llm::fakes::FakeReply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_the_caller_hangs_up_during_is_recorded_as_far_as_heard() {
    let w = World::builder()
        .workspace("Last reply")
        .voice()
        .agent(serde_json::json!({"system_prompt": "Tell the opening hours."}))
        .start()
        .await;
    w.speech()
        .set_default_transcript("What are your opening hours?");
    // Each sentence: two seconds of tone at 24 kHz.
    w.speech().set_speech_audio(loud_sentence_audio());
    w.llm().respond_with(|_| {
        FakeReply::text(
            "We open at nine every weekday. We close at six in the evening. On Sundays we rest.",
        )
    });

    let (call, rtp) =
        Call::dialled(w.edge.sip_addr, &w.number, "raw-last-reply-1", Offer::Pcmu).await;
    let (sip, edge_rtp) = (&call.sip, call.edge_rtp);
    let mut buf = vec![0u8; 65_536];

    // One spoken turn, then silence, until about a second of the answer has been heard.
    let mut voice = CallerVoice::saying("What are your opening hours?", Duration::from_secs(10));
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut rtp_buf = [0u8; 2048];
    let mut loud_frames = 0;
    let started = Instant::now();
    while loud_frames < 50 && started.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            _ = ticker.tick() => voice.send_frame(&rtp, edge_rtp).await,
            received = rtp.recv_from(&mut rtp_buf) => {
                let (n, _) = received.expect("RTP recv");
                if is_loud(&rtp_buf[..n]) {
                    loud_frames += 1;
                }
            }
            _ = sip.recv_from(&mut buf) => {}
        }
    }
    assert!(loud_frames >= 50, "the caller heard a second of the answer");
    call.hang_up(2).await;

    let (call, events) = w.ended_call().await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let agent = agent_lines(&events);
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
    assert_eq!(w.edge.state.active_calls(), 0);
    w.stop().await;
}

//! The record of a reply the caller hangs up during, over real sockets: a caller written by
//! hand (SIP and RTP on this test's sockets) asks a question, hears about a second of the
//! agent's three-sentence answer and hangs up. The call's transcript must keep the agent's line
//! as far as it was heard, cut with a dash and marked interrupted — it used to have no agent
//! line at all.

use std::time::Duration;

use crate::support::agent_lines;
use crate::support::raw_sip::{
    loud_sentence_audio, talk_and_listen, Call, CallerVoice, Offer, Tick,
};
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

    // One spoken turn, then silence, until about a second of the answer has been heard.
    let mut voice = CallerVoice::saying("What are your opening hours?", Duration::from_secs(10));
    let loud_frames = talk_and_listen(&call, &rtp, Duration::from_secs(20), |loud| {
        if loud >= 50 {
            return Tick::Stop;
        }
        voice.next_packet().map_or(Tick::Quiet, Tick::Send)
    })
    .await;
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

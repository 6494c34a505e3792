//! What a call used, counted twice over real sockets: the characters sent to speech synthesis
//! (what a TTS provider bills) and the characters the caller heard. A caller written by hand
//! (SIP and RTP on this test's sockets) asks a question, hears about a second of the agent's
//! three-sentence answer, talks over it (a barge-in) and hangs up while still talking. Every
//! sentence of the answer went to synthesis; only the start of the first was played. The record
//! used to have one number, the characters heard.

use crate::support;
use crate::support::hourly_analytics;

use std::time::Duration;

use crate::support::raw_sip::{
    loud_sentence_audio, pcmu_packet, talk_and_listen, Call, Offer, Tick,
};
use crate::support::{
    agent_lines, demo_edge, demo_workspace, eventually, on_both_engines, Backend,
};
use freya_control::store::AnalyticsGroup;
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::speech::fakes::FakeOpenAiSpeech;
use freya_loadtest::audio::Utterance;
use freya_shared::model::AgentSpec;

/// The agent's answer, sentence by sentence, as the model streams it.
const ANSWER: [&str; 3] = [
    "We open at nine every weekday.",
    "We close at six in the evening.",
    "On Sundays we rest.",
];

async fn a_reply_cut_by_a_barge_in_counts_all_it_synthesized_and_only_what_was_heard(
    backend: Backend,
) {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_default_transcript("What are your opening hours?");
    // Each sentence: two seconds of tone at 24 kHz.
    speech.set_speech_audio(loud_sentence_audio());
    let llm = FakeLlmServer::openai().await.expect("fake llm");
    let agent = serde_json::json!({
        "name": "Desk",
        "system_prompt": "Tell the opening hours.",
        "stt": {"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "k"},
        "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"},
    });
    let agent: AgentSpec = serde_json::from_value(agent).expect("agent");
    llm.respond_with(|_| FakeReply::text(&ANSWER.join(" ")));
    let (db, control) = support::control_plane(backend).await;
    let (scope, _) = demo_workspace(&control, "Usage", &agent).await;
    let (edge, _dir) = demo_edge(&control, |_| {}).await;

    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("rtp");
    let call = Call::dial_offering(edge.sip_addr, &rtp, "demo", "raw-usage-1", Offer::Pcmu).await;

    // The question, then silence until about a second of the answer has been heard; then the
    // caller talks over it, and hangs up 1.2 s into that (a barge-in needs 200 ms of speech;
    // the turn is not over, so nothing more is asked of the model).
    let mut question = Utterance::speak("What are your opening hours?")
        .expect("espeak-ng speaks")
        .samples
        .to_vec();
    question.extend(std::iter::repeat_n(0i16, 8000 * 10));
    let mut over = Utterance::speak("Wait, wait, I have another question about the weekend")
        .expect("espeak-ng speaks")
        .samples
        .to_vec();
    over.extend(std::iter::repeat_n(0i16, 8000 * 5));
    let mut question = question.chunks_exact(160);
    let mut over = over.chunks_exact(160).take(60);
    let mut seq = 0u16;
    let loud_frames = talk_and_listen(&call, &rtp, Duration::from_secs(30), |loud| {
        let frame = if loud < 50 {
            question.next()
        } else {
            over.next()
        };
        let Some(frame) = frame else {
            return Tick::Stop;
        };
        let packet = pcmu_packet(seq, frame);
        seq = seq.wrapping_add(1);
        Tick::Send(packet)
    })
    .await;
    assert!(loud_frames >= 50, "the caller heard a second of the answer");
    call.hang_up(2).await;

    let (record, events) = support::the_ended_call(&control.store, &scope).await;
    assert!(
        events.iter().any(|e| e.kind == "call.barge_in"),
        "the caller talked over the answer: {events:#?}"
    );
    let agent = agent_lines(&events);
    let [line] = &agent[..] else {
        panic!("one agent line: {events:#?}");
    };
    let text = line["text"].as_str().unwrap_or_default();
    assert!(
        line["interrupted"] == true && text.starts_with("We open") && text.ends_with('—'),
        "the words heard, cut: {line}"
    );

    // Synthesized: every sentence of the answer, in full. Played: the words heard, without
    // the dash that marks the cut. The old count (`agent_characters`) keeps the dash.
    let synthesized: usize = ANSWER.iter().map(|s| s.chars().count()).sum();
    let played = text.chars().count() - 1;
    let usage = &record.usage;
    assert_eq!(
        usage.agent_characters_synthesized,
        Some(i64::try_from(synthesized).expect("small")),
        "{usage:?}"
    );
    assert_eq!(
        usage.agent_characters_played,
        i64::try_from(played).expect("small")
    );
    assert_eq!(usage.agent_characters, usage.agent_characters_played + 1);
    assert!(
        usage.agent_characters_synthesized > Some(usage.agent_characters_played),
        "{usage:?}"
    );
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    assert_eq!(
        ended.payload["agent_characters_synthesized"], synthesized,
        "{}",
        ended.payload
    );

    // Analytics sum both.
    let query = hourly_analytics(record.started_at_ms, 1, AnalyticsGroup::None);
    let buckets = eventually(Duration::from_secs(5), "analytics", || {
        let (store, scope, query) = (control.store.clone(), scope.clone(), query.clone());
        async move { store.call_analytics(&scope, &query).await.ok() }
    })
    .await;
    let totals = &buckets[0].usage;
    assert_eq!(
        (
            totals.agent_characters_synthesized,
            totals.agent_characters_played
        ),
        (
            usage.agent_characters_synthesized.unwrap_or_default(),
            usage.agent_characters_played
        )
    );
    assert_eq!(edge.state.active_calls(), 0);
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    multi_thread;
    a_reply_cut_by_a_barge_in_counts_all_it_synthesized_and_only_what_was_heard
);

//! The agent's side of a call: greeting, turns, barge-in, slow tools, failing providers.

use std::time::Duration;

use freya_shared::model::CallEventData;

use super::harness::{agent, says, Answers, Network, Sim};
use super::scripts::{calls_tool, first_token_timeout_record, provider_failures, spoken};
use crate::call::conversation::tests::done;
use crate::call::conversation::Lines;
use crate::call::pipeline::PipelineInput;
use crate::call::provider_request::{ProviderRequest, ProviderResult};
use crate::llm::{ChatMessage, FallbackNotice, FallbackReason, LlmError, LlmEvent};

fn is_transcribe(r: &ProviderRequest) -> bool {
    matches!(r, ProviderRequest::Transcribe { .. })
}

fn is_complete(r: &ProviderRequest) -> bool {
    matches!(r, ProviderRequest::Complete { .. })
}

/// The messages of the `n`th completion request.
fn history(sim: &Sim, n: usize) -> Vec<ChatMessage> {
    match sim.requests_where(is_complete).get(n) {
        Some((_, ProviderRequest::Complete { request, .. })) => request.messages.clone(),
        _ => panic!("no completion request #{n}: {:?}", sim.requests),
    }
}

#[test]
fn the_greeting_is_spoken_first_and_reaches_the_caller() {
    let mut sim = Sim::start(
        &agent(serde_json::json!({"first_message": "Hello, this is Freya."})),
        None,
    );
    sim.run_for(1500);
    let kinds: Vec<_> = sim
        .requests
        .iter()
        .map(|(at, r)| (sim.ms(*at), r))
        .collect();
    assert!(
        matches!(
            kinds.first(),
            Some((0, ProviderRequest::Open { pipeline: 1, .. }))
        ),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds.get(1), Some((0, ProviderRequest::Speak { text, .. })) if text == "Hello, this is Freya."),
        "the greeting is asked for at once, before any completion: {kinds:?}"
    );
    assert!(sim.requests_where(is_complete).is_empty());
    let first = sim
        .first_sound_after(sim.t0)
        .expect("the caller hears the greeting");
    // Synthesis takes 50 ms; the next 20 ms tick carries the first of it.
    assert!(
        sim.ms(first) >= 50 && sim.ms(first) <= 80,
        "first sound at {} ms",
        sim.ms(first)
    );
    let heard = sim.heard.iter().filter(|(_, loud)| *loud).count();
    assert_eq!(
        heard,
        600 / 20,
        "all 600 ms of the greeting, frame by frame"
    );
    assert!(sim
        .transcripts()
        .contains(&("agent".into(), "Hello, this is Freya.".into(), false)));
    assert!(sim.ended.is_none());
}

#[test]
fn the_end_of_a_turn_is_its_silence_then_a_transcript_a_completion_and_the_reply() {
    let mut sim = Sim::start(
        &agent(serde_json::json!({"turn": {"end_of_turn_silence_ms": 700}})),
        None,
    );
    sim.answers
        .turn("What are your hours?", 300, "We open at nine.");
    sim.pause(200).say(800);
    sim.run_for(4000);
    let last_voiced = *sim.caller.voiced_sent.last().expect("the caller spoke");
    let transcribe = sim.requests_where(is_transcribe);
    assert_eq!(transcribe.len(), 1, "one turn, one transcription");
    let at = transcribe[0].0;
    assert!(
        at >= last_voiced + Duration::from_millis(700),
        "transcribed {} ms after the last voiced frame: not before the silence",
        (at - last_voiced).as_millis()
    );
    assert!(
        at <= last_voiced + Duration::from_millis(760),
        "transcribed {} ms after the last voiced frame: at the silence, not later",
        (at - last_voiced).as_millis()
    );
    let complete = sim.requests_where(is_complete);
    assert_eq!(complete.len(), 1);
    assert_eq!(
        complete[0].0,
        at + Duration::from_millis(100),
        "asked once the transcript came"
    );
    assert_eq!(
        history(&sim, 0).last(),
        Some(&ChatMessage::user("What are your hours?"))
    );
    let reply = sim
        .first_sound_after(complete[0].0)
        .expect("the reply is heard");
    assert!(
        reply > complete[0].0 + Duration::from_millis(300),
        "no sound before the model wrote"
    );
    let lines = sim.transcripts();
    assert_eq!(
        lines,
        [
            ("caller".into(), "What are your hours?".into(), false),
            ("agent".into(), "We open at nine.".into(), false)
        ]
    );
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::TurnLatency(_))));
}

#[test]
fn barge_in_stops_the_agent_cancels_the_reply_and_keeps_only_what_was_heard() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    // 700 ms a sentence: the caller, talking from 1 s in, has heard the first sentence and
    // part of the second (what was heard is counted to when the caller's speech began).
    sim.answers.speech_ms = 700;
    sim.answers
        .transcripts
        .extend([Ok("Tell me everything.".into()), Ok("Stop.".into())]);
    sim.answers.completions.push_back(says(
        100,
        "First sentence here. Second one has six words. Third never heard. Fourth neither.",
    ));
    sim.answers.completions.push_back(says(100, "Sure."));
    sim.say(600);
    sim.run_for(1500);
    let started = sim.first_sound_after(sim.t0).expect("the reply plays");
    // The caller talks over the reply from 1 s into it.
    let talk_at = started + Duration::from_millis(1000);
    sim.run_for(sim.ms(talk_at) - sim.ms(sim.now));
    sim.say(600);
    sim.run_for(3000);
    let cancel = sim.requests_where(|r| matches!(r, ProviderRequest::CancelReply { .. }));
    assert_eq!(cancel.len(), 1, "the reply is cancelled once");
    let cut = cancel[0].0;
    // The barge-in needs 200 ms of speech; the jitter buffer and the VAD add a little.
    let after = cut.saturating_duration_since(talk_at).as_millis();
    assert!(
        (200..=400).contains(&after),
        "cut {after} ms after the caller began"
    );
    let last_of_reply = sim
        .heard
        .iter()
        .filter(|(at, loud)| *loud && *at <= cut + Duration::from_millis(1000))
        .map(|(at, _)| *at)
        .max()
        .expect("the reply was heard");
    assert!(
        last_of_reply <= cut,
        "no audio of the cut reply after the barge-in"
    );
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::BargeIn(_))));
    assert!(sim
        .transcripts()
        .iter()
        .any(|(role, _, interrupted)| role == "agent" && *interrupted));
    // The next completion sees only what the caller heard of the first reply.
    let messages = history(&sim, 1);
    let n = messages.len();
    let ChatMessage::Assistant { content, .. } = &messages[n - 2] else {
        panic!("the cut reply is in the history: {messages:?}");
    };
    assert!(
        content.starts_with("First sentence here. Second"),
        "{content}"
    );
    assert!(
        content.ends_with('—'),
        "cut where the caller stopped hearing it: {content}"
    );
    assert!(
        !content.contains("Third") && !content.contains("Fourth"),
        "{content}"
    );
    assert_eq!(messages[n - 1], ChatMessage::user("Stop."));
}

#[test]
fn a_slow_tool_is_covered_by_a_filler_and_its_result_goes_back_to_the_model() {
    let tools = serde_json::json!({"tools": [{"name": "book", "url": "http://127.0.0.1:9/book"}]});
    let mut sim = Sim::start(&agent(tools), None);
    sim.answers
        .transcripts
        .push_back(Ok("Book me for Monday.".into()));
    sim.answers.completions.push_back(calls_tool(
        200,
        Some("Let me check. "),
        "c1",
        "book",
        serde_json::json!({"day": "monday"}),
    ));
    sim.answers
        .completions
        .push_back(says(100, "You are booked."));
    sim.answers.tools.push((
        "book".into(),
        Duration::from_millis(3000),
        Ok(r#"{"booked":true}"#.into()),
    ));
    sim.say(600);
    sim.run_for(7000);
    let run = sim.requests_where(|r| matches!(r, ProviderRequest::RunTool { .. }));
    assert_eq!(run.len(), 1);
    let speak_times: Vec<_> = sim
        .requests_where(|r| matches!(r, ProviderRequest::Speak { .. }))
        .into_iter()
        .map(|(at, r)| match r {
            ProviderRequest::Speak { text, .. } => (at, text.clone()),
            _ => unreachable!(),
        })
        .collect();
    let filler = Lines::default().filler;
    let (filler_at, _) = speak_times
        .iter()
        .find(|(_, t)| *t == filler)
        .expect("a filler is spoken");
    assert!(
        *filler_at >= run[0].0 + Duration::from_millis(1500),
        "not before 1.5 s of waiting"
    );
    assert!(
        *filler_at < run[0].0 + Duration::from_millis(3000),
        "while the tool still runs"
    );
    assert_eq!(
        spoken(&sim),
        ["Let me check.", filler.as_str(), "You are booked."]
    );
    let messages = history(&sim, 1);
    assert_eq!(
        messages.last(),
        Some(&ChatMessage::tool_result("c1", r#"{"booked":true}"#))
    );
    assert!(sim.events.iter().any(|(_, e)| matches!(e, CallEventData::Tool(run) if run.name == "book" && run.duration_ms == 3000)));
}

#[test]
fn a_failing_model_is_apologised_for_and_the_call_goes_on() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers.transcripts.push_back(Ok("Hello?".into()));
    let failure = LlmError::Status {
        provider: "openai",
        status: 500,
        body: "boom".into(),
    };
    sim.answers
        .completions
        .push_back(vec![(Duration::from_millis(300), Err(failure))]);
    sim.say(600);
    sim.run_for(4000);
    assert_eq!(spoken(&sim), [Lines::default().apology]);
    assert!(
        sim.first_sound_after(sim.t0).is_some(),
        "the apology is heard"
    );
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::ProviderFailed(f) if f.stage == "llm")));
    assert!(sim.ended.is_none(), "the call goes on");
    assert!(sim.dialogs.is_empty());
}

/// A call whose model fell back with `reason` before saying "Nine to five.": what the call
/// recorded about it, as the JSON the control plane stores.
fn fell_back_turn(reason: FallbackReason) -> (Sim, Vec<serde_json::Value>) {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers
        .transcripts
        .push_back(Ok("When are you open?".into()));
    let notice = LlmEvent::FellBack(FallbackNotice {
        primary: "openai/gpt-4o-mini".into(),
        fallback: "anthropic/claude-haiku-4-5".into(),
        reason,
    });
    let mut completion = vec![(Duration::from_millis(300), Ok(notice))];
    completion.extend(says(100, "Nine to five."));
    sim.answers.completions.push_back(completion);
    sim.say(600);
    sim.run_for(4000);
    let recorded = provider_failures(&sim);
    (sim, recorded)
}

#[test]
fn a_primary_model_that_timed_out_is_on_the_record_and_the_fallbacks_reply_heard() {
    let (sim, recorded) = fell_back_turn(FallbackReason::FirstTokenTimeout {
        after: Duration::from_millis(800),
    });
    assert_eq!(spoken(&sim), ["Nine to five."]);
    assert!(
        sim.first_sound_after(sim.t0).is_some(),
        "the reply is heard"
    );
    assert_eq!(recorded, [first_token_timeout_record()]);
    assert!(sim.ended.is_none(), "the call goes on");
}

#[test]
fn a_primary_model_that_failed_is_on_the_record_with_its_error() {
    let error = LlmError::Status {
        provider: "openai",
        status: 503,
        body: "overloaded".into(),
    };
    let (sim, recorded) = fell_back_turn(FallbackReason::failed(&error));
    assert_eq!(spoken(&sim), ["Nine to five."]);
    assert_eq!(
        recorded,
        [serde_json::json!({
            "stage": "llm",
            "provider": "openai/gpt-4o-mini",
            "error": "error: the openai model answered HTTP 503: overloaded",
            "fallback": "llm_fallback",
            "fallback_provider": "anthropic/claude-haiku-4-5",
        })]
    );
}

#[test]
fn a_failing_voice_is_recorded_and_its_fallback_audio_still_heard() {
    let answers = Answers {
        tts_error: Some("elevenlabs: 503".into()),
        ..Answers::default()
    };
    let mut sim = Sim::start_with(
        &agent(serde_json::json!({"first_message": "Hello there."})),
        None,
        answers,
    );
    sim.run_for(1500);
    assert!(
        sim.first_sound_after(sim.t0).is_some(),
        "the offline voice spoke the greeting"
    );
    assert!(sim.events.iter().any(
        |(_, e)| matches!(e, CallEventData::ProviderFailed(f) if f.stage == "tts" && f.error.contains("503"))
    ));
    assert!(sim.ended.is_none());
}

#[test]
fn a_turn_over_a_lossy_jittery_reordering_network_is_still_one_turn() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.network(Network {
        loss: 0.05,
        jitter: Duration::from_millis(30),
        reorder: 0.05,
    });
    sim.answers.turn("Is anyone there?", 200, "Yes, I am here.");
    sim.pause(300).say(1200);
    sim.run_for(5000);
    assert_eq!(
        sim.requests_where(is_transcribe).len(),
        1,
        "one turn, not split by the losses"
    );
    let complete = sim.requests_where(is_complete);
    assert_eq!(complete.len(), 1);
    assert!(
        sim.first_sound_after(complete[0].0).is_some(),
        "the reply is heard"
    );
    let _ = done();
}

#[test]
fn late_audio_of_a_cancelled_reply_or_of_another_pipeline_is_never_played() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers.speech_ms = 3000;
    sim.answers
        .turn("Tell me a story.", 100, "Once upon a time.");
    sim.say(600);
    sim.run_for(1500);
    let started = sim.first_sound_after(sim.t0).expect("the reply plays");
    sim.run_for(sim.ms(started + Duration::from_millis(500)) - sim.ms(sim.now));
    sim.say(600).pause(100);
    sim.run_for(500);
    let Some((cut, ProviderRequest::CancelReply { pipeline, reply })) = sim
        .requests
        .iter()
        .find(|(_, r)| matches!(r, ProviderRequest::CancelReply { .. }))
        .map(|(at, r)| (*at, r))
    else {
        panic!("the caller barged in: {:?}", sim.requests);
    };
    let (pipeline, reply) = (*pipeline, *reply);
    let sentence = sim
        .requests
        .iter()
        .find_map(|(_, r)| match r {
            ProviderRequest::Speak { sentence, .. } => Some(*sentence),
            _ => None,
        })
        .expect("a sentence was spoken");
    let audio = |pipeline, reply| ProviderResult::Voice {
        pipeline,
        input: PipelineInput::Audio {
            reply,
            sentence,
            samples: vec![8000; 4000],
        },
    };
    // The cancelled reply's synthesis was already on its way; a stranger pipeline answers too.
    sim.deliver(audio(pipeline, reply));
    sim.deliver(audio(pipeline + 7, reply));
    sim.run_for(300);
    let loud_after: Vec<_> = sim
        .heard
        .iter()
        .filter(|(at, loud)| *loud && *at > cut)
        .map(|(at, _)| sim.ms(*at))
        .collect();
    assert!(
        loud_after.is_empty(),
        "stale audio reached the caller at {loud_after:?} ms"
    );
}

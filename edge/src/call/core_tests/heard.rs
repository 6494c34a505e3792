//! What the caller heard and what the record says they heard: a finished sentence spoken while
//! the model pauses, the words before a tool call dated when they were played, the last reply
//! kept when the call ends during it, a failed transfer answered by the model.

use std::time::Duration;

use freya_shared::model::call_payloads::Transcript;
use freya_shared::model::{CallEventData, EndReason};

use super::harness::{agent, says, Sim};
use super::scripts::calls_tool;
use crate::call::conversation::tests::{done, token};
use crate::call::provider_request::ProviderRequest;
use crate::call::task::CallSignal;

/// The agent's transcript lines, in order.
fn agent_lines(sim: &Sim) -> Vec<Transcript> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::Transcript(t) if t.role == "agent" => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// When (ms since the call began) each run of sound reached the caller: from its first loud
/// packet to its last.
fn sound_runs(sim: &Sim) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut last_loud = false;
    for (at, loud) in &sim.heard {
        let ms = sim.ms(*at);
        match (loud, last_loud, runs.last_mut()) {
            (true, true, Some(run)) => run.1 = ms,
            (true, _, _) => runs.push((ms, ms)),
            _ => {}
        }
        last_loud = *loud;
    }
    runs
}

fn speaks(sim: &Sim) -> Vec<(u64, String)> {
    sim.requests
        .iter()
        .filter_map(|(at, r)| match r {
            ProviderRequest::Speak { text, .. } => Some((sim.ms(*at), text.clone())),
            _ => None,
        })
        .collect()
}

/// A call of an agent with `spec` after the caller spoke once, whose model's reply is a first
/// sentence 300 ms after it was asked, then a pause of 1 s, then a second sentence.
fn pausing_model(spec: serde_json::Value) -> Sim {
    let mut sim = Sim::start(&agent(spec), None);
    sim.answers.transcripts.push_back(Ok("Hi.".into()));
    sim.answers.completions.push_back(vec![
        (
            Duration::from_millis(300),
            Ok(token("First sentence is here. ")),
        ),
        (Duration::from_millis(1000), Ok(token("Second one."))),
        (Duration::from_millis(10), Ok(done())),
    ]);
    sim.say(600);
    sim.run_for(5000);
    sim
}

#[test]
fn a_finished_sentence_is_spoken_while_the_model_pauses_before_the_next() {
    let sim = pausing_model(serde_json::json!({}));
    let complete = sim
        .requests_where(|r| matches!(r, ProviderRequest::Complete { .. }))
        .first()
        .map(|(at, _)| sim.ms(*at))
        .expect("the model is asked");
    let token_at = complete + 300;
    let said = speaks(&sim);
    let [(first_at, first), (second_at, second)] = &said[..] else {
        panic!("two sentences: {said:?}");
    };
    assert_eq!(first, "First sentence is here.");
    assert_eq!(second, "Second one.");
    assert!(
        *first_at >= token_at + 150 && *first_at <= token_at + 170,
        "the first sentence went to speech {} ms after its last token, not at the next one",
        first_at - token_at
    );
    assert!(*second_at >= token_at + 1000);
    let heard = sim
        .first_sound_after(sim.t0 + Duration::from_millis(token_at))
        .expect("the reply is heard");
    assert!(
        sim.ms(heard) < token_at + 1000,
        "the caller hears the first sentence during the model's pause ({} ms after its token)",
        sim.ms(heard) - token_at
    );
}

#[test]
fn an_abbreviation_before_the_pause_still_waits_for_the_next_word() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers.transcripts.push_back(Ok("Who?".into()));
    sim.answers.completions.push_back(vec![
        (Duration::from_millis(300), Ok(token("You will see Dr. "))),
        (Duration::from_millis(1000), Ok(token("Smith today."))),
        (Duration::from_millis(10), Ok(done())),
    ]);
    sim.say(600);
    sim.run_for(5000);
    let said: Vec<String> = speaks(&sim).into_iter().map(|(_, t)| t).collect();
    assert_eq!(said, ["You will see Dr. Smith today."]);
}

#[test]
fn words_before_a_slow_tool_are_dated_when_the_caller_heard_them() {
    let tools =
        serde_json::json!({"tools": [{"name": "lookup", "url": "http://127.0.0.1:9/lookup"}]});
    let mut sim = Sim::start(&agent(tools), None);
    sim.answers.transcripts.push_back(Ok("Is it open?".into()));
    sim.answers.completions.push_back(calls_tool(
        200,
        Some("Let me check."),
        "c1",
        "lookup",
        serde_json::json!({}),
    ));
    sim.answers.completions.push_back(says(100, "It is open."));
    // Slower than the filler's wait: "Let me check.", the filler, then the answer.
    sim.answers.tools.push((
        "lookup".into(),
        Duration::from_millis(2500),
        Ok(r#"{"open":true}"#.into()),
    ));
    sim.say(600);
    sim.run_for(8000);
    let lines = agent_lines(&sim);
    let texts: Vec<&str> = lines.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["Let me check.", "It is open."]);
    let runs = sound_runs(&sim);
    assert_eq!(runs.len(), 3, "check, filler, answer: {runs:?}");
    let check = &lines[0];
    let (heard_from, heard_to) = runs[0];
    assert!(
        check.start_ms.abs_diff(heard_from) <= 20 && check.end_ms.abs_diff(heard_to) <= 20,
        "\"Let me check.\" recorded {}..{} ms, heard {heard_from}..{heard_to} ms",
        check.start_ms,
        check.end_ms
    );
    assert!(check.end_ms - check.start_ms >= 560, "600 ms of speech");
    let answer = &lines[1];
    let (answer_from, answer_to) = runs[2];
    assert!(answer.start_ms >= check.end_ms, "the lines do not overlap");
    assert!(
        answer.start_ms.abs_diff(answer_from) <= 20 && answer.end_ms.abs_diff(answer_to) <= 20,
        "the answer recorded {}..{} ms, heard {answer_from}..{answer_to} ms",
        answer.start_ms,
        answer.end_ms
    );
}

/// A call whose agent answers the caller with three sentences (1.8 s of speech).
fn answering() -> Sim {
    let mut sim = Sim::start(&agent(serde_json::json!({"max_call_seconds": 3})), None);
    sim.answers.turn(
        "Tell me.",
        100,
        "The first part is long. The second part is longer. The third part ends it.",
    );
    sim.say(600);
    sim
}

#[test]
fn the_reply_the_caller_hangs_up_during_is_recorded_as_far_as_heard() {
    let mut sim = answering();
    sim.run_for(1600);
    let (first, _) = *sound_runs(&sim).first().expect("the reply has started");
    // The caller hears the first sentence and a half of the second, then hangs up.
    let hang_up_at = first + 900;
    sim.run_for(hang_up_at - sim.ms(sim.now));
    sim.signal(CallSignal::Hangup {
        reason: EndReason::CallerHangup,
        by_us: false,
    });
    assert!(sim.ended.is_some());
    let lines = agent_lines(&sim);
    let [line] = &lines[..] else {
        panic!("one agent line: {lines:?}");
    };
    assert!(line.interrupted, "cut off by the hang-up");
    assert!(
        line.text.starts_with("The first part is long. The second") && line.text.ends_with('—'),
        "what was heard, cut: {:?}",
        line.text
    );
    assert!(!line.text.contains("third"), "{:?}", line.text);
    assert!(line.start_ms.abs_diff(first) <= 20);
    assert!(line.end_ms.abs_diff(hang_up_at) <= 20);
}

#[test]
fn the_reply_the_maximum_duration_cuts_is_recorded_as_far_as_heard() {
    let mut sim = answering();
    sim.run_for(6000);
    let (_, ending) = sim.ended.as_ref().expect("the call reaches its maximum");
    assert_eq!(ending.record.reason, Some(EndReason::MaxDuration));
    let lines = agent_lines(&sim);
    let [line] = &lines[..] else {
        panic!("one agent line: {lines:?}");
    };
    assert!(line.interrupted);
    assert!(
        line.text.starts_with("The first part is long."),
        "{:?}",
        line.text
    );
}

/// A caller who pauses 700 ms inside a sentence (longer than the 500 ms end of turn): two
/// turns. `first` and `second` are what the recogniser makes of each part.
fn pausing_caller(first: &str, second: &str, stt_ms: u64) -> Sim {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers.stt_delay = Duration::from_millis(stt_ms);
    sim.answers.transcripts.push_back(Ok(first.into()));
    sim.answers.transcripts.push_back(Ok(second.into()));
    for _ in 0..2 {
        sim.answers
            .completions
            .push_back(says(300, "Yes, we deliver on Sundays."));
    }
    sim.say(800).pause(700).say(800);
    sim.run_for(8000);
    sim
}

fn asked_with(sim: &Sim) -> Vec<String> {
    sim.requests
        .iter()
        .filter_map(|(_, r)| match r {
            ProviderRequest::Complete { request, .. } => match request.messages.last() {
                Some(crate::llm::ChatMessage::User { content }) => Some(content.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The model was asked the whole question, and the caller heard its answer.
fn assert_the_whole_question_is_answered(sim: &Sim) {
    assert_eq!(
        asked_with(sim).last().map(String::as_str),
        Some("Do you deliver on Sundays?")
    );
    assert!(
        agent_lines(sim)
            .iter()
            .any(|t| t.text == "Yes, we deliver on Sundays."),
        "the caller gets an answer: {:?}",
        agent_lines(sim)
    );
}

#[test]
fn a_pause_inside_a_sentence_still_gets_the_whole_sentence_answered() {
    // A fast recogniser: the first part's transcript comes before the caller resumes.
    let sim = pausing_caller("Do you deliver", "on Sundays?", 100);
    assert_the_whole_question_is_answered(&sim);
}

#[test]
fn a_slow_first_transcript_is_not_dropped_when_the_next_turn_ends() {
    // The first part's transcript arrives after the second turn has ended.
    let sim = pausing_caller("Do you deliver", "on Sundays?", 1600);
    assert_the_whole_question_is_answered(&sim);
}

#[test]
fn an_empty_transcript_of_the_rest_does_not_lose_the_answer_to_the_first_part() {
    // The resumed part is heard as nothing (a breath, a word too short to recognise).
    let sim = pausing_caller("Do you deliver on Sundays?", "", 100);
    assert_the_whole_question_is_answered(&sim);
}

/// An agent that says a line and presses `digits` in the same reply, then says another.
fn pressing(sim: &mut Sim, digits: &str) {
    sim.answers.transcripts.push_back(Ok("Press 1 2 3.".into()));
    sim.answers.completions.push_back(calls_tool(
        100,
        Some("Pressing them now, one moment."),
        "d1",
        "send_dtmf",
        serde_json::json!({"digits": digits}),
    ));
    sim.answers
        .completions
        .push_back(says(50, "Done, I pressed them."));
    sim.say(600);
}

#[test]
fn info_digits_leave_one_at_a_time_at_the_rtp_spacing_and_speech_waits_for_them() {
    let no_events = crate::sip::sdp::NegotiatedAudio {
        telephone_event: None,
        ..crate::call::media::tests::audio()
    };
    let agent = agent(serde_json::json!({}));
    let mut sim = Sim::start_on(&agent, None, super::harness::Answers::default(), no_events);
    pressing(&mut sim, "123");
    sim.run_for(6000);
    let keys: Vec<(u64, String)> = sim
        .dialogs
        .iter()
        .filter_map(|(at, d)| match d {
            crate::call::core::CallRequest::SendDtmf { digits } => {
                Some((sim.ms(*at), digits.clone()))
            }
            _ => None,
        })
        .collect();
    let sent: Vec<&str> = keys.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(sent, ["1", "2", "3"], "one INFO per key");
    for pair in keys.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= crate::call::info_digits::SPACING.as_millis() as u64,
            "keys spaced as RTP presses: {keys:?}"
        );
    }
    let (first, last) = (keys[0].0, keys[2].0 + 140);
    let spoken_during: Vec<u64> = sim
        .heard
        .iter()
        .filter(|(at, loud)| *loud && (first..last).contains(&sim.ms(*at)))
        .map(|(at, _)| sim.ms(*at))
        .collect();
    assert!(
        spoken_during.is_empty(),
        "no speech while the keys go: {spoken_during:?}"
    );
    // The line said with the keys waits for them, then is heard whole.
    assert!(agent_lines(&sim)
        .iter()
        .any(|t| t.text == "Pressing them now, one moment."));
    let runs = sound_runs(&sim);
    assert!(
        runs.iter().any(|(from, _)| *from >= last),
        "speech after: {runs:?}"
    );
}

#[test]
fn rtp_digits_carry_no_speech_between_the_first_and_the_last() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    pressing(&mut sim, "123");
    sim.run_for(6000);
    // Telephone-events count as silent: nothing loud from the first key to the last one's end.
    let dtmf_at = sim
        .events
        .iter()
        .find_map(|(at, e)| matches!(e, CallEventData::DtmfSent(_)).then_some(sim.ms(*at)))
        .expect("the keys were sent");
    // Three presses: 7 event packets each, 5 frames apart: 3 * 240 - 100 ms in all.
    let end = dtmf_at + 3 * 240 - 100;
    let loud: Vec<u64> = sim
        .heard
        .iter()
        .filter(|(at, loud)| *loud && (dtmf_at + 20..end).contains(&sim.ms(*at)))
        .map(|(at, _)| sim.ms(*at))
        .collect();
    assert!(loud.is_empty(), "no speech between the keys: {loud:?}");
    let runs = sound_runs(&sim);
    assert!(
        runs.iter().any(|(from, _)| *from >= end),
        "speech after: {runs:?}"
    );
}

/// The caller's wait from the first sentence's last token to its first audio, with the model
/// pausing 1 s after that sentence, at `flush_ms` (0: the sentence waits for the next token).
fn first_sentence_wait(flush_ms: u32) -> u64 {
    let sim = pausing_model(serde_json::json!({"turn": {"sentence_flush_ms": flush_ms}}));
    let (asked, _) = sim.requests_where(|r| matches!(r, ProviderRequest::Complete { .. }))[0];
    let token_at = asked + Duration::from_millis(300);
    let heard = sim.first_sound_after(token_at).expect("the reply is heard");
    (heard - token_at).as_millis() as u64
}

/// The figure in loadtest/BENCHMARKS.md (simulated time: TTS answers in 50 ms).
#[test]
#[ignore = "prints a figure; run with --run-ignored only --no-capture"]
fn figure_first_sentence_wait_with_and_without_the_idle_flush() {
    let before = first_sentence_wait(0);
    let after = first_sentence_wait(150);
    println!("first sentence's last token to its first audio: without flush {before} ms, with 150 ms flush {after} ms");
    assert!(after < before);
}

//! A recorded workflow call at a `sensitive` gather: the caller talks from the first moment
//! into the gather, and the recording keeps their channel while the greeting plays but none of it
//! while the line asking for the secret plays (callers answer over it) nor while the gather
//! listens; the answer reaches the flow, and the line that reads it back is heard but kept in
//! the transcript as `[redacted]`. The same flow without `sensitive` keeps the caller
//! throughout, so the test can tell.

use std::time::Instant;

use freya_shared::model::CallEventData;
use freya_shared::snapshot::WorkflowConfig;

use super::harness::{agent, Sim};
use super::scripts::speak_text;
use crate::call::responder::PinnedWorkflow;

const WELCOME: &str = "Welcome to the card line.";
const ASK: &str = "Your PIN, please.";
const PIN: &str = "four four two one";

/// A recorded flow: the greeting, the line asking for the PIN, the gather, a goodbye that
/// repeats the answer.
fn pin_line(sensitive: bool) -> PinnedWorkflow {
    let definition = serde_json::json!({"name": "PIN", "start": "hello", "record": true,
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
              "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
    "nodes": [
     {"id": "hello", "type": "say", "text": WELCOME, "next": "ask"},
     {"id": "ask", "type": "say", "text": ASK, "next": "pin"},
     {"id": "pin", "type": "gather", "input": ["dtmf", "speech"], "timeout_ms": 10000,
      "sensitive": sensitive, "save_as": "pin", "next": "bye"},
     {"id": "bye", "type": "end", "text": "Thanks, {{pin}} it is."}
    ]});
    PinnedWorkflow {
        config: WorkflowConfig {
            id: "wf-pin".into(),
            workspace_id: "ws-1".into(),
            version: 1,
            definition: serde_json::from_value(definition).expect("workflow"),
        },
        agents: Vec::new(),
    }
}

/// The call through the PIN line, the caller talking for 3 s from the start (over both lines
/// and into the gather), then silent; when each line was asked for.
fn pin_call(sensitive: bool) -> (Sim, Instant, Instant) {
    let mut sim = Sim::start(
        &agent(serde_json::json!({"record": true})),
        Some(&pin_line(sensitive)),
    );
    sim.answers.transcripts.push_back(Ok(PIN.into()));
    sim.say(3000).pause(1000);
    sim.run_for(8000);
    let asked = |line: &str| {
        sim.requests
            .iter()
            .find(|(_, r)| speak_text(r).is_some_and(|t| t.starts_with(line)))
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("`{line}` was said"))
    };
    let (ask, goodbye) = (asked(ASK), asked("Thanks"));
    (sim, ask, goodbye)
}

/// Loud ticks of the caller's channel in the recording after `from` and before `to` (the tick
/// at which a line is asked for was recorded before the flow moved on).
fn loud_between(sim: &Sim, from: Instant, to: Instant) -> usize {
    sim.recorded
        .iter()
        .filter(|(at, loud)| *loud && *at > from && *at < to)
        .count()
}

fn agent_lines(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::Transcript(t) if t.role == "agent" => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_sensitive_gathers_prompt_and_listening_are_silence_in_the_recording_the_greeting_is_not() {
    let (sim, ask, goodbye) = pin_call(true);
    assert!(
        sim.ended.is_some(),
        "the flow heard the PIN and said goodbye"
    );
    let greeting = loud_between(&sim, sim.t0, ask);
    assert!(
        greeting > 10,
        "the caller over the greeting: {greeting} loud ticks"
    );
    assert_eq!(
        loud_between(&sim, ask, goodbye),
        0,
        "nothing of the caller over the prompt nor while the gather listens"
    );
    assert!(
        sim.ms(goodbye) > 3000,
        "the gather listened past the caller's talk"
    );
    assert_eq!(
        agent_lines(&sim),
        [WELCOME, ASK, "Thanks, [redacted] it is."],
        "the read-back is heard, not kept"
    );
    let said: Vec<_> = sim
        .requests
        .iter()
        .filter_map(|(_, r)| speak_text(r))
        .collect();
    assert!(said.contains(&format!("Thanks, {PIN} it is.")), "{said:?}");
}

#[test]
fn without_sensitive_the_caller_over_the_prompt_is_recorded() {
    let (sim, ask, goodbye) = pin_call(false);
    let prompt_and_gather = loud_between(&sim, ask, goodbye);
    assert!(
        prompt_and_gather > 40,
        "the caller over the prompt and into the gather: {prompt_and_gather} loud ticks"
    );
    assert!(agent_lines(&sim).contains(&format!("Thanks, {PIN} it is.")));
}

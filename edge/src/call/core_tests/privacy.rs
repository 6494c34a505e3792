//! A recorded workflow call on its way into a `sensitive` gather: the caller talks from the
//! first moment into the gather, and the recording keeps none of their channel while the flow
//! says the lines that lead to the gather without listening (a question, a second line, a
//! `set` between them: callers answer over them) nor while the gather listens; the answer
//! reaches the flow, and the line that reads it back is heard but kept in the transcript as
//! `[redacted]`. A conversation (`agent`) between the greeting and the question ends the way
//! in, so the caller over the greeting is kept; the same flow without `sensitive` keeps the
//! caller throughout, so each test can tell.

use std::time::Instant;

use freya_shared::model::CallEventData;
use freya_shared::snapshot::WorkflowConfig;

use super::harness::{agent, Sim};
use super::scripts::speak_text;
use crate::call::provider_request::ProviderRequest;
use crate::call::responder::PinnedWorkflow;

const WELCOME: &str = "Welcome to the card line.";
const ASK: &str = "Your PIN, please.";
const PIN: &str = "four four two one";

/// A recorded flow: the greeting, then `between` (nodes each going to the next, the last to the
/// gather), the gather, a goodbye that repeats the answer. The agent `agent-2` may be run.
fn pin_line(between: &[serde_json::Value], sensitive: bool) -> PinnedWorkflow {
    let mut nodes = vec![
        serde_json::json!({"id": "hello", "type": "say", "text": WELCOME,
        "next": "n0"}),
    ];
    for (i, node) in between.iter().enumerate() {
        let mut node = node.clone();
        node["id"] = format!("n{i}").into();
        node["next"] = if i + 1 == between.len() {
            "pin".to_owned()
        } else {
            format!("n{}", i + 1)
        }
        .into();
        nodes.push(node);
    }
    nodes.push(
        serde_json::json!({"id": "pin", "type": "gather", "input": ["dtmf", "speech"],
        "timeout_ms": 10000, "sensitive": sensitive, "save_as": "pin", "next": "bye"}),
    );
    nodes.push(serde_json::json!({"id": "bye", "type": "end", "text": "Thanks, {{pin}} it is."}));
    let definition = serde_json::json!({"name": "PIN", "start": "hello", "record": true,
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
              "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
    "nodes": nodes});
    let mut second = agent(serde_json::json!({}));
    second.id = "agent-2".into();
    PinnedWorkflow {
        config: WorkflowConfig {
            id: "wf-pin".into(),
            workspace_id: "ws-1".into(),
            version: 1,
            definition: serde_json::from_value(definition).expect("workflow"),
        },
        agents: vec![second],
    }
}

/// The line asking for the PIN.
fn ask() -> serde_json::Value {
    serde_json::json!({"type": "say", "text": ASK})
}

/// The call through `flow`, the caller talking for 3 s from the start (over the lines and into
/// the gather), then silent.
fn pin_call(flow: &PinnedWorkflow) -> Sim {
    let mut sim = Sim::start(&agent(serde_json::json!({"record": true})), Some(flow));
    sim.answers.transcripts.push_back(Ok(PIN.into()));
    sim.say(3000).pause(1000);
    sim.run_for(8000);
    sim
}

/// When the line starting with `line` was asked for.
fn asked(sim: &Sim, line: &str) -> Instant {
    sim.requests
        .iter()
        .find(|(_, r)| speak_text(r).is_some_and(|t| t.starts_with(line)))
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("`{line}` was said"))
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

/// Asserts that the PIN call went through and kept nothing of the caller from the start to
/// the goodbye, and that the read-back is heard but not kept.
fn assert_silent_from_the_start_to_the_goodbye(sim: &Sim) {
    assert!(
        sim.ended.is_some(),
        "the flow heard the PIN and said goodbye"
    );
    let goodbye = asked(sim, "Thanks");
    assert!(
        sim.ms(goodbye) > 3000,
        "the gather listened past the caller's talk"
    );
    assert!(
        sim.recorded.iter().filter(|(at, _)| *at < goodbye).count() > 100,
        "the recording ran"
    );
    assert_eq!(
        loud_between(sim, sim.t0, goodbye),
        0,
        "nothing of the caller over the lines on the way in nor while the gather listens"
    );
    assert_eq!(
        agent_lines(sim).last().map(String::as_str),
        Some("Thanks, [redacted] it is."),
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
fn two_lines_before_a_sensitive_gather_are_both_silence_in_the_recording() {
    let sim = pin_call(&pin_line(&[ask()], true));
    assert_eq!(agent_lines(&sim)[..2], [WELCOME, ASK]);
    assert_silent_from_the_start_to_the_goodbye(&sim);
}

#[test]
fn a_question_with_a_set_node_before_the_gather_is_silence_in_the_recording() {
    let remember = serde_json::json!({"type": "set", "assign": {"asked": "true"}});
    let sim = pin_call(&pin_line(&[ask(), remember], true));
    assert_silent_from_the_start_to_the_goodbye(&sim);
}

#[test]
fn a_conversation_before_the_question_keeps_the_caller_over_the_greeting() {
    let talk = serde_json::json!({"type": "agent", "agent_id": "agent-2", "max_turns": 1});
    let sim = pin_call(&pin_line(&[talk, ask()], true));
    // The agent's own pipeline opens once the greeting has played.
    let conversation = sim
        .requests
        .iter()
        .filter(|(_, r)| matches!(r, ProviderRequest::Open { .. }))
        .map(|(at, _)| *at)
        .nth(1)
        .expect("the agent's pipeline opens");
    assert!(sim.ms(conversation) >= 600, "after the greeting");
    let greeting = loud_between(&sim, sim.t0, conversation);
    assert!(
        greeting > 10,
        "the caller over the greeting: {greeting} loud ticks"
    );
}

#[test]
fn without_sensitive_the_caller_over_the_prompt_is_recorded() {
    let sim = pin_call(&pin_line(&[ask()], false));
    let (ask, goodbye) = (asked(&sim, ASK), asked(&sim, "Thanks"));
    let prompt_and_gather = loud_between(&sim, ask, goodbye);
    assert!(
        prompt_and_gather > 40,
        "the caller over the prompt and into the gather: {prompt_and_gather} loud ticks"
    );
    assert!(agent_lines(&sim).contains(&format!("Thanks, {PIN} it is.")));
}

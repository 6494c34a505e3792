//! The way into a `sensitive` gather: callers answer as soon as the question is asked, and a
//! flow may say more or compute (`set`, `condition`, `function`) between the question and the
//! gather, so the flow is sensitive on every node from which it reaches the gather without
//! listening to the caller; a node that listens (an `agent`, another `gather`) ends that way.

use std::time::Duration;

use serde_json::{json, Value};

use super::test_flows::*;
use super::{AgentExit, WorkflowEvent};

/// A flow whose nodes are `hello` (a say), then `between`, then the sensitive gather `pin`;
/// each node of `between` goes to the next, the last to `pin`.
fn flow_into_pin(between: Vec<Value>) -> Value {
    let mut nodes = vec![json!({"id": "hello", "type": "say", "text": "Welcome.", "next": "n0"})];
    let count = between.len();
    for (i, mut node) in between.into_iter().enumerate() {
        node["id"] = json!(format!("n{i}"));
        let next = if i + 1 == count {
            "pin".to_owned()
        } else {
            format!("n{}", i + 1)
        };
        match node["type"].as_str() {
            Some("condition") => node["else"] = json!(next),
            _ => node["next"] = json!(next),
        }
        nodes.push(node);
    }
    nodes.push(
        json!({"id": "pin", "type": "gather", "input": ["dtmf", "speech"],
        "save_as": "pin", "sensitive": true, "next": "bye"}),
    );
    nodes.push(json!({"id": "bye", "type": "end", "text": "Thanks."}));
    json!({"name": "PIN", "start": "hello", "nodes": nodes})
}

fn say(text: &str) -> Value {
    json!({"type": "say", "text": text})
}

#[test]
fn a_question_followed_by_set_and_condition_is_sensitive_from_its_first_word() {
    let mut call = Call::start(flow_into_pin(vec![
        say("Your PIN, please."),
        json!({"type": "set", "assign": {"asked": "true"}}),
        json!({"type": "condition", "branches": [{"when": "asked", "next": "pin"}]}),
    ]));
    assert!(
        call.executor.is_sensitive_now(),
        "the greeting leads to the gather too"
    );
    call.play(spoken(800));
    assert_eq!(call.executor.current_node(), Some("n0"));
    assert!(call.executor.is_sensitive_now(), "saying the question");
    call.play(spoken(1500));
    assert_eq!(call.executor.current_node(), Some("pin"));
    assert!(call.executor.is_sensitive_now(), "listening");
    call.play(digits(3000, "4421#"));
    assert!(!call.executor.is_sensitive_now(), "saying goodbye");
}

#[test]
fn two_lines_before_the_gather_are_both_sensitive() {
    let mut call = Call::start(flow_into_pin(vec![
        say("We will need your PIN."),
        say("Please say or key it now."),
    ]));
    call.play(spoken(800));
    assert_eq!(call.executor.current_node(), Some("n0"));
    assert!(call.executor.is_sensitive_now(), "the first line");
    call.play(spoken(1600));
    assert_eq!(call.executor.current_node(), Some("n1"));
    assert!(call.executor.is_sensitive_now(), "the second line");
}

#[test]
fn waiting_for_a_function_between_the_question_and_the_gather_is_sensitive() {
    let mut call = Call::start(flow_into_pin(vec![
        say("Your PIN, please."),
        json!({"type": "function", "url": "https://crm.example/prepare", "timeout_ms": 2000}),
    ]));
    call.play(spoken(800));
    call.play(spoken(1600));
    assert_eq!(call.executor.current_node(), Some("n1"));
    assert!(
        call.executor.is_sensitive_now(),
        "the caller answers meanwhile"
    );
    call.play(Input::Event(
        1900,
        WorkflowEvent::FunctionResult {
            status: 200,
            body: json!({}),
            elapsed: Duration::from_millis(300),
        },
    ));
    assert_eq!(call.executor.current_node(), Some("pin"));
    assert!(call.executor.is_sensitive_now());
}

#[test]
fn an_agent_between_a_line_and_the_gather_ends_the_way_in() {
    let mut call = Call::start(flow_into_pin(vec![
        json!({"type": "agent", "agent_id": SALES_AGENT, "max_turns": 1}),
        say("Your PIN, please."),
    ]));
    assert!(
        !call.executor.is_sensitive_now(),
        "the greeting leads to a conversation, not to the gather"
    );
    call.play(spoken(800));
    assert_eq!(call.executor.current_node(), Some("n0"));
    assert!(!call.executor.is_sensitive_now(), "the conversation");
    call.play(Input::Event(
        5000,
        WorkflowEvent::AgentExited(AgentExit::MaxTurns),
    ));
    assert_eq!(call.executor.current_node(), Some("n1"));
    assert!(call.executor.is_sensitive_now(), "the question after it");
}

#[test]
fn another_gather_between_a_line_and_the_sensitive_one_ends_the_way_in() {
    let mut call = Call::start(flow_into_pin(vec![json!({"type": "gather",
        "input": ["dtmf"], "max_digits": 1, "save_as": "choice"})]));
    assert!(!call.executor.is_sensitive_now(), "the greeting");
    call.play(spoken(800));
    assert!(!call.executor.is_sensitive_now(), "the menu listens");
    call.play(digits(1500, "1"));
    assert_eq!(call.executor.current_node(), Some("pin"));
    assert!(call.executor.is_sensitive_now());
}

#[test]
fn the_way_in_is_computed_once_on_the_compiled_workflow_and_survives_loops() {
    // hello -> ask -> check -> pin, whose silence goes back to `ask`; `menu` listens first.
    let compiled = compile(json!({"name": "PIN", "start": "menu", "nodes": [
        {"id": "menu", "type": "gather", "input": ["dtmf"], "max_digits": 1,
         "save_as": "choice", "next": "hello"},
        {"id": "hello", "type": "say", "text": "Welcome.", "next": "ask"},
        {"id": "ask", "type": "say", "text": "Your PIN, please.", "next": "check"},
        {"id": "check", "type": "condition",
         "branches": [{"when": "choice == '9'", "next": "bye"}], "else": "pin"},
        {"id": "pin", "type": "gather", "input": ["dtmf"], "save_as": "pin",
         "sensitive": true, "next": "bye", "no_input": "ask"},
        {"id": "bye", "type": "end", "text": "Thanks."}
    ]}));
    let marked: Vec<&str> = compiled
        .nodes()
        .iter()
        .enumerate()
        .filter(|(i, _)| compiled.approaches_secret(*i))
        .map(|(_, n)| n.id.as_str())
        .collect();
    assert_eq!(marked, ["hello", "ask", "check", "pin"]);
    assert!(!compiled.approaches_secret(usize::MAX), "out of range");
}

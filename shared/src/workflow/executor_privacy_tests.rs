//! A flow's privacy: a `sensitive` gather's answer reaches the flow's variables and the
//! function it is passed to, but no step record, wherever it is repeated; the flow's
//! `privacy.redact` redacts function answers (before they are cut to size), reasons and errors.

use std::time::Duration;

use serde_json::json;

use super::test_flows::*;
use super::{StepDetail, WorkflowAction, WorkflowEvent};

const CARD: &str = "4111111111111111";

/// Asks for a card number on the keypad, passes it to a payment endpoint, and branches on it.
fn payment(sensitive: bool, privacy: serde_json::Value) -> serde_json::Value {
    json!({
        "name": "Payment", "start": "card", "privacy": privacy,
        "nodes": [
            {"id": "card", "type": "gather", "input": ["dtmf"], "max_digits": 16,
             "save_as": "card", "sensitive": sensitive, "next": "check"},
            {"id": "check", "type": "condition",
             "branches": [{"when": "card.size() == 16", "next": "pay"}], "else": "bye"},
            {"id": "pay", "type": "function", "url": "https://pay.example/charge",
             "body": {"card": "{{card}}", "note": "card {{card}} from {{caller_number}}"},
             "save_as": "receipt", "next": "bye", "on_error": "bye"},
            {"id": "bye", "type": "end", "text": "Goodbye."}
        ]
    })
}

fn recorded(steps: &[super::StepRecord]) -> String {
    serde_json::to_string(steps).expect("steps serialize")
}

#[test]
fn a_sensitive_answer_reaches_the_function_but_no_record() {
    let mut call = Call::start(payment(true, json!({})));
    assert!(
        call.executor.is_sensitive_now(),
        "listening at a sensitive gather"
    );
    call.play(digits(1000, CARD));
    assert!(!call.executor.is_sensitive_now(), "past the gather");
    assert_eq!(call.executor.variables()["card"], CARD);
    let actions = call.actions();
    let Some(WorkflowAction::CallFunction { body, .. }) = actions.last() else {
        panic!("expected the payment request, got {actions:?}");
    };
    // The customer's endpoint gets the real value.
    assert_eq!(body.as_ref().map(|b| b["card"].clone()), Some(json!(CARD)));
    call.play(Input::Event(
        1500,
        WorkflowEvent::FunctionResult {
            status: 200,
            body: json!({"ok": true, "echo": format!("charged {CARD}")}),
            elapsed: Duration::from_millis(300),
        },
    ));
    let steps = call.steps();
    let text = recorded(&steps);
    assert!(!text.contains("4111"), "{text}");
    let gathered = steps.iter().find_map(|s| match &s.detail {
        StepDetail::VariablesChanged { changes } => changes.get("card").cloned(),
        _ => None,
    });
    assert_eq!(gathered, Some(json!("[redacted]")));
    assert!(text.contains("charged [redacted]"), "{text}");
}

#[test]
fn without_sensitive_the_answer_is_recorded_as_before() {
    let mut call = Call::start(payment(false, json!({})));
    assert!(!call.executor.is_sensitive_now());
    call.play(digits(1000, CARD));
    assert!(recorded(&call.steps()).contains(CARD));
}

#[test]
fn the_flows_privacy_redacts_function_answers_before_they_are_cut() {
    let mut call = Call::start(payment(false, json!({"redact": ["card_number", "email"]})));
    call.play(digits(1000, CARD));
    // The gathered digits alone are a card number: redacted by kind too.
    // A huge answer with the card at the cut and an address at the start.
    let padding = "x".repeat(super::executor::MAX_RECORDED_BODY_BYTES - 20);
    let answer = format!("mail bob@example.com {padding} 4111 1111 1111 1111 and more {padding}");
    call.play(Input::Event(
        1500,
        WorkflowEvent::FunctionResult {
            status: 200,
            body: json!(answer),
            elapsed: Duration::from_millis(300),
        },
    ));
    let text = recorded(&call.steps());
    for secret in [CARD, "bob@example.com", "4111 1111", "4111 11"] {
        assert!(!text.contains(secret), "{secret} in the record");
    }
    assert!(
        text.contains("[email]") && text.contains("truncated"),
        "{text}"
    );
}

#[test]
fn deeply_nested_answers_are_walked_to_a_bound() {
    let mut call = Call::start(payment(false, json!({"redact": ["email"]})));
    call.play(digits(1000, CARD));
    let mut deep = json!("bob@example.com");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    call.play(Input::Event(
        1500,
        WorkflowEvent::FunctionResult {
            status: 200,
            body: deep,
            elapsed: Duration::from_millis(300),
        },
    ));
    let text = recorded(&call.steps());
    assert!(!text.contains("bob@example.com"), "{text}");
}

#[test]
fn failing_function_errors_and_branch_reasons_are_scrubbed_too() {
    let mut call = Call::start(payment(true, json!({})));
    call.play(digits(1000, CARD));
    call.play(Input::Event(
        1500,
        WorkflowEvent::FunctionFailed {
            reason: format!("refused: http://pay.example/charge?card={CARD}"),
        },
    ));
    let text = recorded(&call.steps());
    assert!(!text.contains("4111"), "{text}");
}

#[test]
fn unknown_privacy_kinds_are_named_by_field() {
    let workflow: super::Workflow = serde_json::from_value(payment(
        true,
        json!({"redact": ["card_number", "shoe_size"]}),
    ))
    .expect("parses");
    let errors =
        super::validate(&workflow, &super::ValidationContext::default()).expect_err("unknown kind");
    assert!(
        errors.iter().any(|e| e.field == "privacy.redact[1]"),
        "{errors:?}"
    );
}

/// A greeting, then the line that asks for the PIN (written, or generated when `generated`),
/// then the sensitive gather (speech or keys), which reads the answer back.
fn pin_line(generated: bool) -> serde_json::Value {
    let ask = if generated {
        json!({"id": "ask", "type": "say", "prompt": "Ask for the caller's PIN.", "next": "pin"})
    } else {
        json!({"id": "ask", "type": "say", "text": "Your PIN, please.", "next": "pin"})
    };
    json!({
        "name": "PIN", "start": "hello",
        "nodes": [
            {"id": "hello", "type": "say", "text": "Welcome.", "next": "ask"},
            ask,
            {"id": "pin", "type": "gather", "input": ["dtmf", "speech"], "save_as": "pin",
             "sensitive": true, "next": "bye"},
            {"id": "bye", "type": "end", "text": "Thanks, {{pin}} it is."}
        ]
    })
}

#[test]
fn every_line_on_the_way_into_a_sensitive_gather_is_sensitive() {
    for generated in [false, true] {
        let mut call = Call::start(pin_line(generated));
        assert!(
            call.executor.is_sensitive_now(),
            "the greeting leads straight on to the prompt"
        );
        call.play(spoken(800));
        assert!(
            call.executor.is_sensitive_now(),
            "saying the prompt (generated: {generated})"
        );
        if generated {
            call.play(Input::Event(
                900,
                WorkflowEvent::Generated("What is your PIN?".into()),
            ));
            assert!(call.executor.is_sensitive_now(), "saying the written line");
        }
        call.play(spoken(1500));
        assert!(call.executor.is_sensitive_now(), "listening");
        call.play(Input::Event(
            3000,
            WorkflowEvent::Utterance("four four two one".into()),
        ));
        assert!(!call.executor.is_sensitive_now(), "saying goodbye");
    }
}

#[test]
fn a_spoken_sensitive_answer_read_back_is_scrubbed_from_what_is_kept() {
    let mut call = Call::start(pin_line(false));
    call.play(spoken(800));
    call.play(spoken(1500));
    call.play(Input::Event(
        3000,
        WorkflowEvent::Utterance("four four two one".into()),
    ));
    assert_eq!(call.executor.variables()["pin"], "four four two one");
    let said = call
        .actions()
        .into_iter()
        .find_map(|a| match a {
            WorkflowAction::Hangup { text } => text,
            _ => None,
        })
        .expect("the goodbye");
    assert_eq!(
        said, "Thanks, four four two one it is.",
        "the caller hears it"
    );
    assert_eq!(
        call.executor.scrub_text(&said),
        "Thanks, [redacted] it is.",
        "the transcript does not keep it"
    );
    assert!(!recorded(&call.steps()).contains("four four"));
}

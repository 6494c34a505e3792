//! The conversation when the agent's fallback model answers: the turn is still spoken, and the
//! record gets one event per turn that fell back, with the primary, the fallback and why.

use super::tests::{completion, done, spoken, token, Harness};
use super::*;
use crate::llm::{FallbackNotice, FallbackReason, FinishReason};

fn fell_back(reason: FallbackReason) -> LlmEvent {
    LlmEvent::FellBack(FallbackNotice {
        primary: "openai/gpt-4o-mini".into(),
        fallback: "anthropic/claude-haiku-4-5".into(),
        reason,
    })
}

/// The fallback notices among the conversation's events so far.
fn notices(h: &mut Harness) -> Vec<FallbackNotice> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            ConversationEvent::LlmFellBack(notice) => Some(notice),
            _ => None,
        })
        .collect()
}

#[test]
fn a_primary_that_timed_out_is_recorded_once_and_the_fallbacks_reply_plays() {
    let mut h = Harness::without_greeting();
    let timeout = FallbackReason::FirstTokenTimeout {
        after: Duration::from_millis(800),
    };
    let speak = h.model_answers(
        "When are you open?",
        vec![fell_back(timeout.clone()), token("Nine to five."), done()],
    );
    assert_eq!(spoken(&speak), ["Nine to five."]);
    let notices = notices(&mut h);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].reason, timeout);
    assert_eq!(notices[0].primary, "openai/gpt-4o-mini");
    h.play_out(&speak);
    assert_eq!(
        h.c.history().last(),
        Some(&ChatMessage::assistant("Nine to five."))
    );
    // The fallback's first token is the turn's first token: the switch is not mistaken for it.
    assert!(h.latency().llm_first_token_ms.is_some());
}

#[test]
fn a_turn_whose_tool_rounds_both_fell_back_is_recorded_once_with_the_error() {
    let mut h = Harness::without_greeting();
    let actions = h.caller_says(0, "Book me for Monday.");
    let (reply, stream, _) = completion(&actions);
    let error = FallbackReason::Failed("the openai model answered HTTP 503: down".into());
    let run = h.stream(
        1700,
        stream,
        vec![
            fell_back(error.clone()),
            LlmEvent::ToolCall {
                id: "c1".into(),
                name: "book".into(),
                arguments: serde_json::json!({"day": "monday"}),
            },
            LlmEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                usage: None,
            },
        ],
    );
    assert!(run.iter().any(|a| matches!(a, Action::RunTool { .. })));
    h.c.on_tool_result(h.at(1800), reply, "c1", Ok("{}".into()));
    let (_, second, _) = completion(&h.drain());
    let last = h.stream(
        1900,
        second,
        vec![fell_back(error.clone()), token("You are booked."), done()],
    );
    assert_eq!(spoken(&last), ["You are booked."]);
    let notices = notices(&mut h);
    assert_eq!(notices.len(), 1, "once per turn, not per model round");
    assert_eq!(notices[0].reason, error);
}

#[test]
fn each_turn_that_falls_back_is_recorded() {
    let mut h = Harness::without_greeting();
    let speak = h.model_answers(
        "Hello?",
        vec![fell_back(FallbackReason::Empty), token("Hi."), done()],
    );
    h.play_out(&speak);
    assert_eq!(notices(&mut h).len(), 1);
    let (_, stream, _) = completion(&h.caller_says(3000, "Are you open today?"));
    let next = h.stream(
        4700,
        stream,
        vec![fell_back(FallbackReason::Empty), token("Yes."), done()],
    );
    assert_eq!(spoken(&next), ["Yes."]);
    assert_eq!(notices(&mut h).len(), 1, "the second turn has its own");
    // A turn the primary answered records nothing.
    let (_, stream, _) = completion(&h.caller_says(6000, "Thanks."));
    h.stream(7700, stream, vec![token("You're welcome."), done()]);
    assert!(notices(&mut h).is_empty());
}

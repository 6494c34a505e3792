//! `privacy.redact_before_llm`: what the model is sent has the caller's card number and address
//! replaced, while the call's own transcript event keeps the words (the control plane redacts
//! what it stores); without the setting the model gets the words as said.

use super::tests::{completion, config, Harness};
use super::*;
use crate::llm::FinishReason;
use freya_shared::redact::{PiiKind, Redactor};

const SAID: &str =
    "my card is four one one one one one one one one one one one one one one one and \
                    I'm bob dot smith at example dot com";

fn redacting() -> ConversationConfig {
    ConversationConfig {
        llm_redactor: Redactor::new([PiiKind::CardNumber, PiiKind::Email]),
        ..config()
    }
}

/// A harness whose agent says nothing first.
fn quiet(config: ConversationConfig) -> Harness {
    Harness::new(ConversationConfig {
        first_message: None,
        ..config
    })
}

fn sent_to_model(request: &crate::llm::ChatRequest) -> String {
    serde_json::to_string(&request.messages).unwrap_or_default()
}

#[test]
fn the_model_gets_placeholders_when_the_agent_redacts_before_it() {
    let mut h = quiet(redacting());
    let actions = h.caller_says(0, SAID);
    let (_, _, request) = completion(&actions);
    let sent = sent_to_model(&request);
    assert!(!sent.contains("four one one one"), "{sent}");
    assert!(!sent.contains("bob dot smith"), "{sent}");
    assert_eq!(
        request.messages.last(),
        Some(&ChatMessage::user(
            "my card is [card_number] and I'm [email]"
        ))
    );
    let heard = h.events().into_iter().find_map(|e| match e {
        ConversationEvent::Transcript { text, .. } => Some(text),
        _ => None,
    });
    assert_eq!(heard.as_deref(), Some(SAID));
}

#[test]
fn tool_results_are_redacted_for_the_model_too() {
    let mut h = quiet(redacting());
    let actions = h.caller_says(0, "look me up");
    let (reply, stream, _) = completion(&actions);
    h.stream(
        1700,
        stream,
        vec![
            LlmEvent::ToolCall {
                id: "c1".into(),
                name: "book".into(),
                arguments: serde_json::json!({}),
            },
            LlmEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                usage: None,
            },
        ],
    );
    h.c.on_tool_result(
        h.at(1800),
        reply,
        "c1",
        Ok(r#"{"email":"jane.doe@example.org"}"#.into()),
    );
    let (_, _, request) = completion(&h.drain());
    let sent = sent_to_model(&request);
    assert!(!sent.contains("jane.doe@example.org"), "{sent}");
    assert!(sent.contains("[email]"), "{sent}");
}

#[test]
fn without_the_setting_the_model_gets_the_words_as_said() {
    let mut h = quiet(config());
    let actions = h.caller_says(0, SAID);
    let (_, _, request) = completion(&actions);
    assert_eq!(request.messages.last(), Some(&ChatMessage::user(SAID)));
}

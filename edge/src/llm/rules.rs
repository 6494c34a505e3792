//! The offline `rules` model. It is **not** a language model: it picks the rule of the agent's
//! `rules` table ([`RulesSpec`]) that best matches the caller's last turn and answers with its
//! reply, or with the table's fallback line. It exists so the demo agent that `freya dev` seeds
//! can hold a (narrow) conversation with no keys and no network, and so the pipeline can be
//! exercised end to end without a provider. Replies are streamed word by word through the same
//! [`LanguageModel`] interface, so the rest of the pipeline cannot tell the difference.
//!
//! A rule's action is carried out through the tools a model would call: `end_call` and
//! `transfer_call` after the reply, and a customer tool before it (the reply is said once the
//! tool's result is back, its `failed_reply` when the tool failed). An action whose tool the
//! request does not offer is skipped: the rule then only answers.

use std::time::Duration;

use freya_shared::model::rules::{RuleAction, RulesSpec};
use serde_json::json;

use super::types::{ChatMessage, ChatRequest, FinishReason, LlmEvent};
use super::{LanguageModel, LlmStream};

/// Name of the built-in tool that hangs up (as the conversation offers it).
const END_CALL: &str = "end_call";
/// Name of the built-in tool that transfers the call.
const TRANSFER_CALL: &str = "transfer_call";

/// A rules table answering as a language model would.
#[derive(Debug, Clone, PartialEq)]
pub struct RulesModel {
    /// The table.
    pub table: RulesSpec,
    /// Pause between words, to imitate a model's pace in demos and tests; zero by default.
    pub word_delay: Duration,
}

impl RulesModel {
    /// A model answering from `table`.
    pub fn new(table: RulesSpec) -> Self {
        Self {
            table,
            word_delay: Duration::ZERO,
        }
    }

    /// The table for agents that have none: the demo's answers, without the booking tool and
    /// the transfer they cannot have.
    pub fn demo() -> Self {
        let mut table = RulesSpec::demo("", "");
        for rule in &mut table.rules {
            if !matches!(rule.action, Some(RuleAction::EndCall)) {
                rule.action = None;
            }
        }
        table
            .rules
            .retain(|r| r.intent != "booking" && r.intent != "person");
        table.fallback =
            "Sorry, I can only tell you our opening hours and our address. What would you like?"
                .into();
        Self::new(table)
    }

    /// The reply for what the caller said (without actions).
    pub fn reply_to(&self, caller_words: &str) -> &str {
        self.table
            .matching(caller_words)
            .map_or(self.table.fallback.as_str(), |rule| rule.reply.as_str())
    }

    /// What to stream for `request`: the words to say and the tool calls to make.
    fn answer(&self, request: &ChatRequest) -> (String, Option<(String, serde_json::Value)>) {
        let caller_words = request
            .messages
            .iter()
            .rev()
            .find_map(|message| match message {
                ChatMessage::User { content } => Some(content.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        let Some(rule) = self.table.matching(caller_words) else {
            return (self.table.fallback.clone(), None);
        };
        // A round after our own tool call: the tool's result decides what to say.
        if let Some(ChatMessage::Tool { content, .. }) = request.messages.last() {
            return match &rule.action {
                Some(RuleAction::Tool {
                    failed_reply: Some(failed),
                    ..
                }) if content.starts_with("error") => (failed.clone(), None),
                _ => (rule.reply.clone(), None),
            };
        }
        let offered = |name: &str| request.tools.iter().any(|t| t.name == name);
        match &rule.action {
            Some(RuleAction::EndCall) if offered(END_CALL) => {
                (rule.reply.clone(), Some((END_CALL.into(), json!({}))))
            }
            Some(RuleAction::Transfer { destination }) if offered(TRANSFER_CALL) => (
                rule.reply.clone(),
                Some((TRANSFER_CALL.into(), json!({ "destination": destination }))),
            ),
            Some(RuleAction::Tool { name, .. }) if offered(name) => (
                String::new(),
                Some((name.clone(), json!({ "request": caller_words }))),
            ),
            _ => (rule.reply.clone(), None),
        }
    }
}

/// `reply` as tokens: the first word, then each further word with its leading space.
fn word_tokens(reply: &str) -> Vec<String> {
    reply
        .split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

impl LanguageModel for RulesModel {
    fn provider(&self) -> &'static str {
        "rules"
    }

    fn stream_chat(&self, request: ChatRequest) -> LlmStream {
        let (reply, action) = self.answer(&request);
        let mut events: Vec<LlmEvent> = word_tokens(&reply)
            .into_iter()
            .map(LlmEvent::Token)
            .collect();
        let finish_reason = match action {
            Some((name, arguments)) => {
                events.push(LlmEvent::ToolCall {
                    id: format!("rules-{}", request.messages.len()),
                    name,
                    arguments,
                });
                FinishReason::ToolCalls
            }
            None => FinishReason::Stop,
        };
        events.push(LlmEvent::Done {
            finish_reason,
            usage: None,
        });
        let delay = self.word_delay;
        Box::pin(futures::stream::unfold(
            (events.into_iter(), true),
            move |(mut events, first)| async move {
                let event = events.next()?;
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok(event), (events, false)))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::llm::types::ToolDefinition;

    fn demo() -> RulesModel {
        RulesModel::new(RulesSpec::demo("record_booking", "operator"))
    }

    fn offering(tools: &[&str], messages: Vec<ChatMessage>) -> ChatRequest {
        let mut request = ChatRequest::new("rules", messages);
        request.tools = tools
            .iter()
            .map(|name| ToolDefinition {
                name: (*name).into(),
                description: String::new(),
                parameters: json!({"type": "object"}),
            })
            .collect();
        request
    }

    async fn run(
        model: &RulesModel,
        request: ChatRequest,
    ) -> (String, Vec<(String, serde_json::Value)>) {
        let events: Vec<_> = model.stream_chat(request).collect().await;
        let mut text = String::new();
        let mut calls = Vec::new();
        for event in events {
            match event.expect("rules never fail") {
                LlmEvent::Token(t) => text.push_str(&t),
                LlmEvent::ToolCall {
                    name, arguments, ..
                } => calls.push((name, arguments)),
                LlmEvent::Done { .. } | LlmEvent::FellBack(_) => {}
            }
        }
        (text, calls)
    }

    #[tokio::test]
    async fn matching_rule_is_streamed_word_by_word() {
        let model = RulesModel::demo();
        let request = ChatRequest::new(
            "rules",
            vec![
                ChatMessage::system("ignored"),
                ChatMessage::user("Hello, what are your opening HOURS?"),
            ],
        );
        let events: Vec<_> = model.stream_chat(request).collect().await;
        let tokens: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Ok(LlmEvent::Token(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(tokens[0], "We");
        assert_eq!(tokens[1], " are");
        assert_eq!(tokens.concat(), model.reply_to("opening hours"));
        assert!(tokens.concat().contains("Monday to Friday"));
        assert!(matches!(
            events.last(),
            Some(Ok(LlmEvent::Done {
                finish_reason: FinishReason::Stop,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn unknown_questions_get_the_fallback_that_lists_what_it_can_do() {
        let (text, calls) = run(
            &demo(),
            offering(&[], vec![ChatMessage::user("Do you sell bikes?")]),
        )
        .await;
        assert!(
            text.contains("opening hours") && text.contains("booking"),
            "{text}"
        );
        assert!(calls.is_empty());
    }

    #[tokio::test]
    async fn goodbye_answers_then_ends_the_call() {
        let (text, calls) = run(
            &demo(),
            offering(&["end_call"], vec![ChatMessage::user("thank you, goodbye")]),
        )
        .await;
        assert_eq!(text, "Thank you for calling. Goodbye!");
        assert_eq!(calls, [("end_call".to_string(), json!({}))]);
    }

    #[tokio::test]
    async fn a_person_is_a_transfer_only_when_the_agent_can_transfer() {
        let asked = vec![ChatMessage::user("can I speak to a person")];
        let (_, calls) = run(
            &demo(),
            offering(&["end_call", "transfer_call"], asked.clone()),
        )
        .await;
        assert_eq!(
            calls,
            [(
                "transfer_call".to_string(),
                json!({"destination": "operator"})
            )]
        );
        let (text, calls) = run(&demo(), offering(&["end_call"], asked)).await;
        assert!(calls.is_empty());
        assert!(text.contains("person"), "{text}");
    }

    #[tokio::test]
    async fn booking_calls_the_tool_first_and_answers_from_its_result() {
        let model = demo();
        let mut history = vec![ChatMessage::user(
            "I'd like to book an appointment on Monday",
        )];
        let (text, calls) = run(&model, offering(&["record_booking"], history.clone())).await;
        assert_eq!(text, "");
        assert_eq!(
            calls,
            [(
                "record_booking".to_string(),
                json!({"request": "I'd like to book an appointment on Monday"})
            )]
        );
        history.push(ChatMessage::Assistant {
            content: String::new(),
            tool_calls: Vec::new(),
        });
        let mut done = history.clone();
        done.push(ChatMessage::tool_result("rules-1", "{\"ok\": true}"));
        let (text, calls) = run(&model, offering(&["record_booking"], done)).await;
        assert!(
            text.starts_with("I have noted your booking request"),
            "{text}"
        );
        assert!(calls.is_empty());
        history.push(ChatMessage::tool_result(
            "rules-1",
            "error: tool `record_booking` did not answer",
        ));
        let (text, _) = run(&model, offering(&["record_booking"], history)).await;
        assert!(text.starts_with("Sorry, I could not note"), "{text}");
    }

    #[test]
    fn agents_without_a_table_keep_the_answers_they_can_give() {
        let model = RulesModel::demo();
        assert!(model.table.rules.iter().all(|r| !matches!(
            r.action,
            Some(RuleAction::Tool { .. } | RuleAction::Transfer { .. })
        )));
        assert_eq!(
            model.reply_to("Well, thank you, goodbye!"),
            "Thank you for calling. Goodbye!"
        );
    }
}

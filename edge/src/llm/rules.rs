//! The offline `rules` model. It is **not** a language model: it looks for keywords in the
//! caller's last turn and answers with the reply of the first rule that matches, or with a fallback
//! line. It exists so the demo agent that `freya dev` seeds can hold a (very simple) conversation
//! with no keys and no network, and so the pipeline can be exercised end to end without a provider.
//! Replies are streamed word by word through the same [`LanguageModel`] interface, so the rest of
//! the pipeline cannot tell the difference; it never calls tools.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::{ChatMessage, ChatRequest, FinishReason, LlmEvent};
use super::{LanguageModel, LlmStream};

/// One keyword rule: if any keyword occurs in the caller's words, say `reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Words or phrases to look for, matched case-insensitively on word boundaries.
    pub keywords: Vec<String>,
    /// What the agent says when one matches.
    pub reply: String,
}

impl Rule {
    /// A rule answering `reply` to any of `keywords`.
    pub fn new(keywords: &[&str], reply: impl Into<String>) -> Self {
        Self {
            keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
            reply: reply.into(),
        }
    }
}

/// A keyword → reply table with a fallback line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesModel {
    /// Rules, tried in order.
    pub rules: Vec<Rule>,
    /// Said when no rule matches.
    pub fallback_line: String,
    /// Pause between words, to imitate a model's pace in demos and tests; zero by default.
    #[serde(skip)]
    pub word_delay: Duration,
}

impl RulesModel {
    /// A table of `rules` with `fallback_line`.
    pub fn new(rules: Vec<Rule>, fallback_line: impl Into<String>) -> Self {
        Self {
            rules,
            fallback_line: fallback_line.into(),
            word_delay: Duration::ZERO,
        }
    }

    /// The table the seeded demo agent uses.
    pub fn demo() -> Self {
        Self::new(
            vec![
                Rule::new(
                    &["hello", "hi", "hey", "good morning", "good afternoon"],
                    "Hello! This is the Freya demo agent. How can I help you today?",
                ),
                Rule::new(
                    &["hours", "open", "close", "closing"],
                    "We are open Monday to Friday, from nine in the morning until five in the afternoon.",
                ),
                Rule::new(
                    &["appointment", "book", "booking", "schedule"],
                    "I can note a booking request. Which day would suit you?",
                ),
                Rule::new(
                    &["human", "person", "agent", "operator"],
                    "I am an automated demo without a language model, so I cannot transfer you yet.",
                ),
                Rule::new(
                    &["bye", "goodbye", "thank you", "thanks"],
                    "Thank you for calling. Goodbye!",
                ),
            ],
            "Sorry, I only know a few phrases. You can ask about our opening hours or an appointment.",
        )
    }

    /// The reply for what the caller said.
    pub fn reply_to(&self, caller_words: &str) -> &str {
        let words = normalise(caller_words);
        self.rules
            .iter()
            .find(|rule| {
                rule.keywords.iter().any(|keyword| {
                    let keyword = normalise(keyword);
                    !keyword.is_empty() && format!(" {words} ").contains(&format!(" {keyword} "))
                })
            })
            .map_or(self.fallback_line.as_str(), |rule| rule.reply.as_str())
    }
}

/// Lower case, punctuation to spaces, single spaces: so "Hello," matches `hello`.
fn normalise(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
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
        let last_caller_turn = request
            .messages
            .iter()
            .rev()
            .find_map(|message| match message {
                ChatMessage::User { content } => Some(content.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        let mut events: Vec<LlmEvent> = word_tokens(self.reply_to(last_caller_turn))
            .into_iter()
            .map(LlmEvent::Token)
            .collect();
        events.push(LlmEvent::Done {
            finish_reason: FinishReason::Stop,
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

    #[tokio::test]
    async fn matching_rule_is_streamed_word_by_word() {
        let model = RulesModel::demo();
        let request = ChatRequest::new(
            "rules",
            vec![
                ChatMessage::system("ignored"),
                ChatMessage::user("What are your opening HOURS?"),
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
        assert!(tokens.len() > 3);
        assert_eq!(tokens[0], "We");
        assert_eq!(tokens[1], " are");
        assert_eq!(tokens.concat(), model.rules[1].reply);
        assert!(matches!(
            events.last(),
            Some(Ok(LlmEvent::Done {
                finish_reason: FinishReason::Stop,
                ..
            }))
        ));
    }

    #[test]
    fn keywords_match_whole_words_only() {
        let model = RulesModel::new(vec![Rule::new(&["hi"], "Hi there.")], "Pardon?");
        assert_eq!(model.reply_to("Hi, anyone?"), "Hi there.");
        assert_eq!(model.reply_to("this is thin"), "Pardon?");
        assert_eq!(model.reply_to(""), "Pardon?");
    }

    #[test]
    fn phrases_match_across_punctuation() {
        let model = RulesModel::demo();
        assert_eq!(
            model.reply_to("Well, thank you!"),
            "Thank you for calling. Goodbye!"
        );
    }
}

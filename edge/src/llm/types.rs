//! The provider-neutral vocabulary of a conversation with a language model: the messages of the
//! transcript (including tool calls and their results), the tools an agent offers, one request,
//! the events a streamed reply produces, and the errors a reply can end with. Every provider
//! client translates to and from these types, so the call task never sees a wire format.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One turn of the transcript sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Instructions: the agent's system prompt with its variables filled in.
    System {
        /// The prompt text.
        content: String,
    },
    /// What the caller said (an STT transcript).
    User {
        /// The transcript text.
        content: String,
    },
    /// What the agent said (only the part the caller heard) and the tools it called.
    Assistant {
        /// The spoken text; may be empty when the reply was only tool calls.
        content: String,
        /// Tool calls the model made in this turn.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, fed back so the model can continue.
    Tool {
        /// The `id` of the [`ToolCall`] this answers.
        call_id: String,
        /// The tool's result, as text (JSON results are serialized).
        content: String,
    },
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
        }
    }

    /// A caller message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::User {
            content: content.into(),
        }
    }

    /// An agent message without tool calls.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Assistant {
            content: content.into(),
            tool_calls: Vec::new(),
        }
    }

    /// A tool result answering the call with id `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            call_id: call_id.into(),
            content: content.into(),
        }
    }
}

/// A tool call the model made: which tool, with which arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for this call, echoed back with the result.
    pub id: String,
    /// The tool's name, as in its [`ToolDefinition`].
    pub name: String,
    /// The arguments, parsed from the model's JSON.
    pub arguments: Value,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Name the model uses to call it (`book_appointment`).
    pub name: String,
    /// What it does, for the model to decide when to call it.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Everything one streamed completion needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The provider's model name (`gpt-4o-mini`, `claude-sonnet-4-5`).
    pub model: String,
    /// Sampling temperature; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// The transcript, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// Upper bound on the reply's length in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl ChatRequest {
    /// A request for `model` over `messages`, with no tools and provider defaults.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            temperature: None,
            messages,
            tools: Vec::new(),
            max_tokens: None,
        }
    }
}

/// Why the model stopped writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end of the reply.
    Stop,
    /// The token limit cut the reply.
    Length,
    /// The reply ends with tool calls waiting for results.
    ToolCalls,
    /// The provider withheld content.
    ContentFilter,
    /// Anything else, as the provider named it.
    Other(String),
}

/// Token counts of one completion, when the provider reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub input_tokens: u32,
    /// Tokens of the reply.
    pub output_tokens: u32,
}

/// What a streamed reply produces, in order: tokens and tool calls, then one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// The next piece of the spoken reply.
    Token(String),
    /// A complete tool call with parsed arguments.
    ToolCall {
        /// The provider's call id.
        id: String,
        /// The tool's name.
        name: String,
        /// The parsed arguments.
        arguments: Value,
    },
    /// The reply is complete; nothing follows.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Token counts, if reported.
        usage: Option<Usage>,
    },
    /// The primary model was dropped and a fallback answers this request instead; comes before
    /// the fallback's first event. The model cannot reach the call, so the call's record learns
    /// of the switch through its stream.
    FellBack(FallbackNotice),
}

/// Which model gave way to which, and why: what the call's record shows for a turn that
/// another model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackNotice {
    /// The primary, as `provider/model` (`openai/gpt-4o-mini`).
    pub primary: String,
    /// The model that answers instead, as `provider/model`.
    pub fallback: String,
    /// Why the primary was dropped.
    pub reason: FallbackReason,
}

/// Why the primary model was dropped for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FallbackReason {
    /// Nothing came within the first-token budget.
    FirstTokenTimeout {
        /// The budget that ran out.
        after: Duration,
    },
    /// It failed before emitting anything (the error's text, bounded).
    Failed(String),
    /// It ended without emitting anything.
    Empty,
}

/// The longest error text a [`FallbackReason::Failed`] keeps: enough to name the cause, short
/// enough for a call's record.
pub const FALLBACK_ERROR_CHARS: usize = 300;

impl FallbackReason {
    /// The reason for `error`, its text cut to [`FALLBACK_ERROR_CHARS`].
    pub fn failed(error: &LlmError) -> Self {
        Self::Failed(excerpt(&error.to_string(), FALLBACK_ERROR_CHARS))
    }

    /// The reason in words, for the call's record and the logs.
    pub fn describe(&self) -> String {
        match self {
            Self::FirstTokenTimeout { after } => {
                format!("timeout: no first token within {} ms", after.as_millis())
            }
            Self::Failed(error) => format!("error: {error}"),
            Self::Empty => "error: the reply ended without any event".to_owned(),
        }
    }

    /// The budget that ran out, in ms, when that was the reason.
    pub fn timeout_ms(&self) -> Option<u64> {
        match self {
            Self::FirstTokenTimeout { after } => {
                Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
            }
            Self::Failed(_) | Self::Empty => None,
        }
    }
}

impl From<ToolCall> for LlmEvent {
    fn from(call: ToolCall) -> Self {
        LlmEvent::ToolCall {
            id: call.id,
            name: call.name,
            arguments: call.arguments,
        }
    }
}

/// How a streamed reply failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The request never got an HTTP response (DNS, TCP, TLS, refused).
    #[error("could not reach the {provider} model at {url}: {reason}")]
    Connect {
        /// Provider (wire protocol) name.
        provider: &'static str,
        /// The endpoint tried.
        url: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The provider answered with a non-success HTTP status.
    #[error("the {provider} model answered HTTP {status}: {body}")]
    Status {
        /// Provider name.
        provider: &'static str,
        /// HTTP status code.
        status: u16,
        /// The start of the response body, for the logs.
        body: String,
    },
    /// No token (nor tool call) arrived within the first-token budget.
    #[error("no first token from the {provider} model within {after:?}")]
    FirstTokenTimeout {
        /// Provider name.
        provider: &'static str,
        /// The budget that ran out.
        after: Duration,
    },
    /// The reply had started but nothing more arrived for too long.
    #[error("the {provider} model stalled for {after:?} mid-reply")]
    Stalled {
        /// Provider name.
        provider: &'static str,
        /// The idle budget that ran out.
        after: Duration,
    },
    /// The connection broke, or the stream ended before the reply was complete.
    #[error("the {provider} stream broke off: {reason}")]
    Interrupted {
        /// Provider name.
        provider: &'static str,
        /// What happened.
        reason: String,
    },
    /// The provider sent something that does not follow its protocol.
    #[error("the {provider} model sent an unexpected {what}: {detail}")]
    Protocol {
        /// Provider name.
        provider: &'static str,
        /// The thing that was wrong (`chunk`, `tool arguments`).
        what: &'static str,
        /// Details for the logs.
        detail: String,
    },
    /// The provider reported an error inside the stream (e.g. `overloaded_error`).
    #[error("the {provider} model reported {kind}: {message}")]
    Provider {
        /// Provider name.
        provider: &'static str,
        /// The provider's error type.
        kind: String,
        /// The provider's message.
        message: String,
    },
    /// The reply was cancelled by its caller (barge-in, hang-up).
    #[error("the reply was cancelled")]
    Cancelled,
}

/// Cuts `text` to at most `max_chars` characters for error messages and logs.
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json_with_a_role_tag() {
        let message = ChatMessage::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "book".into(),
                arguments: serde_json::json!({"day": "monday"}),
            }],
        };
        let json = serde_json::to_value(&message).expect("serializes");
        assert_eq!(json["role"], "assistant");
        let back: ChatMessage = serde_json::from_value(json).expect("parses");
        assert_eq!(back, message);
    }

    #[test]
    fn a_fallback_reason_says_timeout_or_error_and_keeps_errors_short() {
        let timeout = FallbackReason::FirstTokenTimeout {
            after: Duration::from_millis(800),
        };
        assert_eq!(timeout.describe(), "timeout: no first token within 800 ms");
        assert_eq!(timeout.timeout_ms(), Some(800));
        let long = LlmError::Status {
            provider: "openai",
            status: 500,
            body: "x".repeat(5_000),
        };
        let failed = FallbackReason::failed(&long);
        assert!(failed
            .describe()
            .starts_with("error: the openai model answered HTTP 500"));
        assert!(failed.describe().chars().count() <= FALLBACK_ERROR_CHARS + "error: …".len());
        assert_eq!(failed.timeout_ms(), None);
    }

    #[test]
    fn excerpt_cuts_on_character_boundaries() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("hi", 5), "hi");
    }
}

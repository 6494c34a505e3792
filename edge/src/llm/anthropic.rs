//! The `anthropic` language model: the Messages API with SSE streaming and tool use. The system
//! prompt is a top-level field, tool results travel as `tool_result` blocks in a user turn, and the
//! reply arrives as typed events: `message_start`, then per content block `content_block_start`,
//! `content_block_delta` (`text_delta` or `input_json_delta`) and `content_block_stop`, then
//! `message_delta` (stop reason, usage) and `message_stop`; `ping` and unknown events are ignored,
//! and `error` ends the reply. A `tool_use` block becomes one [`LlmEvent::ToolCall`] when it stops.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use super::http_stream::{stream_reply, StreamTimeouts, WireDecoder};
use super::sse::SseEvent;
use super::types::{excerpt, ChatMessage, ChatRequest, FinishReason, LlmError, LlmEvent, Usage};
use super::{LanguageModel, LlmStream};

const PROVIDER: &str = "anthropic";

/// The API version header this client speaks.
pub(crate) const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the Messages API; this is sent when the request has none.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Where and how to reach the Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Base URL without the version path, e.g. `https://api.anthropic.com`; `/v1/messages` is
    /// appended.
    pub base_url: String,
    /// The `x-api-key` value.
    pub api_key: String,
    /// First-token and idle budgets.
    pub timeouts: StreamTimeouts,
}

impl AnthropicConfig {
    /// A configuration for `base_url` with default budgets.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: api_key.into(),
            timeouts: StreamTimeouts::default(),
        }
    }
}

/// A Messages API client; cheap to clone.
#[derive(Debug, Clone)]
pub struct AnthropicModel {
    http: reqwest::Client,
    config: AnthropicConfig,
}

impl AnthropicModel {
    /// A client over a shared `reqwest::Client`.
    pub fn new(http: reqwest::Client, config: AnthropicConfig) -> Self {
        Self { http, config }
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> String {
        format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'))
    }
}

impl LanguageModel for AnthropicModel {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn stream_chat(&self, request: ChatRequest) -> LlmStream {
        let url = self.endpoint();
        let builder = self
            .http
            .post(&url)
            .header("x-api-key", &self.config.api_key)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&request));
        stream_reply(
            PROVIDER,
            builder,
            url,
            EventDecoder::default(),
            self.config.timeouts,
        )
    }
}

/// Anthropic's current Sonnet (the alias follows its latest snapshot), asked for when an `llm`
/// section names no model.
pub(crate) const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// The user turn that opens a conversation when the caller has not spoken yet: the Messages API
/// wants the first message to be the user's.
pub(crate) const CALL_STARTED: &str =
    "(The call is connected; the caller has not said anything yet.)";

/// One turn of the Messages conversation: its role and content blocks.
type Turn = (&'static str, Vec<Value>);

/// The JSON body of a streamed Messages request, shaped as the documented API requires:
/// - system messages are joined into the top-level `system` field, which is left out when empty;
/// - the conversation starts with a user turn and alternates user and assistant (consecutive
///   turns of one role are merged);
/// - what the agent said before the caller spoke (the greeting) goes into `system` as context
///   ("You have already said: ..."), not into a made-up user turn: the model should know what it
///   said, not be told the caller said something. If the conversation would still start with the
///   assistant (a tool call before any caller speech) or be empty, [`CALL_STARTED`] opens it;
/// - every `tool_use` is answered by a `tool_result` in the next user turn and every
///   `tool_result` answers a `tool_use` of the turn before (a call cut off by barge-in before its
///   result is dropped with its half), and the results come first in their turn.
pub(crate) fn request_body(request: &ChatRequest) -> Value {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ChatMessage::System { content } => {
                if !content.trim().is_empty() {
                    system.push(content.clone());
                }
                continue;
            }
            ChatMessage::User { content } => ("user", text_blocks(content)),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let mut blocks = text_blocks(content);
                blocks.extend(tool_calls.iter().map(|call| {
                    json!({"type": "tool_use", "id": call.id, "name": call.name,
                           "input": call.arguments})
                }));
                ("assistant", blocks)
            }
            ChatMessage::Tool { call_id, content } => (
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": call_id, "content": content})],
            ),
        };
        turns.push((role, blocks));
    }
    let mut turns = merged(turns);
    pair_tool_blocks(&mut turns);
    let mut turns = merged(turns);
    while let Some((role, blocks)) = turns.first() {
        let text_only = blocks.iter().all(|b| b["type"] == "text");
        if *role != "assistant" || !text_only {
            break;
        }
        let said: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
        system.push(format!(
            "You have already said to the caller: \"{}\"",
            said.join(" ")
        ));
        turns.remove(0);
    }
    if turns.first().is_none_or(|(role, _)| *role != "user") {
        turns.insert(0, ("user", text_blocks(CALL_STARTED)));
    }
    for (role, blocks) in &mut turns {
        if *role == "user" {
            // Stable: results first, in their order, then the caller's words.
            blocks.sort_by_key(|b| b["type"] != "tool_result");
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"name": tool.name, "description": tool.description,
                       "input_schema": tool.parameters})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

/// `turns` without empty ones, consecutive turns of one role joined.
fn merged(turns: Vec<Turn>) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len());
    for (role, blocks) in turns {
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out
}

/// Drops each `tool_use` whose result is not in the next turn and each `tool_result` whose call
/// is not in the turn before (turns already merged, so they alternate).
fn pair_tool_blocks(turns: &mut [Turn]) {
    let ids = |blocks: &[Value], kind: &str, key: &str| -> Vec<String> {
        blocks
            .iter()
            .filter(|b| b["type"] == kind)
            .filter_map(|b| b[key].as_str().map(str::to_string))
            .collect()
    };
    for i in 0..turns.len() {
        let answered = match turns.get(i + 1) {
            Some(("user", next)) => ids(next, "tool_result", "tool_use_id"),
            _ => Vec::new(),
        };
        if turns[i].0 == "assistant" {
            turns[i].1.retain(|b| {
                b["type"] != "tool_use"
                    || b["id"]
                        .as_str()
                        .is_some_and(|id| answered.iter().any(|a| a == id))
            });
        } else {
            let previous = match i.checked_sub(1).map(|p| &turns[p]) {
                Some(("assistant", blocks)) => ids(blocks, "tool_use", "id"),
                _ => Vec::new(),
            };
            turns[i].1.retain(|b| {
                b["type"] != "tool_result"
                    || b["tool_use_id"]
                        .as_str()
                        .is_some_and(|id| previous.iter().any(|p| p == id))
            });
        }
    }
}

/// The API refuses empty text blocks, so empty text sends none.
fn text_blocks(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

#[derive(Debug)]
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        start_input: Value,
        json: String,
    },
    Other,
}

/// Sans-IO: Messages stream events in, [`LlmEvent`]s out.
#[derive(Debug, Default)]
pub(crate) struct EventDecoder {
    blocks: BTreeMap<u64, Block>,
    stop_reason: Option<FinishReason>,
    usage: Usage,
    saw_usage: bool,
    started: bool,
    done: bool,
}

fn protocol(detail: impl Into<String>) -> LlmError {
    LlmError::Protocol {
        provider: PROVIDER,
        what: "event",
        detail: detail.into(),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

impl EventDecoder {
    fn record_usage(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        let count = |name: &str| usage.get(name).and_then(Value::as_u64).map(|n| n as u32);
        if let Some(input) = count("input_tokens") {
            self.usage.input_tokens = input;
            self.saw_usage = true;
        }
        if let Some(output) = count("output_tokens") {
            self.usage.output_tokens = output;
            self.saw_usage = true;
        }
    }

    fn stop_block(&mut self, index: u64, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        if let Some(Block::ToolUse {
            id,
            name,
            start_input,
            json,
        }) = self.blocks.remove(&index)
        {
            let arguments = if json.trim().is_empty() {
                start_input
            } else {
                serde_json::from_str(&json).map_err(|error| LlmError::Protocol {
                    provider: PROVIDER,
                    what: "tool arguments",
                    detail: format!("{json} for `{name}`: {error}"),
                })?
            };
            out.push_back(LlmEvent::ToolCall {
                id,
                name,
                arguments,
            });
        }
        Ok(())
    }
}

impl WireDecoder for EventDecoder {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|error| protocol(format!("{error}: {}", excerpt(&event.data, 200))))?;
        let kind = str_at(&data, "/type")
            .or(event.event.as_deref())
            .unwrap_or("");
        let index = data.get("index").and_then(Value::as_u64);
        match kind {
            "message_start" => self.record_usage(data.pointer("/message/usage")),
            "content_block_start" => {
                let index = index.ok_or_else(|| protocol("content_block_start without index"))?;
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let entry = match str_at(block, "/type") {
                    Some("text") => {
                        if let Some(text) = str_at(block, "/text").filter(|t| !t.is_empty()) {
                            self.started = true;
                            out.push_back(LlmEvent::Token(text.to_string()));
                        }
                        Block::Text
                    }
                    Some("tool_use") => {
                        self.started = true;
                        Block::ToolUse {
                            id: str_at(block, "/id").unwrap_or_default().to_string(),
                            name: str_at(block, "/name").unwrap_or_default().to_string(),
                            start_input: block.get("input").cloned().unwrap_or_else(|| json!({})),
                            json: String::new(),
                        }
                    }
                    _ => Block::Other, // thinking and future block kinds are not spoken
                };
                self.blocks.insert(index, entry);
            }
            "content_block_delta" => {
                let index = index.ok_or_else(|| protocol("content_block_delta without index"))?;
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match (str_at(delta, "/type"), self.blocks.get_mut(&index)) {
                    (Some("text_delta"), _) => {
                        if let Some(text) = str_at(delta, "/text").filter(|t| !t.is_empty()) {
                            self.started = true;
                            out.push_back(LlmEvent::Token(text.to_string()));
                        }
                    }
                    (Some("input_json_delta"), Some(Block::ToolUse { json, .. })) => {
                        json.push_str(str_at(delta, "/partial_json").unwrap_or_default());
                    }
                    (Some("input_json_delta"), _) => {
                        return Err(protocol(format!(
                            "input_json_delta for block {index}, which is not a tool_use"
                        )));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = index.ok_or_else(|| protocol("content_block_stop without index"))?;
                self.stop_block(index, out)?;
            }
            "message_delta" => {
                if let Some(reason) = str_at(&data, "/delta/stop_reason") {
                    self.stop_reason = Some(match reason {
                        "end_turn" | "stop_sequence" => FinishReason::Stop,
                        "max_tokens" => FinishReason::Length,
                        "tool_use" => FinishReason::ToolCalls,
                        "refusal" => FinishReason::ContentFilter,
                        other => FinishReason::Other(other.to_string()),
                    });
                }
                self.record_usage(data.get("usage"));
            }
            "message_stop" => {
                let open: Vec<u64> = self.blocks.keys().copied().collect();
                for index in open {
                    self.stop_block(index, out)?;
                }
                self.done = true;
                out.push_back(LlmEvent::Done {
                    finish_reason: self.stop_reason.take().unwrap_or(FinishReason::Stop),
                    usage: self.saw_usage.then_some(self.usage),
                });
            }
            "error" => {
                return Err(LlmError::Provider {
                    provider: PROVIDER,
                    kind: str_at(&data, "/error/type").unwrap_or("error").to_string(),
                    message: str_at(&data, "/error/message")
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            _ => {} // ping, and event kinds added after this was written
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        Ok(()) // without message_stop the reply is incomplete; the shell reports it
    }

    fn started(&self) -> bool {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::{ToolCall, ToolDefinition};

    #[test]
    fn system_is_top_level_and_tool_results_join_the_user_turn() {
        let mut request = ChatRequest::new(
            "claude",
            vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("Book Monday"),
                ChatMessage::Assistant {
                    content: "One moment.".into(),
                    tool_calls: vec![ToolCall {
                        id: "t1".into(),
                        name: "book".into(),
                        arguments: json!({"day": "monday"}),
                    }],
                },
                ChatMessage::tool_result("t1", "{\"ok\":true}"),
                ChatMessage::user("Thanks"),
            ],
        );
        request.tools.push(ToolDefinition {
            name: "book".into(),
            description: "Books".into(),
            parameters: json!({"type": "object"}),
        });
        let body = request_body(&request);
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        let messages = body["messages"].as_array().expect("array");
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"][1]["type"], "tool_use");
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"][0]["type"], "tool_result");
        assert_eq!(messages[2]["content"][1]["text"], "Thanks");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    }

    fn roles(body: &Value) -> Vec<String> {
        body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["role"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    #[test]
    fn an_empty_system_prompt_is_left_out() {
        let body = request_body(&ChatRequest::new(
            "claude",
            vec![ChatMessage::system(""), ChatMessage::user("Hello")],
        ));
        assert!(body.get("system").is_none(), "{body}");
        assert_eq!(roles(&body), ["user"]);
    }

    #[test]
    fn the_greeting_before_the_caller_spoke_becomes_context_and_a_user_turn_opens() {
        let body = request_body(&ChatRequest::new(
            "claude",
            vec![
                ChatMessage::system("Be brief."),
                ChatMessage::Assistant {
                    content: "Hello, Acme dental.".into(),
                    tool_calls: Vec::new(),
                },
                ChatMessage::user("I need"),
                ChatMessage::user("an appointment"),
            ],
        ));
        assert_eq!(
            body["system"],
            "Be brief.\n\nYou have already said to the caller: \"Hello, Acme dental.\""
        );
        assert_eq!(roles(&body), ["user"]);
        assert_eq!(body["messages"][0]["content"][1]["text"], "an appointment");
        let only_greeting = request_body(&ChatRequest::new(
            "claude",
            vec![ChatMessage::Assistant {
                content: "Hello?".into(),
                tool_calls: Vec::new(),
            }],
        ));
        assert_eq!(roles(&only_greeting), ["user"]);
        assert_eq!(
            only_greeting["messages"][0]["content"][0]["text"],
            CALL_STARTED
        );
    }

    #[test]
    fn a_tool_call_cut_off_before_its_result_is_dropped_with_its_half() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "book".into(),
            arguments: json!({}),
        };
        let body = request_body(&ChatRequest::new(
            "claude",
            vec![
                ChatMessage::user("Book it"),
                ChatMessage::Assistant {
                    content: String::new(),
                    tool_calls: vec![call("cut")],
                },
                ChatMessage::user("Wait, no"),
                ChatMessage::Assistant {
                    content: "Sure.".into(),
                    tool_calls: vec![call("t2")],
                },
                ChatMessage::user("and Friday"),
                ChatMessage::tool_result("t2", "ok"),
                ChatMessage::tool_result("stray", "?"),
            ],
        ));
        assert_eq!(roles(&body), ["user", "assistant", "user"], "{body}");
        assert_eq!(body["messages"][0]["content"][1]["text"], "Wait, no");
        let last = &body["messages"][2]["content"];
        assert_eq!(last[0]["type"], "tool_result", "results first: {last}");
        assert_eq!(last[0]["tool_use_id"], "t2");
        assert_eq!(
            last.as_array().map(Vec::len),
            Some(2),
            "stray result dropped"
        );
    }

    #[test]
    fn error_event_ends_the_reply_with_its_kind() {
        let mut decoder = EventDecoder::default();
        let event = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
            id: None,
        };
        let result = decoder.on_event(event, &mut VecDeque::new());
        assert!(
            matches!(result, Err(LlmError::Provider { kind, .. }) if kind == "overloaded_error")
        );
    }
}

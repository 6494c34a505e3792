//! The `openai` language model: any endpoint that speaks OpenAI's Chat Completions with SSE
//! streaming — OpenAI itself, Groq, Together, vLLM, llama.cpp's server, Ollama; `base_url` decides.
//! Text arrives as `delta.content`; a tool call arrives in fragments keyed by `index` (id and name
//! first, then the JSON arguments a few characters at a time), which are accumulated here and
//! emitted as whole [`LlmEvent::ToolCall`]s when the choice finishes. The stream ends with
//! `data: [DONE]`.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use serde_json::{json, Value};

use super::http_stream::{stream_reply, StreamTimeouts, WireDecoder};
use super::sse::SseEvent;
use super::types::{ChatMessage, ChatRequest, FinishReason, LlmError, LlmEvent, Usage};
use super::{LanguageModel, LlmStream};

const PROVIDER: &str = "openai";

/// Where and how to reach an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL up to and including the version, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// Bearer key; local servers often need none.
    pub api_key: Option<String>,
    /// First-token and idle budgets.
    pub timeouts: StreamTimeouts,
    /// Ask for token usage in the final chunk (`stream_options.include_usage`); turn off for
    /// servers that reject unknown fields.
    pub include_usage: bool,
}

impl OpenAiConfig {
    /// A configuration for `base_url` with default budgets and usage reporting on.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            timeouts: StreamTimeouts::default(),
            include_usage: true,
        }
    }
}

/// A Chat Completions client; cheap to clone, and shares its connection pool when cloned.
#[derive(Debug, Clone)]
pub struct OpenAiModel {
    http: reqwest::Client,
    config: OpenAiConfig,
}

impl OpenAiModel {
    /// A client over a shared `reqwest::Client` (reuse one per edge: pooled TLS connections
    /// save a handshake on every turn).
    pub fn new(http: reqwest::Client, config: OpenAiConfig) -> Self {
        Self { http, config }
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }
}

impl LanguageModel for OpenAiModel {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn stream_chat(&self, request: ChatRequest) -> LlmStream {
        let url = self.endpoint();
        let mut builder = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&request_body(&request, self.config.include_usage));
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key);
        }
        stream_reply(
            PROVIDER,
            builder,
            url,
            ChunkDecoder::default(),
            self.config.timeouts,
        )
    }
}

/// The JSON body of a streamed Chat Completions request.
pub(crate) fn request_body(request: &ChatRequest, include_usage: bool) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": true,
    });
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                }})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

fn wire_message(message: &ChatMessage) -> Value {
    match message {
        ChatMessage::System { content } => json!({"role": "system", "content": content}),
        ChatMessage::User { content } => json!({"role": "user", "content": content}),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            let mut wire = json!({"role": "assistant", "content": content});
            if !tool_calls.is_empty() {
                let calls: Vec<Value> = tool_calls
                    .iter()
                    .map(|call| {
                        json!({"id": call.id, "type": "function", "function": {
                            "name": call.name,
                            "arguments": call.arguments.to_string(),
                        }})
                    })
                    .collect();
                wire["tool_calls"] = Value::Array(calls);
                if content.is_empty() {
                    wire["content"] = Value::Null;
                }
            }
            wire
        }
        ChatMessage::Tool { call_id, content } => {
            json!({"role": "tool", "tool_call_id": call_id, "content": content})
        }
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    /// A string fragment per the protocol; some servers send the whole object.
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Sans-IO: Chat Completions chunks in, [`LlmEvent`]s out.
#[derive(Debug, Default)]
pub(crate) struct ChunkDecoder {
    calls: BTreeMap<u32, PartialCall>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    started: bool,
    done: bool,
}

impl ChunkDecoder {
    fn flush_calls(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        for (index, call) in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                return Err(LlmError::Protocol {
                    provider: PROVIDER,
                    what: "tool call",
                    detail: format!("tool call {index} has no function name"),
                });
            }
            let arguments = if call.arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&call.arguments).map_err(|error| LlmError::Protocol {
                    provider: PROVIDER,
                    what: "tool arguments",
                    detail: format!("{} for `{}`: {error}", call.arguments, call.name),
                })?
            };
            // Some local servers leave the id out; the result still needs one to refer to.
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id
            };
            out.push_back(LlmEvent::ToolCall {
                id,
                name: call.name,
                arguments,
            });
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        self.flush_calls(out)?;
        self.done = true;
        out.push_back(LlmEvent::Done {
            finish_reason: self.finish_reason.take().unwrap_or(FinishReason::Stop),
            usage: self.usage,
        });
        Ok(())
    }
}

impl WireDecoder for ChunkDecoder {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        if event.is_done_sentinel() {
            return self.finish(out);
        }
        let chunk: Chunk =
            serde_json::from_str(&event.data).map_err(|error| LlmError::Protocol {
                provider: PROVIDER,
                what: "chunk",
                detail: format!("{error}: {}", super::types::excerpt(&event.data, 200)),
            })?;
        if let Some(error) = chunk.error {
            let field = |name: &str| error.get(name).and_then(Value::as_str).map(str::to_owned);
            return Err(LlmError::Provider {
                provider: PROVIDER,
                kind: field("type").unwrap_or_else(|| "error".into()),
                message: field("message").unwrap_or_else(|| error.to_string()),
            });
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
            });
        }
        // Only the first choice is spoken; we never ask for more than one.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.started = true;
                    out.push_back(LlmEvent::Token(text));
                }
                for (position, fragment) in
                    delta.tool_calls.unwrap_or_default().into_iter().enumerate()
                {
                    self.started = true;
                    let index = fragment.index.unwrap_or(position as u32);
                    let call = self.calls.entry(index).or_default();
                    if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
                        call.id = id;
                    }
                    if let Some(function) = fragment.function {
                        if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                            call.name = name;
                        }
                        match function.arguments {
                            Some(Value::String(piece)) => call.arguments.push_str(&piece),
                            Some(Value::Null) | None => {}
                            Some(whole) => call.arguments = whole.to_string(),
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish_reason = Some(match reason.as_str() {
                    "stop" => FinishReason::Stop,
                    "length" => FinishReason::Length,
                    "tool_calls" | "function_call" => FinishReason::ToolCalls,
                    "content_filter" => FinishReason::ContentFilter,
                    other => FinishReason::Other(other.to_string()),
                });
                // Tool calls are complete now; hand them out before the usage chunk arrives.
                self.flush_calls(out)?;
            }
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError> {
        // Some servers close without `[DONE]`; a finish reason says the reply was whole.
        if !self.done && self.finish_reason.is_some() {
            self.finish(out)?;
        }
        Ok(())
    }

    fn started(&self) -> bool {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(lines: &[&str]) -> Result<Vec<LlmEvent>, LlmError> {
        let mut decoder = ChunkDecoder::default();
        let mut out = VecDeque::new();
        for data in lines {
            let event = SseEvent {
                data: (*data).to_string(),
                ..Default::default()
            };
            decoder.on_event(event, &mut out)?;
        }
        decoder.on_end(&mut out)?;
        Ok(out.into_iter().collect())
    }

    #[test]
    fn tool_call_fragments_are_joined_by_index() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"book","arguments":""}},{"index":1,"id":"b","function":{"name":"hang_up","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"day\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"mon\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4}}"#,
            "[DONE]",
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                LlmEvent::ToolCall {
                    id: "a".into(),
                    name: "book".into(),
                    arguments: json!({"day": "mon"})
                },
                LlmEvent::ToolCall {
                    id: "b".into(),
                    name: "hang_up".into(),
                    arguments: json!({})
                },
                LlmEvent::Done {
                    finish_reason: FinishReason::ToolCalls,
                    usage: Some(Usage {
                        input_tokens: 9,
                        output_tokens: 4
                    })
                },
            ]
        );
    }

    #[test]
    fn text_then_done_without_the_sentinel_still_completes() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":""}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"end_call","arguments":{}}}]},"finish_reason":null,"usage":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                LlmEvent::Token("Hi".into()),
                LlmEvent::ToolCall {
                    id: "call_0".into(),
                    name: "end_call".into(),
                    arguments: json!({})
                },
                LlmEvent::Done {
                    finish_reason: FinishReason::Stop,
                    usage: None
                },
            ]
        );
    }

    #[test]
    fn broken_tool_arguments_are_a_protocol_error() {
        let result = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"x","arguments":"{oops"}}]},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert!(matches!(
            result,
            Err(LlmError::Protocol {
                what: "tool arguments",
                ..
            })
        ));
    }

    #[test]
    fn in_stream_error_objects_become_provider_errors() {
        let result = decode(&[r#"{"error":{"type":"server_error","message":"boom"}}"#]);
        assert!(matches!(result, Err(LlmError::Provider { kind, .. }) if kind == "server_error"));
    }

    #[test]
    fn assistant_tool_calls_are_sent_with_string_arguments() {
        let request = ChatRequest::new(
            "m",
            vec![
                ChatMessage::Assistant {
                    content: String::new(),
                    tool_calls: vec![super::super::ToolCall {
                        id: "a".into(),
                        name: "book".into(),
                        arguments: json!({"day": "mon"}),
                    }],
                },
                ChatMessage::tool_result("a", "booked"),
            ],
        );
        let body = request_body(&request, false);
        assert_eq!(
            body["messages"][0]["tool_calls"][0]["function"]["arguments"],
            "{\"day\":\"mon\"}"
        );
        assert_eq!(body["messages"][1]["tool_call_id"], "a");
        assert!(body.get("stream_options").is_none());
    }
}

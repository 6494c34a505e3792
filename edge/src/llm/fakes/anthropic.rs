//! The Anthropic Messages side of the fake: a scripted reply as named SSE events —
//! `message_start`, a text block (`content_block_start`, `ping`, `text_delta`s,
//! `content_block_stop`), one `tool_use` block per tool call with `input_json_delta` fragments,
//! then `message_delta` with the stop reason and usage, and `message_stop`; or an `error` event.
//!
//! Before replying it holds the request to the Messages API's documented rules ([`refusal`]) and
//! answers one that breaks them as the API does — 400 with
//! `{"type":"error","error":{"type":"invalid_request_error","message":...}}` — so a request the
//! real API would refuse fails a test instead of passing against a lenient fake.

use serde_json::{json, Value};

use super::script::{fragments, model_of, rough_tokens, StepWriter};
use super::{FakeFailure, FakeReply, Step};

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The body of a streamed reply to `request`.
pub(super) fn steps(reply: &FakeReply, request: &Value) -> Vec<Step> {
    let start = json!({"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model_of(request),
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": rough_tokens(request), "output_tokens": 1}}});
    let mut out = StepWriter::new(reply, event("message_start", start));
    let mut block = 0;
    if !reply.tokens.is_empty() {
        out.frame(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": block,
                   "content_block": {"type": "text", "text": ""}}),
        ));
        out.frame(event("ping", json!({"type": "ping"})));
        let deltas = reply
            .tokens
            .iter()
            .map(|token| json!({"type": "text_delta", "text": token}));
        if !content_block(&mut out, block, deltas) {
            return out.finish();
        }
        block += 1;
    }
    for call in &reply.tool_calls {
        let start = json!({"type": "content_block_start", "index": block,
                           "content_block": {"type": "tool_use", "id": call.id,
                                             "name": call.name, "input": {}}});
        if !out.token(event("content_block_start", start)) {
            return out.finish();
        }
        let deltas = fragments(&call.arguments.to_string(), 3)
            .into_iter()
            .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}));
        if !content_block(&mut out, block, deltas) {
            return out.finish();
        }
        block += 1;
    }
    if out.cut_at_end() {
        return out.finish();
    }
    if let Some(FakeFailure::ErrorEvent { kind, message }) = &reply.failure {
        let error = json!({"type": "error", "error": {"type": kind, "message": message}});
        out.frame(event("error", error));
        return out.finish();
    }
    let stop_reason = if reply.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    out.frame(event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": out.sent()}}),
    ));
    out.frame(event("message_stop", json!({"type": "message_stop"})));
    out.finish()
}

/// A content block's deltas as tokens, then its `content_block_stop`; `false` when the script
/// cut the stream inside it.
fn content_block(out: &mut StepWriter, block: usize, deltas: impl Iterator<Item = Value>) -> bool {
    for delta in deltas {
        let delta = json!({"type": "content_block_delta", "index": block, "delta": delta});
        if !out.token(event("content_block_delta", delta)) {
            return false;
        }
    }
    out.frame(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": block}),
    ));
    true
}

/// Why the real Messages API would refuse `body` with 400 `invalid_request_error`, if it would:
/// a model and a positive `max_tokens`; a non-empty `system` when given; at least one message,
/// the first the user's, roles alternating user and assistant; no empty content or text block;
/// `tool_use` only from the assistant, each answered by a `tool_result` in the next message, and
/// each `tool_result` (the user's, before any text of its message) answering a `tool_use` of the
/// message before.
pub(super) fn refusal(body: &Value) -> Option<String> {
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Some("model: Field required".into());
    }
    if body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|n| n == 0)
    {
        return Some("max_tokens: Field required and must be at least 1".into());
    }
    match body.get("system") {
        None => {}
        Some(Value::String(text)) if !text.trim().is_empty() => {}
        Some(Value::String(_)) => {
            return Some("system: text content blocks must be non-empty".into())
        }
        Some(Value::Array(blocks))
            if blocks
                .iter()
                .any(|b| b["text"].as_str().is_none_or(|t| t.trim().is_empty())) =>
        {
            return Some("system: text content blocks must be non-empty".into());
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Some("system: Input should be a valid string or list".into()),
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Some("messages: Field required".into());
    };
    if messages.is_empty() {
        return Some("messages: at least one message is required".into());
    }
    let mut previous_tool_uses: Vec<String> = Vec::new();
    let mut previous_role = "";
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Some(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if i == 0 && role != "user" {
            return Some("messages: first message must use the \"user\" role".into());
        }
        if role == previous_role {
            return Some(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row"
            ));
        }
        let blocks: Vec<Value> = match &message["content"] {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks.clone(),
            _ => return Some(format!("messages.{i}.content: Field required")),
        };
        if blocks.is_empty() {
            return Some(format!(
                "messages.{i}: all messages must have non-empty content"
            ));
        }
        let mut tool_uses = Vec::new();
        let mut answered = Vec::new();
        let mut seen_text = false;
        for (j, block) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match block["type"].as_str().unwrap_or("") {
                "text" => {
                    if block["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                        return Some(format!("{at}: text content blocks must be non-empty"));
                    }
                    seen_text = true;
                }
                "tool_use" if role == "assistant" => {
                    tool_uses.push(block["id"].as_str().unwrap_or("").to_string());
                }
                "tool_result" if role == "user" => {
                    if seen_text {
                        return Some(format!(
                            "{at}: tool_result blocks must come first in the content of a user message"
                        ));
                    }
                    let id = block["tool_use_id"].as_str().unwrap_or("");
                    if !previous_tool_uses.iter().any(|p| p == id) {
                        return Some(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                    answered.push(id.to_string());
                }
                other => {
                    return Some(format!(
                        "{at}: a `{other}` block is not allowed in a {role} message"
                    ))
                }
            }
        }
        if role == "user" {
            let unanswered: Vec<&str> = previous_tool_uses
                .iter()
                .map(String::as_str)
                .filter(|id| !answered.iter().any(|a| a == id))
                .collect();
            if !unanswered.is_empty() {
                return Some(format!(
                    "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    i - 1,
                    unanswered.join(", ")
                ));
            }
        }
        previous_tool_uses = tool_uses;
        previous_role = role;
    }
    None
}

/// The 400 body the Messages API answers a refused request with.
pub(super) fn refusal_body(message: &str) -> String {
    json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
        .to_string()
}

//! The OpenAI Chat Completions side of the fake: a scripted reply as `chat.completion.chunk`
//! events — a role chunk, one chunk per token, tool calls as indexed fragments (id and name
//! first, then the arguments in pieces), a finish chunk, a usage chunk when the request asked for
//! one, and `data: [DONE]`.

use serde_json::{json, Value};

use super::script::{fragments, model_of, rough_tokens, StepWriter};
use super::{FakeFailure, FakeReply, Step};

fn chunk(model: &str, choices: Value) -> String {
    let chunk = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
    });
    format!("data: {chunk}\n\n")
}

fn delta(model: &str, delta: Value) -> String {
    chunk(
        model,
        json!([{"index": 0, "delta": delta, "finish_reason": null}]),
    )
}

/// The body of a streamed reply to `request`.
pub(super) fn steps(reply: &FakeReply, request: &Value) -> Vec<Step> {
    let model = model_of(request);
    let mut out = StepWriter::new(
        reply,
        delta(model, json!({"role": "assistant", "content": ""})),
    );
    for token in &reply.tokens {
        if !out.token(delta(model, json!({"content": token}))) {
            return out.finish();
        }
    }
    for (index, call) in reply.tool_calls.iter().enumerate() {
        let opening = json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                              "function": {"name": call.name, "arguments": ""}}]});
        if !out.token(delta(model, opening)) {
            return out.finish();
        }
        for piece in fragments(&call.arguments.to_string(), 3) {
            let fragment =
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            if !out.token(delta(model, fragment)) {
                return out.finish();
            }
        }
    }
    if out.cut_at_end() {
        return out.finish();
    }
    if let Some(FakeFailure::ErrorEvent { kind, message }) = &reply.failure {
        let error = json!({"error": {"type": kind, "message": message}});
        out.frame(format!("data: {error}\n\n"));
        return out.finish();
    }
    let finish_reason = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    out.frame(chunk(
        model,
        json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]),
    ));
    if request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)) {
        let usage = json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [],
            "usage": {"prompt_tokens": rough_tokens(request), "completion_tokens": out.sent(),
                      "total_tokens": rough_tokens(request) + out.sent() as u32},
        });
        out.frame(format!("data: {usage}\n\n"));
    }
    out.frame("data: [DONE]\n\n".into());
    out.finish()
}

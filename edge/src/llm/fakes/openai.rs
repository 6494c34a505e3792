//! The OpenAI Chat Completions side of the fake: a scripted reply as `chat.completion.chunk`
//! events — a role chunk, one chunk per token, tool calls as indexed fragments (id and name
//! first, then the arguments in pieces), a finish chunk, a usage chunk when the request asked for
//! one, and `data: [DONE]`.

use serde_json::{json, Value};

use super::script::{fragments, rough_tokens};
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
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake");
    let cut_after = match reply.failure {
        Some(FakeFailure::CutAfter(n)) => Some(n),
        _ => None,
    };
    let mut steps = vec![Step::Frame(delta(
        model,
        json!({"role": "assistant", "content": ""}),
    ))];
    let mut sent = 0;
    let mut push_token = |steps: &mut Vec<Step>, frame: String| -> bool {
        if cut_after == Some(sent) {
            steps.push(Step::Cut);
            return false;
        }
        steps.push(Step::Token(frame));
        sent += 1;
        true
    };
    for token in &reply.tokens {
        if !push_token(&mut steps, delta(model, json!({"content": token}))) {
            return steps;
        }
    }
    for (index, call) in reply.tool_calls.iter().enumerate() {
        let opening = json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                              "function": {"name": call.name, "arguments": ""}}]});
        if !push_token(&mut steps, delta(model, opening)) {
            return steps;
        }
        for piece in fragments(&call.arguments.to_string(), 3) {
            let fragment =
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
            if !push_token(&mut steps, delta(model, fragment)) {
                return steps;
            }
        }
    }
    if cut_after.is_some() {
        steps.push(Step::Cut);
        return steps;
    }
    if let Some(FakeFailure::ErrorEvent { kind, message }) = &reply.failure {
        let error = json!({"error": {"type": kind, "message": message}});
        steps.push(Step::Frame(format!("data: {error}\n\n")));
        return steps;
    }
    let finish_reason = if reply.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    steps.push(Step::Frame(chunk(
        model,
        json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]),
    )));
    if request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)) {
        let usage = json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [],
            "usage": {"prompt_tokens": rough_tokens(request), "completion_tokens": sent,
                      "total_tokens": rough_tokens(request) + sent as u32},
        });
        steps.push(Step::Frame(format!("data: {usage}\n\n")));
    }
    steps.push(Step::Frame("data: [DONE]\n\n".into()));
    steps
}

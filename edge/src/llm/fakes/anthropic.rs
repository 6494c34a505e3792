//! The Anthropic Messages side of the fake: a scripted reply as named SSE events —
//! `message_start`, a text block (`content_block_start`, `ping`, `text_delta`s,
//! `content_block_stop`), one `tool_use` block per tool call with `input_json_delta` fragments,
//! then `message_delta` with the stop reason and usage, and `message_stop`; or an `error` event.

use serde_json::{json, Value};

use super::script::{fragments, rough_tokens};
use super::{FakeFailure, FakeReply, Step};

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
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
    let mut steps = vec![Step::Frame(event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": rough_tokens(request), "output_tokens": 1}}}),
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
    let mut block = 0;
    if !reply.tokens.is_empty() {
        steps.push(Step::Frame(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": block,
                   "content_block": {"type": "text", "text": ""}}),
        )));
        steps.push(Step::Frame(event("ping", json!({"type": "ping"}))));
        for token in &reply.tokens {
            let delta = json!({"type": "content_block_delta", "index": block,
                               "delta": {"type": "text_delta", "text": token}});
            if !push_token(&mut steps, event("content_block_delta", delta)) {
                return steps;
            }
        }
        steps.push(Step::Frame(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": block}),
        )));
        block += 1;
    }
    for call in &reply.tool_calls {
        let start = json!({"type": "content_block_start", "index": block,
                           "content_block": {"type": "tool_use", "id": call.id,
                                             "name": call.name, "input": {}}});
        if !push_token(&mut steps, event("content_block_start", start)) {
            return steps;
        }
        for piece in fragments(&call.arguments.to_string(), 3) {
            let delta = json!({"type": "content_block_delta", "index": block,
                               "delta": {"type": "input_json_delta", "partial_json": piece}});
            if !push_token(&mut steps, event("content_block_delta", delta)) {
                return steps;
            }
        }
        steps.push(Step::Frame(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": block}),
        )));
        block += 1;
    }
    if cut_after.is_some() {
        steps.push(Step::Cut);
        return steps;
    }
    if let Some(FakeFailure::ErrorEvent { kind, message }) = &reply.failure {
        let error = json!({"type": "error", "error": {"type": kind, "message": message}});
        steps.push(Step::Frame(event("error", error)));
        return steps;
    }
    let stop_reason = if reply.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    steps.push(Step::Frame(event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": sent}}),
    )));
    steps.push(Step::Frame(event(
        "message_stop",
        json!({"type": "message_stop"}),
    )));
    steps
}

//! The built-in tools every agent's model is offered besides the customer's own: `end_call`,
//! `transfer_call` (only when the agent names transfer destinations, and only to one of them:
//! a model must not be talked into sending a call to any number a caller says) and `send_dtmf`.
//! Their arguments are checked here, and a bad one becomes an error the model reads and
//! corrects rather than a failed call.

use serde_json::{json, Value};

use super::{END_CALL_TOOL, SEND_DTMF_TOOL, TRANSFER_CALL_TOOL};
use crate::llm::ToolDefinition;

/// Most keys one `send_dtmf` call may press.
const MAX_DIGITS: usize = 32;

/// The built-in tools offered with an agent that may transfer to `destinations`.
pub(super) fn definitions(destinations: &[String]) -> Vec<ToolDefinition> {
    let mut tools = vec![
        ToolDefinition {
            name: END_CALL_TOOL.into(),
            description: "Hang up the call after your last words. Use it when the caller says goodbye or the conversation is over.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
        ToolDefinition {
            name: SEND_DTMF_TOOL.into(),
            description: "Press telephone keys toward the other party, for example to choose an option in a phone menu.".into(),
            parameters: json!({"type": "object", "properties": {
                "digits": {"type": "string", "description": "The keys to press, in order: 0-9, *, #, A-D."}
            }, "required": ["digits"]}),
        },
    ];
    if !destinations.is_empty() {
        tools.push(ToolDefinition {
            name: TRANSFER_CALL_TOOL.into(),
            description: format!(
                "Transfer the caller to another line after your last words; you leave the call. Allowed destinations: {}.",
                destinations.join(", ")
            ),
            parameters: json!({"type": "object", "properties": {
                "destination": {"type": "string", "enum": destinations,
                                "description": "Where to transfer the call."},
                "mode": {"type": "string", "enum": ["blind", "warm"],
                         "description": "blind (default): hand the call over at once. warm: dial first, the caller stays with you while it rings, the person answering hears your whisper, then the caller is connected to them."},
                "whisper": {"type": "string",
                            "description": "Warm only: a short summary said to the person answering, before the caller is connected."}
            }, "required": ["destination"]}),
        });
    }
    tools
}

/// A warm `transfer_call` (`mode: "warm"`): its whisper for the answering party, empty when it
/// gave none (at most 500 characters are said); `None` for a blind transfer.
pub(super) fn warm_whisper(arguments: &Value) -> Option<String> {
    if arguments.get("mode").and_then(Value::as_str) != Some("warm") {
        return None;
    }
    let whisper = arguments
        .get("whisper")
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(whisper.trim().chars().take(500).collect())
}

/// The destination of a `transfer_call`, if it is one the agent allows; else the error the
/// model is told.
pub(super) fn transfer_destination(
    allowed: &[String],
    arguments: &Value,
) -> Result<String, &'static str> {
    if allowed.is_empty() {
        return Err("error: this agent cannot transfer calls; tell the caller you cannot do that");
    }
    let Some(destination) = arguments.get("destination").and_then(Value::as_str) else {
        return Err("error: `destination` is required");
    };
    let destination = destination.trim();
    allowed
        .iter()
        .find(|d| d.trim() == destination)
        .map(|d| d.trim().to_owned())
        .ok_or("error: `destination` must be one of the allowed destinations")
}

/// The keys of a `send_dtmf` (upper-cased), or the error the model is told.
pub(super) fn dtmf_digits(arguments: &Value) -> Result<String, &'static str> {
    let Some(digits) = arguments.get("digits").and_then(Value::as_str) else {
        return Err("error: `digits` is required");
    };
    let digits: String = digits
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if digits.is_empty() || digits.chars().count() > MAX_DIGITS {
        return Err("error: `digits` must hold 1 to 32 keys");
    }
    if !digits.chars().all(|c| "0123456789*#ABCD".contains(c)) {
        return Err("error: `digits` may only hold 0-9, *, # and A-D");
    }
    Ok(digits)
}

/// The `transfer_call` tool's result once the transfer failed, for the model to answer in
/// context: `{"transferred": false, "status": 486, "reason": "Busy Here"}` when `reason` (the
/// SIP side's description) names a final status, else the description itself as the reason.
pub(super) fn transfer_failure(reason: &str) -> String {
    let words: Vec<&str> = reason.split_whitespace().collect();
    let status = words.iter().enumerate().find_map(|(i, w)| {
        let code = w.trim_end_matches([':', ',']).parse::<u16>().ok()?;
        (300..=699).contains(&code).then_some((i, code))
    });
    let result = match status {
        Some((i, code)) => {
            let phrase = words[i + 1..].join(" ");
            let phrase = if phrase.is_empty() {
                reason.trim().to_string()
            } else {
                phrase
            };
            json!({"transferred": false, "status": code, "reason": phrase})
        }
        None => json!({"transferred": false, "reason": reason.trim()}),
    };
    result.to_string()
}

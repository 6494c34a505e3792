//! The built-in `transfer_call` and `send_dtmf` tools, driven with a scripted model and
//! simulated time.

use super::tests::{completion, config, done, spoken, token, Harness};
use super::*;

fn transferring_agent() -> ConversationConfig {
    ConversationConfig {
        first_message: None,
        transfer_destinations: vec!["+15550100".into(), "sip:sales@pbx.example".into()],
        ..config()
    }
}

fn tool_call(id: &str, name: &str, arguments: serde_json::Value) -> LlmEvent {
    LlmEvent::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

#[test]
fn transfer_call_is_offered_only_with_destinations_and_lists_them() {
    let mut h = Harness::new(transferring_agent());
    let (_, _, request) = completion(&h.caller_says(0, "Sales, please."));
    let transfer = request
        .tools
        .iter()
        .find(|t| t.name == TRANSFER_CALL_TOOL)
        .expect("offered");
    assert_eq!(
        transfer.parameters["properties"]["destination"]["enum"],
        serde_json::json!(["+15550100", "sip:sales@pbx.example"])
    );
    assert!(request.tools.iter().any(|t| t.name == SEND_DTMF_TOOL));

    let mut h = Harness::without_greeting();
    let (_, _, request) = completion(&h.caller_says(0, "Sales, please."));
    assert!(!request.tools.iter().any(|t| t.name == TRANSFER_CALL_TOOL));
}

#[test]
fn transfer_call_transfers_after_the_last_words_and_a_failure_goes_back_to_the_model() {
    let mut h = Harness::new(transferring_agent());
    let speak = h.model_answers(
        "Sales, please.",
        vec![
            token("Putting you through."),
            tool_call(
                "t1",
                TRANSFER_CALL_TOOL,
                serde_json::json!({"destination": "sip:sales@pbx.example"}),
            ),
            done(),
        ],
    );
    assert_eq!(spoken(&speak), ["Putting you through."]);
    assert!(
        !speak.iter().any(|a| matches!(a, Action::Complete { .. })),
        "the model is not asked again: the agent says nothing more"
    );
    assert_eq!(
        h.play_out(&speak),
        [Action::Transfer {
            destination: "sip:sales@pbx.example".into(),
            warm: None,
        }]
    );
    assert_eq!(h.c.poll_timeout(), None, "no reprompt while transferring");
    // The far end refused: the model is told, as the tool's result, and answers.
    h.c.on_transfer_failed(h.at(3000), "the transfer target answered 486 Busy Here");
    let asked = h.drain();
    assert!(spoken(&asked).is_empty(), "no fixed line: {asked:?}");
    let (_, stream, request) = completion(&asked);
    let result = request
        .messages
        .iter()
        .find_map(|m| match m {
            ChatMessage::Tool { call_id, content } if call_id == "t1" => Some(content.clone()),
            _ => None,
        })
        .expect("the transfer's result is in the history");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&result).expect("JSON"),
        serde_json::json!({"transferred": false, "status": 486, "reason": "Busy Here"})
    );
    let said = h.stream(
        3200,
        stream,
        vec![token("Sales is busy. Shall I take a message?"), done()],
    );
    assert_eq!(spoken(&said), ["Sales is busy.", "Shall I take a message?"]);
    h.synthesize(3210, &said);
    h.c.on_played(h.at(3500), 3000);
    assert!(h.c.poll_timeout().is_some(), "the reprompt is armed again");
    // A second report of failure says nothing more.
    h.c.on_transfer_failed(h.at(4000), "486 Busy Here");
    assert!(h.drain().is_empty());
}

#[test]
fn a_destination_not_allowed_goes_back_to_the_model_as_an_error() {
    let mut h = Harness::new(transferring_agent());
    let next = h.model_answers(
        "Call 900 please.",
        vec![
            tool_call(
                "t1",
                TRANSFER_CALL_TOOL,
                serde_json::json!({"destination": "+1900555"}),
            ),
            done(),
        ],
    );
    assert!(!next.iter().any(|a| matches!(a, Action::Transfer { .. })));
    let (_, _, request) = completion(&next);
    let result = request.messages.last().expect("tool result");
    assert!(
        format!("{result:?}").contains("must be one of the allowed destinations"),
        "{result:?}"
    );
}

#[test]
fn send_dtmf_presses_checked_keys_and_the_model_carries_on() {
    let mut h = Harness::without_greeting();
    let next = h.model_answers(
        "Press one then hash.",
        vec![
            tool_call("d1", SEND_DTMF_TOOL, serde_json::json!({"digits": "1 #a"})),
            done(),
        ],
    );
    assert_eq!(
        next.first(),
        Some(&Action::SendDtmf {
            digits: "1#A".into()
        })
    );
    let (_, stream, request) = completion(&next);
    assert!(format!("{:?}", request.messages.last()).contains("The keys were pressed."));
    let bad = h.stream(
        1800,
        stream,
        vec![
            tool_call("d2", SEND_DTMF_TOOL, serde_json::json!({"digits": "12x"})),
            done(),
        ],
    );
    assert!(!bad.iter().any(|a| matches!(a, Action::SendDtmf { .. })));
    let (_, _, request) = completion(&bad);
    assert!(format!("{:?}", request.messages.last()).contains("may only hold"));
}

#[test]
fn send_dtmf_on_a_call_that_cannot_carry_digits_is_an_error_the_model_reads() {
    let mut h = Harness::new(ConversationConfig {
        first_message: None,
        sends_digits: false,
        ..config()
    });
    let next = h.model_answers(
        "Press one.",
        vec![
            tool_call("d1", SEND_DTMF_TOOL, serde_json::json!({"digits": "1"})),
            done(),
        ],
    );
    assert!(!next.iter().any(|a| matches!(a, Action::SendDtmf { .. })));
    let (_, _, request) = completion(&next);
    assert!(
        format!("{:?}", request.messages.last()).contains("digits cannot be sent on this call"),
        "{:?}",
        request.messages.last()
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        ConversationEvent::Tool { name, error: Some(_), .. } if name == SEND_DTMF_TOOL
    )));
}

#[test]
fn a_transfer_failing_while_the_caller_is_answered_is_spoken_as_the_fixed_line() {
    let mut h = Harness::new(transferring_agent());
    let (_, stream, _) = completion(&h.caller_says(0, "Sales, please."));
    let call = tool_call(
        "t1",
        TRANSFER_CALL_TOOL,
        serde_json::json!({"destination": "+15550100"}),
    );
    let speak = h.stream(1700, stream, vec![token("One moment."), call, done()]);
    h.synthesize(1710, &speak);
    h.c.on_played(h.at(1900), 1000);
    assert!(matches!(h.drain()[..], [Action::Transfer { .. }]));
    // The caller speaks on while the transfer rings: the model is already answering them.
    let asked = h.caller_says(2000, "Hello?");
    let (_, _, request) = completion(&asked);
    h.c.on_transfer_failed(h.at(3700), "no final NOTIFY within 30 s");
    assert_eq!(spoken(&h.drain()), [Lines::default().transfer_failed]);
    assert!(request
        .messages
        .iter()
        .any(|m| matches!(m, ChatMessage::Tool { .. })));
    let result = h.c.history().iter().find_map(|m| match m {
        ChatMessage::Tool { content, .. } => Some(content.clone()),
        _ => None,
    });
    assert_eq!(
        result.as_deref(),
        Some(r#"{"reason":"no final NOTIFY within 30 s","transferred":false}"#),
        "the history still learns the outcome for the next turn"
    );
}

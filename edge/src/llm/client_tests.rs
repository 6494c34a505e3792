//! The real provider clients against the fake provider servers: streaming, tool calls, failures,
//! timeouts, fallback and cancellation, over real local HTTP. Latencies are set far from the
//! thresholds they test (200 ms against 2 s) and nothing asserts on speed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::fakes::{FakeFailure, FakeLlmServer, FakeReply, StreamOutcome};
use super::*;
use freya_shared::model::rules::{RuleSpec, RulesSpec};

const SLOW: Duration = Duration::from_secs(2);
const BUDGET: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(5);

fn openai(server: &FakeLlmServer) -> OpenAiModel {
    OpenAiModel::new(
        reqwest::Client::new(),
        OpenAiConfig::new(server.base_url(), Some("sk-test".into())),
    )
}

fn anthropic(server: &FakeLlmServer) -> AnthropicModel {
    AnthropicModel::new(
        reqwest::Client::new(),
        AnthropicConfig::new(server.base_url(), "ant-test"),
    )
}

fn request() -> ChatRequest {
    let mut request = ChatRequest::new(
        "test-model",
        vec![
            ChatMessage::system("You are the front desk of Acme."),
            ChatMessage::user("When are you open?"),
        ],
    );
    request.temperature = Some(0.3);
    request.tools.push(ToolDefinition {
        name: "book_appointment".into(),
        description: "Books an appointment".into(),
        parameters: json!({"type": "object", "properties": {"day": {"type": "string"}}}),
    });
    request
}

async fn collect(stream: LlmStream) -> Vec<Result<LlmEvent, LlmError>> {
    stream.collect().await
}

fn text_of(events: &[Result<LlmEvent, LlmError>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::Token(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn finish_reason(events: &[Result<LlmEvent, LlmError>]) -> Option<FinishReason> {
    events.iter().find_map(|e| match e {
        Ok(LlmEvent::Done { finish_reason, .. }) => Some(finish_reason.clone()),
        _ => None,
    })
}

#[tokio::test]
async fn openai_streams_text_and_the_prompt_reaches_the_model() {
    let server = FakeLlmServer::openai().await.expect("fake starts");
    server.push_reply(FakeReply::text("We open at nine. See you then."));
    let events = collect(openai(&server).stream_chat(request())).await;
    assert_eq!(text_of(&events), "We open at nine. See you then.");
    assert!(matches!(
        events.last(),
        Some(Ok(LlmEvent::Done {
            finish_reason: FinishReason::Stop,
            usage: Some(_)
        }))
    ));
    let seen = &server.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(
        seen.system_prompt().as_deref(),
        Some("You are the front desk of Acme.")
    );
    assert_eq!(seen.user_texts(), ["When are you open?"]);
    assert_eq!(seen.body["stream"], true);
    assert_eq!(
        seen.body["tools"][0]["function"]["name"],
        "book_appointment"
    );
}

#[tokio::test]
async fn openai_tool_call_fragments_arrive_as_one_parsed_call() {
    let server = FakeLlmServer::openai().await.expect("fake starts");
    server.push_reply(
        FakeReply::text("Let me book that.")
            .and_tool_call(
                "call_1",
                "book_appointment",
                json!({"day": "monday", "time": "9:00"}),
            )
            .and_tool_call("call_2", "send_dtmf", json!({"digits": "123"})),
    );
    let events = collect(openai(&server).stream_chat(request())).await;
    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::ToolCall {
                id,
                name,
                arguments,
            }) => Some((id.clone(), name.clone(), arguments.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "call_1".into(),
                "book_appointment".into(),
                json!({"day": "monday", "time": "9:00"})
            ),
            (
                "call_2".into(),
                "send_dtmf".into(),
                json!({"digits": "123"})
            ),
        ]
    );
    assert_eq!(text_of(&events), "Let me book that.");
    assert_eq!(finish_reason(&events), Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn anthropic_streams_text_with_system_on_top_and_its_headers() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    server.push_reply(FakeReply::text("Nine to five, Monday to Friday."));
    let events = collect(anthropic(&server).stream_chat(request())).await;
    assert_eq!(text_of(&events), "Nine to five, Monday to Friday.");
    assert_eq!(finish_reason(&events), Some(FinishReason::Stop));
    let seen = &server.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("ant-test"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.body["system"], "You are the front desk of Acme.");
    assert_eq!(seen.user_texts(), ["When are you open?"]);
    assert_eq!(seen.body["tools"][0]["input_schema"]["type"], "object");
}

#[tokio::test]
async fn anthropic_tool_use_blocks_become_tool_calls() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    server.push_reply(FakeReply::text("One moment.").and_tool_call(
        "toolu_1",
        "book_appointment",
        json!({"day": "friday"}),
    ));
    let events = collect(anthropic(&server).stream_chat(request())).await;
    assert!(events.contains(&Ok(LlmEvent::ToolCall {
        id: "toolu_1".into(),
        name: "book_appointment".into(),
        arguments: json!({"day": "friday"}),
    })));
    assert_eq!(finish_reason(&events), Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn http_failures_become_status_errors_with_the_body() {
    let server = FakeLlmServer::openai().await.expect("fake starts");
    server.push_reply(FakeReply::status(
        500,
        "{\"error\":{\"message\":\"upstream down\"}}",
    ));
    server.push_reply(FakeReply::status(429, "slow down"));
    let model = openai(&server);
    for expected in [500, 429] {
        let events = collect(model.stream_chat(request())).await;
        match events.as_slice() {
            [Err(LlmError::Status { status, body, .. })] => {
                assert_eq!(*status, expected);
                assert!(!body.is_empty());
            }
            other => panic!("expected one status error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_stream_cut_midway_is_an_error_after_the_tokens_already_sent() {
    for server in [
        FakeLlmServer::openai().await,
        FakeLlmServer::anthropic().await,
    ] {
        let server = server.expect("fake starts");
        server.push_reply(FakeReply::text("one two three four five").cut_after(2));
        let model: Arc<dyn LanguageModel> = if server.base_url().ends_with("/v1") {
            Arc::new(openai(&server))
        } else {
            Arc::new(anthropic(&server))
        };
        let events = collect(model.stream_chat(request())).await;
        assert_eq!(text_of(&events), "one two ");
        assert!(
            matches!(events.last(), Some(Err(LlmError::Interrupted { .. }))),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn in_stream_provider_errors_end_the_reply() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    server.push_reply(FakeReply::text("Hello").failing(FakeFailure::ErrorEvent {
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
    }));
    let events = collect(anthropic(&server).stream_chat(request())).await;
    assert_eq!(text_of(&events), "Hello");
    assert!(
        matches!(events.last(), Some(Err(LlmError::Provider { kind, .. })) if kind == "overloaded_error")
    );
}

#[tokio::test]
async fn a_silent_model_times_out_before_its_first_token() {
    let server = FakeLlmServer::openai().await.expect("fake starts");
    server.push_reply(FakeReply::text("too late").with_first_token_delay(SLOW));
    let mut config = OpenAiConfig::new(server.base_url(), None);
    config.timeouts.first_token = BUDGET;
    let model = OpenAiModel::new(reqwest::Client::new(), config);
    let events = collect(model.stream_chat(request())).await;
    assert!(
        matches!(events.as_slice(), [Err(LlmError::FirstTokenTimeout { .. })]),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_connect_error() {
    let address = crate::test_support::closed_address().await;
    let model = OpenAiModel::new(
        reqwest::Client::new(),
        OpenAiConfig::new(format!("http://{address}/v1"), None),
    );
    let events = collect(model.stream_chat(request())).await;
    assert!(
        matches!(events.as_slice(), [Err(LlmError::Connect { .. })]),
        "{events:?}"
    );
}

#[tokio::test]
async fn dropping_the_reply_stops_the_server_side_stream() {
    let server = FakeLlmServer::openai().await.expect("fake starts");
    let words = vec!["word ".to_string(); 200];
    server.push_reply(FakeReply::tokens(words).with_token_delay(Duration::from_millis(20)));
    let mut stream = openai(&server).stream_chat(request());
    for _ in 0..2 {
        assert!(matches!(stream.next().await, Some(Ok(LlmEvent::Token(_)))));
    }
    drop(stream);
    let seen = server
        .wait_until_ended(0, WAIT)
        .await
        .expect("stream ended");
    assert_eq!(seen.outcome, StreamOutcome::ClientGone);
    assert!(seen.tokens_sent < 200);
}

#[tokio::test]
async fn a_cancelled_token_ends_the_reply_with_cancelled() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    server.push_reply(FakeReply::text("a b c d e f g h").with_token_delay(SLOW));
    let token = CancellationToken::new();
    let mut stream = cancel_on(anthropic(&server).stream_chat(request()), token.clone());
    assert!(matches!(stream.next().await, Some(Ok(LlmEvent::Token(_)))));
    token.cancel();
    assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
    assert_eq!(stream.next().await, None);
    let seen = server
        .wait_until_ended(0, WAIT)
        .await
        .expect("stream ended");
    assert_eq!(seen.outcome, StreamOutcome::ClientGone);
}

fn fallback_pair(primary: &FakeLlmServer, backup: &FakeLlmServer) -> FallbackModel {
    FallbackModel::new(
        Arc::new(openai(primary)),
        Arc::new(anthropic(backup)),
        FallbackPolicy {
            first_token_timeout: BUDGET,
            fallback_model: Some("backup-model".into()),
        },
    )
}

/// The switches a stream announced.
fn notices(events: &[Result<LlmEvent, LlmError>]) -> Vec<FallbackNotice> {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(LlmEvent::FellBack(notice)) => Some(notice.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn fallback_answers_when_the_primary_fails() {
    let primary = FakeLlmServer::openai().await.expect("fake starts");
    let backup = FakeLlmServer::anthropic().await.expect("fake starts");
    primary.push_reply(FakeReply::status(503, "unavailable"));
    backup.push_reply(FakeReply::text("Backup speaking."));
    let events = collect(fallback_pair(&primary, &backup).stream_chat(request())).await;
    assert_eq!(text_of(&events), "Backup speaking.");
    assert_eq!(finish_reason(&events), Some(FinishReason::Stop));
    let seen = &backup.requests()[0];
    assert_eq!(seen.body["model"], "backup-model");
    assert_eq!(seen.body["system"], "You are the front desk of Acme.");
    let notices = notices(&events);
    assert_eq!(notices.len(), 1, "one switch announced: {events:?}");
    assert_eq!(notices[0].primary, "openai/test-model");
    assert_eq!(notices[0].fallback, "anthropic/backup-model");
    let FallbackReason::Failed(error) = &notices[0].reason else {
        panic!("the primary's error is the reason: {:?}", notices[0].reason);
    };
    assert!(error.contains("503"), "{error}");
    assert!(
        matches!(events.first(), Some(Ok(LlmEvent::FellBack(_)))),
        "announced before the fallback speaks: {events:?}"
    );
}

#[tokio::test]
async fn fallback_answers_and_the_primary_is_cancelled_when_it_is_slow() {
    let primary = FakeLlmServer::openai().await.expect("fake starts");
    let backup = FakeLlmServer::anthropic().await.expect("fake starts");
    primary.push_reply(FakeReply::text("Too slow.").with_first_token_delay(SLOW));
    backup.push_reply(FakeReply::text("Quick answer."));
    let events = collect(fallback_pair(&primary, &backup).stream_chat(request())).await;
    assert_eq!(text_of(&events), "Quick answer.");
    let seen = primary
        .wait_until_ended(0, WAIT)
        .await
        .expect("primary ended");
    assert_eq!(seen.outcome, StreamOutcome::ClientGone);
    assert_eq!(seen.tokens_sent, 0);
    let notices = notices(&events);
    assert_eq!(notices.len(), 1, "one switch announced: {events:?}");
    assert_eq!(
        notices[0].reason,
        FallbackReason::FirstTokenTimeout { after: BUDGET }
    );
    assert_eq!(notices[0].reason.timeout_ms(), Some(200));
}

#[tokio::test]
async fn a_primary_whose_own_client_timed_out_first_is_recorded_as_a_timeout() {
    let primary = FakeLlmServer::openai().await.expect("fake starts");
    let backup = FakeLlmServer::anthropic().await.expect("fake starts");
    primary.push_reply(FakeReply::text("Too slow.").with_first_token_delay(SLOW));
    backup.push_reply(FakeReply::text("Quick answer."));
    // The client gives up at half the fallback's budget: its error is a timeout too.
    let mut config = OpenAiConfig::new(primary.base_url(), None);
    config.timeouts.first_token = BUDGET / 2;
    let model = FallbackModel::new(
        Arc::new(OpenAiModel::new(reqwest::Client::new(), config)),
        Arc::new(anthropic(&backup)),
        FallbackPolicy {
            first_token_timeout: BUDGET,
            fallback_model: None,
        },
    );
    let events = collect(model.stream_chat(request())).await;
    assert_eq!(text_of(&events), "Quick answer.");
    let notices = notices(&events);
    assert_eq!(notices.len(), 1, "{events:?}");
    assert_eq!(
        notices[0].reason,
        FallbackReason::FirstTokenTimeout { after: BUDGET / 2 }
    );
    assert_eq!(notices[0].fallback, "anthropic/test-model");
}

#[tokio::test]
async fn a_primary_error_reason_is_cut_short_for_the_record() {
    let primary = FakeLlmServer::openai().await.expect("fake starts");
    let backup = FakeLlmServer::anthropic().await.expect("fake starts");
    let huge = "overloaded ".repeat(2_000);
    primary.push_reply(FakeReply::status(500, &huge));
    backup.push_reply(FakeReply::text("Backup speaking."));
    let events = collect(fallback_pair(&primary, &backup).stream_chat(request())).await;
    assert_eq!(text_of(&events), "Backup speaking.");
    let notices = notices(&events);
    assert_eq!(notices.len(), 1, "{events:?}");
    let FallbackReason::Failed(error) = &notices[0].reason else {
        panic!("an error reason: {:?}", notices[0].reason);
    };
    assert!(error.chars().count() <= FALLBACK_ERROR_CHARS + 1, "{error}");
}

#[tokio::test]
async fn fallback_is_not_used_once_the_primary_has_spoken() {
    let primary = FakeLlmServer::openai().await.expect("fake starts");
    let backup = FakeLlmServer::anthropic().await.expect("fake starts");
    primary.push_reply(FakeReply::text("Half a sentence and").cut_after(2));
    let events = collect(fallback_pair(&primary, &backup).stream_chat(request())).await;
    assert_eq!(text_of(&events), "Half a ");
    assert!(matches!(
        events.last(),
        Some(Err(LlmError::Interrupted { .. }))
    ));
    assert!(backup.requests().is_empty());
    assert!(notices(&events).is_empty(), "no switch: {events:?}");
}

#[tokio::test]
async fn rules_model_falls_back_when_nothing_matches() {
    let model: Arc<dyn LanguageModel> = Arc::new(RulesModel::new(RulesSpec {
        rules: vec![RuleSpec {
            intent: "hours".into(),
            keywords: vec!["hours".into()],
            examples: Vec::new(),
            reply: "Nine to five.".into(),
            action: None,
        }],
        fallback: "Sorry, I did not catch that.".into(),
    }));
    let mut conversation = request();
    conversation.messages.push(ChatMessage::assistant("Hello."));
    conversation
        .messages
        .push(ChatMessage::user("Do you sell bikes?"));
    let events = collect(model.stream_chat(conversation)).await;
    assert_eq!(text_of(&events), "Sorry, I did not catch that.");
    assert_eq!(model.provider(), "rules");
}

#[tokio::test]
async fn streamed_tokens_split_into_speakable_sentences() {
    let server = FakeLlmServer::openai().await.expect("fake starts");
    server.push_reply(FakeReply::text(
        "Dr. Lee is in at 9.30 today. Shall I book you? Great",
    ));
    let mut stream = openai(&server).stream_chat(request());
    let mut splitter = SentenceSplitter::new();
    let mut chunks = Vec::new();
    while let Some(Ok(event)) = stream.next().await {
        if let LlmEvent::Token(token) = event {
            chunks.extend(splitter.push(&token));
        }
    }
    chunks.extend(splitter.finish());
    assert_eq!(
        chunks,
        ["Dr. Lee is in at 9.30 today.", "Shall I book you?", "Great"]
    );
}

#[tokio::test]
async fn a_responder_answers_from_the_request_once_the_queue_is_empty() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    server.push_reply(FakeReply::text("Queued first."));
    server.respond_with(|seen| {
        let heard = seen.user_texts().pop().unwrap_or_default();
        FakeReply::text(&format!("You said: {heard}"))
    });
    let model = anthropic(&server);
    let first = collect(model.stream_chat(request())).await;
    let second = collect(model.stream_chat(request())).await;
    assert_eq!(text_of(&first), "Queued first.");
    assert_eq!(text_of(&second), "You said: When are you open?");
    assert_eq!(server.requests().len(), 2);
}

/// Posts `body` to the fake Messages endpoint as-is; returns the status and the JSON answer.
async fn post_messages(
    server: &FakeLlmServer,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .json(&body)
        .send()
        .await
        .expect("fake answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

#[tokio::test]
async fn the_anthropic_fake_refuses_what_the_messages_api_refuses() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    let user = |text: &str| json!({"role": "user", "content": text});
    let assistant = |text: &str| json!({"role": "assistant", "content": text});
    let tool_use = json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "book", "input": {}}]});
    let bad = [
        (
            "empty system",
            json!({"system": "", "messages": [user("Hi")]}),
        ),
        (
            "assistant first",
            json!({"messages": [assistant("Hello"), user("Hi")]}),
        ),
        (
            "two user turns",
            json!({"messages": [user("Hi"), user("there")]}),
        ),
        (
            "unanswered tool_use",
            json!({"messages": [user("Book"), tool_use.clone(), user("?")]}),
        ),
        (
            "result after text",
            json!({"messages": [user("Book"), tool_use.clone(),
            {"role": "user", "content": [{"type": "text", "text": "and"},
             {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}]}),
        ),
        (
            "stray result",
            json!({"messages": [user("Book"), assistant("Hm"),
            {"role": "user", "content": [
             {"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}]}]}),
        ),
        ("empty text", json!({"messages": [user("")]})),
    ];
    for (what, mut body) in bad {
        body["model"] = json!("claude-sonnet-4-5");
        body["max_tokens"] = json!(64);
        let (status, answer) = post_messages(&server, body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["type"], "error", "{what}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{what}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let good = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "Be brief.",
        "messages": [user("Book"), tool_use,
            {"role": "user", "content": [
             {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
             {"type": "text", "text": "thanks"}]}]});
    let (status, _) = post_messages(&server, good).await;
    assert_eq!(status, 200, "a well-formed request is served");
}

#[tokio::test]
async fn a_call_history_opened_by_the_greeting_is_a_request_the_anthropic_api_accepts() {
    let server = FakeLlmServer::anthropic().await.expect("fake starts");
    server.push_reply(FakeReply::text("Friday at ten works."));
    let cut = ToolCall {
        id: "toolu_cut".into(),
        name: "book_appointment".into(),
        arguments: json!({}),
    };
    let request = ChatRequest::new(
        anthropic::DEFAULT_MODEL,
        vec![
            ChatMessage::system(""),
            ChatMessage::Assistant {
                content: "Hello, Acme. How can I help?".into(),
                tool_calls: Vec::new(),
            },
            ChatMessage::user("Book me in"),
            ChatMessage::Assistant {
                content: String::new(),
                tool_calls: vec![cut],
            },
            ChatMessage::user("on Friday"),
        ],
    );
    let events = collect(anthropic(&server).stream_chat(request)).await;
    assert_eq!(text_of(&events), "Friday at ten works.", "{events:?}");
    let seen = &server.requests()[0];
    assert_eq!(seen.outcome, StreamOutcome::Completed);
    assert_eq!(seen.body["messages"][0]["role"], "user");
    assert!(seen
        .system_prompt()
        .is_some_and(|s| s.contains("Hello, Acme. How can I help?")));
}

//! Calls placed by the project's own UAC (`freya-loadtest`) speaking espeak-ng audio, and the
//! record of the one call a voice test makes: what the voice tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use freya_control::server::ControlPlane;
use freya_control::store::{StoredEvent, WorkspaceScope};
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::sip::sdp::Codec;
use freya_loadtest::audio::Utterance;
use freya_loadtest::onset::OnsetConfig;
use freya_loadtest::uac::{
    self, CallConfig, CallReport, HangupSide, MediaOptions, SipEndpoint, TalkerConfig,
};
use tokio_util::sync::CancellationToken;

/// A caller who starts after `first_turn_after`, waits up to six seconds for each reply and
/// never talks over the agent.
pub fn patient_caller(first_turn_after: Duration) -> TalkerConfig {
    TalkerConfig {
        first_turn_after,
        reply_timeout: Duration::from_secs(6),
        pause_after_reply: Duration::from_millis(400),
        barge_in_after: None,
        ..TalkerConfig::default()
    }
}

/// One call to number `demo` at `target` offering only `codec`, that says `turns` (each when
/// the default talker decides), hangs up after `hold`, and leaves the edge generous time to
/// answer and to confirm the BYE; a test changes what it needs with `..call_to_demo(..)`.
pub fn call_to_demo(
    target: SocketAddr,
    codec: Codec,
    turns: Vec<Utterance>,
    hold: Duration,
) -> CallConfig {
    CallConfig {
        target,
        number: "demo".into(),
        caller: "+15550123".into(),
        codec,
        media_ip: "127.0.0.1".parse().expect("ip"),
        hold,
        hangup: HangupSide::Caller,
        callee_grace: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(10),
        bye_timeout: Duration::from_secs(5),
        turns: Arc::from(turns),
        talker: TalkerConfig::default(),
        onset: OnsetConfig::default(),
        late_after: Duration::from_millis(200),
        received_audio: None,
        conversation_events: None,
        media: MediaOptions::default(),
    }
}

/// Places one call to number `demo` at `target`, offering only `codec`, that says `turns`
/// (espeak-ng) when `talker` decides and hangs up after `hold`.
pub async fn place_spoken_call(
    target: SocketAddr,
    codec: Codec,
    turns: &[&str],
    talker: TalkerConfig,
    hold: Duration,
) -> CallReport {
    let cancel = CancellationToken::new();
    let endpoint = SipEndpoint::bind("127.0.0.1:0".parse().expect("addr"), cancel.clone())
        .await
        .expect("UAC binds");
    let turns: Vec<Utterance> = turns
        .iter()
        .map(|t| Utterance::from_spec(&format!("say:{t}")).expect("espeak-ng speaks"))
        .collect();
    let config = CallConfig {
        talker,
        ..call_to_demo(target, codec, turns, hold)
    };
    let report = uac::place_call(&endpoint, &config, &cancel).await;
    cancel.cancel();
    report
}

/// The customer tool of the booking tests: `book_appointment`, taking a day, served at `url`.
pub fn booking_tool(url: &str) -> serde_json::Value {
    serde_json::json!({"name": "book_appointment", "description": "Books a visit.",
                       "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
                       "url": url, "timeout_ms": 5000})
}

/// Scripts `llm` as the booking tests' model: it first calls [`booking_tool`] for Friday, then
/// confirms the booking.
pub fn model_books_friday(llm: &FakeLlmServer) {
    llm.push_reply(FakeReply::tool_call(
        "call_1",
        "book_appointment",
        serde_json::json!({"day": "friday"}),
    ));
    llm.respond_with(|_| FakeReply::text("You are booked for Friday at ten."));
}

/// The recorded events of the workspace's one call, once it has ended.
pub async fn only_call_events(control: &ControlPlane, scope: &WorkspaceScope) -> Vec<StoredEvent> {
    super::the_ended_call(&control.store, scope).await.1
}

/// The events of one kind.
pub fn of_kind<'a>(events: &'a [StoredEvent], kind: &str) -> Vec<&'a StoredEvent> {
    events.iter().filter(|e| e.kind == kind).collect()
}

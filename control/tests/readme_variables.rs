//! The README's prompt-variables example, run as written: its `POST /v1/agents` body (read from
//! the README's "Agents and prompt variables" section, so the two cannot drift apart) is
//! accepted by the API, then answers a real call — an edge in-process, the project's UAC
//! speaking espeak-ng audio, the fake speech servers and the fake Anthropic Messages server (which
//! refuses any request the real API would) in place of the cloud. The model must get the system
//! prompt with every placeholder filled: the agent's `variables` and the built-in
//! `caller_number`, `called_number` and `call_id`; and the caller must hear the filled-in greeting.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::voice_call::{only_call_events, patient_caller, place_spoken_call};
use crate::support::{demo_edge, demo_workspace, Backend};
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply, StreamOutcome};
use freya_edge::sip::sdp::Codec;
use freya_edge::speech::fakes::FakeOpenAiSpeech;
use freya_shared::model::AgentSpec;

/// The JSON body of the README's "Agents and prompt variables" section.
fn readme_agent_body() -> Value {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("### Agents and prompt variables")
        .nth(1)
        .expect("the README has an 'Agents and prompt variables' section");
    let block = section
        .split("```json")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section shows a json request body");
    serde_json::from_str(block).expect("the README's body is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_prompt_variables_are_filled_in_on_a_real_call() {
    let body = readme_agent_body();
    let (db, control) = support::control_plane(Backend::Sqlite).await;

    // As written, through the API.
    let api = Api::of(&control);
    let (_, [_, _, editor, _]) = workspace_with_keys(&control, "Readme").await;
    let created = api.create("/v1/agents", &editor, body.clone()).await;
    assert_eq!(created["system_prompt"], body["system_prompt"]);

    // The same agent answering a call, its providers pointed at the fakes.
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_default_transcript("When are you open?");
    let llm = FakeLlmServer::anthropic().await.expect("fake anthropic");
    llm.respond_with(|_| FakeReply::text("Nine to five, Monday to Friday."));
    let mut agent = body.clone();
    agent["stt"] = json!({"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"});
    agent["llm"] = json!({"provider": "anthropic", "base_url": llm.base_url(), "api_key": "k"});
    agent["tts"] = json!({"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"});
    let agent: AgentSpec = serde_json::from_value(agent).expect("agent");
    assert_eq!(agent.validate(), Vec::new());
    let (scope, _) = demo_workspace(&control, "Readme call", &agent).await;
    let (edge, _dir) = demo_edge(&control, |_| {}).await;

    let talker = patient_caller(Duration::from_millis(1500));
    let report = place_spoken_call(
        edge.sip_addr,
        Codec::Pcmu,
        &["When are you open?"],
        talker,
        Duration::from_secs(9),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.failure);
    let events = only_call_events(&control, &scope).await;
    let call_id = events.first().map(|e| e.call_id.clone()).expect("events");

    let requests = llm.requests();
    assert!(!requests.is_empty(), "the model was asked");
    let asked = &requests[0];
    assert_eq!(
        asked.outcome,
        StreamOutcome::Completed,
        "the Messages API fake accepted the request: {}",
        asked.body
    );
    assert_eq!(
        asked.body["model"], "claude-sonnet-4-5",
        "the default model"
    );
    let system = asked.system_prompt().expect("a system prompt");
    let expected = format!(
        "You answer the phone for Acme Dental, open nine to five, Monday to Friday. The caller's \
         number is +15550123; they dialled demo. If they ask for a reference, it is {call_id}."
    );
    assert!(system.starts_with(&expected), "{system}");
    assert!(!system.contains("{{"), "a placeholder was left: {system}");
    assert!(
        system.contains("Thank you for calling Acme Dental. How can I help?"),
        "the greeting the agent said is context: {system}"
    );
    assert_eq!(asked.body["messages"][0]["role"], "user");
    let spoken: Vec<String> = speech
        .speech_requests()
        .into_iter()
        .map(|r| r.input)
        .collect();
    assert_eq!(
        spoken.first().map(String::as_str),
        Some("Thank you for calling Acme Dental. How can I help?")
    );

    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

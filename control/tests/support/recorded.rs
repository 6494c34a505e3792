//! The world of the recording tests: a control plane keeping recordings in a temp dir, a
//! workspace with a key per role, and an agent that records, speaking through the fake
//! OpenAI-style servers; and how a test downloads a recording (whole or by range).

use freya_control::config::ControlConfig;
use freya_control::server::ControlPlane;
use freya_control::store::{NewOutboundCall, WorkspaceScope};
use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::speech::fakes::{tone, FakeOpenAiSpeech};
use freya_shared::model::AgentSpec;
use reqwest::StatusCode;

use super::http::{workspace_with_keys, Api};
use super::{agent_on_number, control_config, Backend, TestDb};

/// A control plane keeping recordings in a temp dir, a workspace with a key per role, an agent
/// that records (greeting: a 1.5 s tone from the fake TTS) and its number `demo`.
pub struct RecordedWorld {
    pub db: TestDb,
    pub config: ControlConfig,
    pub control: ControlPlane,
    pub scope: WorkspaceScope,
    pub keys: [String; 4],
    pub _speech: FakeOpenAiSpeech,
    pub _llm: FakeLlmServer,
    pub recordings: tempfile::TempDir,
}

/// A fresh [`RecordedWorld`] on `backend`.
pub async fn recorded_world(backend: Backend) -> RecordedWorld {
    let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
    speech.set_speech_audio(tone(24_000, 1_500));
    speech.set_default_transcript("I would like to book a table.");
    let llm = FakeLlmServer::openai().await.expect("fake llm");
    llm.respond_with(|_| FakeReply::text("Of course."));
    let db = TestDb::new(backend).await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let mut config = control_config(&db.url);
    config.recordings.dir = recordings.path().to_owned();
    let control = ControlPlane::start(&config).await.expect("control starts");
    // A restart comes back on the same addresses, so the edge finds it again.
    config.http.addr = control.http_addr.to_string();
    config.grpc.addr = control.grpc_addr.to_string();
    let (ws, keys) = workspace_with_keys(&control, "Recorded").await;
    let scope = WorkspaceScope { workspace_id: ws };
    let agent: AgentSpec = serde_json::from_value(serde_json::json!({
        "name": "Recorded desk",
        "first_message": "Hello, this call is recorded.",
        "record": true,
        "stt": {"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "k"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "k"},
        "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "k"}
    }))
    .expect("agent");
    agent_on_number(&control, &scope, "demo", &agent).await;
    RecordedWorld {
        db,
        config,
        control,
        scope,
        keys,
        _speech: speech,
        _llm: llm,
        recordings,
    }
}

impl RecordedWorld {
    /// Stores an outbound call of the workspace from `demo` to a mobile number, placed by
    /// `edge_id` for `agent_id`: a call a recording may be uploaded for, with none yet. Its id.
    pub async fn outbound_call(&self, edge_id: &str, agent_id: &str) -> String {
        let call_id = freya_shared::ids::new_id();
        let call = NewOutboundCall {
            id: call_id.clone(),
            edge_id: edge_id.into(),
            from_number: "demo".into(),
            to_number: "+4712345678".into(),
            agent_id: agent_id.into(),
        };
        self.control
            .store
            .create_outbound_call(&self.scope, "test", &call)
            .await
            .expect("call");
        call_id
    }
}

/// `GET path` with `key` (and a `Range` header): status, headers and the raw body.
pub async fn get_bytes(
    api: &Api,
    path: &str,
    key: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = api.http.get(format!("{}{path}", api.base)).bearer_auth(key);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

/// Header `name` of `headers` (empty when absent).
pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

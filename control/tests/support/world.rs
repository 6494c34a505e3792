//! The world an end-to-end call test needs, built one way: a control plane on a fresh database,
//! a workspace with an agent (optionally speaking through the fake OpenAI-style speech and
//! language-model servers) routed from a number, and an edge linked to the control plane that
//! has learnt the number. Tests say only what differs (`World::builder().agent(..).start()`)
//! and read the call back with the methods here.

use std::time::Duration;

use freya_control::config::ControlConfig;
use freya_control::server::ControlPlane;
use freya_control::store::{CallRecord, Role, StoredEvent, WorkspaceScope};
use freya_edge::llm::fakes::FakeLlmServer;
use freya_edge::speech::fakes::FakeOpenAiSpeech;
use freya_edge::{Edge, EdgeConfig};
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{EdgeCommand, PlaceCall};
use freya_shared::model::{AgentSpec, PhoneNumberSpec, ProviderSpec, SipTransport, SipTrunkSpec};
use freya_shared::snapshot::ProviderConfig;
use freya_shared::workflow::Workflow;
use serde_json::{json, Value};

use super::http::Api;
use super::{
    agent_on_number, control_config, edge_config, eventually, until_routed, Backend, TestDb, SECRET,
};

/// A control plane, an edge and a workspace whose agent (or a workflow, with
/// [`WorldBuilder::workflow`]) answers [`World::number`].
pub struct World {
    /// The control plane's database (dropped by [`World::stop`]).
    pub db: TestDb,
    pub control: ControlPlane,
    /// The edge, linked to `control`, that has learnt the number.
    pub edge: Edge,
    /// The workspace everything of the world is in.
    pub scope: WorkspaceScope,
    /// The id of the world's agent (the number routes to it, or to the workflow naming it).
    pub agent_id: String,
    /// The number the agent answers.
    pub number: String,
    /// The fake speech server (speech-to-text and text-to-speech), with [`WorldBuilder::voice`].
    pub speech: Option<FakeOpenAiSpeech>,
    /// The fake language model, with [`WorldBuilder::voice`].
    pub llm: Option<FakeLlmServer>,
    /// The edge's data directory.
    pub dir: tempfile::TempDir,
}

type ConfigChange<T> = Box<dyn FnOnce(&mut T) + Send>;

/// A workflow definition built from the world's agent's id.
type Flow = Box<dyn FnOnce(&str) -> Value + Send>;

/// What a test changes in the default world.
pub struct WorldBuilder {
    backend: Backend,
    workspace: String,
    agent: Value,
    voice: bool,
    number: String,
    control: Option<ConfigChange<ControlConfig>>,
    edge: Option<ConfigChange<EdgeConfig>>,
    workflow: Option<Flow>,
}

impl World {
    /// A world on SQLite with agent `Desk` (no providers: the offline replier) on number
    /// `demo`.
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            backend: Backend::Sqlite,
            workspace: "World".into(),
            agent: json!({"name": "Desk"}),
            voice: false,
            number: "demo".into(),
            control: None,
            edge: None,
            workflow: None,
        }
    }

    /// The fake language model ([`WorldBuilder::voice`] worlds only).
    pub fn llm(&self) -> &FakeLlmServer {
        self.llm.as_ref().expect("a world built with .voice()")
    }

    /// The fake speech server ([`WorldBuilder::voice`] worlds only).
    pub fn speech(&self) -> &FakeOpenAiSpeech {
        self.speech.as_ref().expect("a world built with .voice()")
    }

    /// What the agent said, sentence by sentence: the texts the fake speech server was asked
    /// to speak ([`WorldBuilder::voice`] worlds only).
    pub fn spoken(&self) -> Vec<String> {
        let requests = self.speech().speech_requests();
        requests.into_iter().map(|r| r.input).collect()
    }

    /// A new API key of the world's workspace with `role`.
    pub async fn key(&self, role: Role) -> String {
        self.control
            .store
            .create_api_key(&self.scope, role.as_str(), role)
            .await
            .expect("key")
            .key
    }

    /// The workspace's one call, once it has ended, and its events.
    pub async fn ended_call(&self) -> (CallRecord, Vec<StoredEvent>) {
        super::the_ended_call(&self.control.store, &self.scope).await
    }

    /// The caller's (left) and the agent's (right) channels of call `call_id`'s recording,
    /// downloaded through the API once the call's detail names it: what tests of what a
    /// recording holds listen to.
    pub async fn recording(&self, call_id: &str) -> (Vec<i16>, Vec<i16>) {
        let api = Api::of(&self.control);
        let key = self.key(Role::Viewer).await;
        let path = format!("/v1/calls/{call_id}");
        let url = eventually(Duration::from_secs(60), "the recording", || async {
            let detail: Value = api.expect(200, "GET", &path, &key, None).await;
            detail["recording"]["url"].as_str().map(str::to_owned)
        })
        .await;
        let wav = api
            .http
            .get(format!("{}{url}", api.base))
            .bearer_auth(&key)
            .send()
            .await
            .expect("download")
            .bytes()
            .await
            .expect("body");
        assert_eq!(&wav[..4], b"RIFF");
        wav[44..]
            .chunks_exact(4)
            .map(|f| {
                (
                    i16::from_le_bytes([f[0], f[1]]),
                    i16::from_le_bytes([f[2], f[3]]),
                )
            })
            .unzip()
    }

    /// The `call.failed` payload of a call the edge refused, once it is the workspace's one
    /// recorded event.
    pub async fn refusal_record(&self) -> Value {
        let (store, scope) = (self.control.store.clone(), self.scope.clone());
        eventually(Duration::from_secs(10), "the refusal's record", || {
            let (store, scope) = (store.clone(), scope.clone());
            async move { (store.count_call_events(&scope).await.ok()? == 1).then_some(()) }
        })
        .await;
        let payload = self
            .db
            .read_text(
                "SELECT payload FROM call_events WHERE workspace_id = $1 AND kind = 'call.failed'",
                &self.scope.workspace_id,
            )
            .await;
        serde_json::from_str(&payload).expect("JSON payload")
    }

    /// The recorded events of call `call_id`.
    pub async fn events_of(&self, call_id: &str) -> Vec<StoredEvent> {
        self.control
            .store
            .call_events(&self.scope, call_id)
            .await
            .expect("events")
    }

    /// The first event of `kind` any call of the workspace records, once there is one.
    pub async fn event(&self, kind: &str) -> StoredEvent {
        let what = format!("a {kind} event");
        eventually(Duration::from_secs(15), &what, || async {
            let calls = self.control.store.calls(&self.scope, 10).await.ok()?;
            for call in calls {
                let events = self.control.store.call_events(&self.scope, &call.id).await;
                if let Some(e) = events.ok()?.into_iter().find(|e| e.kind == kind) {
                    return Some(e);
                }
            }
            None
        })
        .await
    }

    /// Gives the workspace these SIP trunks (ids `trunk-<name>`), by writing the edge's
    /// configuration snapshot (after its first one arrived; nothing changes the configuration
    /// afterwards, so the config watch does not overwrite it).
    pub fn set_trunks(&self, trunks: Vec<SipTrunkSpec>) {
        let mut snapshot = (*self.edge.state.snapshot()).clone();
        snapshot.providers = trunks
            .into_iter()
            .map(|spec| ProviderConfig {
                id: format!("trunk-{}", spec.name),
                workspace_id: self.scope.workspace_id.clone(),
                spec: ProviderSpec::SipTrunk(spec),
            })
            .collect();
        self.edge.state.set_snapshot(snapshot);
    }

    /// Asks the edge, through the control plane's command stream, to call `to` from the
    /// world's agent (retrying until the edge's stream is up); the new call's id.
    pub async fn place_call_by_command(&self, to: &str) -> String {
        let call_id = uuid::Uuid::now_v7().to_string();
        let command = EdgeCommand {
            id: uuid::Uuid::now_v7().to_string(),
            command: Some(Command::PlaceCall(PlaceCall {
                call_id: call_id.clone(),
                workspace_id: self.scope.workspace_id.clone(),
                from: "+15550199".into(),
                to: to.into(),
                agent_id: self.agent_id.clone(),
            })),
        };
        let (hub, edge_id) = (&self.control.commands, &self.edge.id);
        eventually(Duration::from_secs(10), "the edge's command stream", || {
            let command = command.clone();
            async move { hub.send(edge_id, command).await.ok() }
        })
        .await;
        call_id
    }

    /// A call of the workspace once one is in `status` (`failed`, ...).
    pub async fn call_in_status(&self, status: &str) -> CallRecord {
        let what = format!("a call to be {status}");
        eventually(Duration::from_secs(10), &what, || async {
            let calls = self.control.store.calls(&self.scope, 10).await.ok()?;
            calls.into_iter().find(|c| c.status == status)
        })
        .await
    }

    /// Call `call_id` once it is recorded as over.
    pub async fn finished_call(&self, call_id: &str) -> CallRecord {
        eventually(
            Duration::from_secs(30),
            "the call to be recorded as over",
            || async {
                let calls = self.control.store.calls(&self.scope, 50).await.ok()?;
                calls
                    .into_iter()
                    .find(|c| c.id == call_id && c.ended_at_ms.is_some())
            },
        )
        .await
    }

    /// Stops the edge and the control plane and drops the database.
    pub async fn stop(self) {
        self.edge.stop().await;
        self.control.stop().await;
        self.db.cleanup().await;
    }

    /// [`World::stop`] once no call is left on the edge: a test's calls must all end (the call
    /// task counts itself out just after the BYE's 200, so this waits a little for it).
    pub async fn teardown(self) {
        let state = &self.edge.state;
        eventually(Duration::from_secs(10), "every call to end", || async {
            (state.active_calls() == 0).then_some(())
        })
        .await;
        self.stop().await;
    }
}

impl WorldBuilder {
    /// The database engine.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The workspace's name.
    pub fn workspace(mut self, name: &str) -> Self {
        self.workspace = name.into();
        self
    }

    /// Fields of the agent (merged over `{"name": "Desk"}` and, with [`Self::voice`], the fake
    /// providers; a field given here wins).
    pub fn agent(mut self, fields: Value) -> Self {
        merge(&mut self.agent, fields);
        self
    }

    /// The agent hears, thinks and speaks through fake OpenAI-style servers started for the
    /// world (`World::speech`, `World::llm`).
    pub fn voice(mut self) -> Self {
        self.voice = true;
        self
    }

    /// The number routed to the agent (default `demo`).
    pub fn number(mut self, number: &str) -> Self {
        self.number = number.into();
        self
    }

    /// Routes the number to a workflow instead of the agent: `flow` (given the agent's id)
    /// created and published through the API, as a customer would.
    pub fn workflow(mut self, flow: impl FnOnce(&str) -> Value + Send + 'static) -> Self {
        self.workflow = Some(Box::new(flow));
        self
    }

    /// Changes the control plane's configuration before it starts.
    pub fn control_config(
        mut self,
        change: impl FnOnce(&mut ControlConfig) + Send + 'static,
    ) -> Self {
        self.control = Some(Box::new(change));
        self
    }

    /// Changes the edge's configuration before it starts.
    pub fn edge_config(mut self, change: impl FnOnce(&mut EdgeConfig) + Send + 'static) -> Self {
        self.edge = Some(Box::new(change));
        self
    }

    /// Starts the world and waits until the edge routes the number.
    pub async fn start(self) -> World {
        let (speech, llm) = if self.voice {
            let speech = FakeOpenAiSpeech::start().await.expect("fake speech");
            let llm = FakeLlmServer::openai().await.expect("fake llm");
            (Some(speech), Some(llm))
        } else {
            (None, None)
        };
        let mut agent = json!({"name": "Desk"});
        if let (Some(speech), Some(llm)) = (&speech, &llm) {
            merge(&mut agent, fake_providers(speech, llm));
        }
        merge(&mut agent, self.agent);
        let agent: AgentSpec = serde_json::from_value(agent).expect("agent");
        assert_eq!(agent.validate(), Vec::new(), "the world's agent is valid");

        let db = TestDb::new(self.backend).await;
        let mut config = control_config(&db.url);
        if let Some(change) = self.control {
            change(&mut config);
        }
        let control = ControlPlane::start(&config).await.expect("control starts");
        let workspace_id = control
            .store
            .create_workspace(&self.workspace)
            .await
            .expect("workspace");
        let scope = WorkspaceScope { workspace_id };
        let agent_id = match self.workflow {
            None => {
                agent_on_number(&control, &scope, &self.number, &agent)
                    .await
                    .id
            }
            Some(flow) => workflow_on_number(&control, &scope, &self.number, &agent, flow).await,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = edge_config(dir.path(), control.grpc_addr, SECRET);
        if let Some(change) = self.edge {
            change(&mut config);
        }
        let edge = Edge::start(&config).await.expect("edge starts");
        until_routed(&edge, &self.number).await;
        World {
            db,
            control,
            edge,
            scope,
            agent_id,
            number: self.number,
            speech,
            llm,
            dir,
        }
    }
}

/// Creates `agent`, and `flow` (given its id) published through the API; routes `number` to
/// the workflow. The agent's id.
async fn workflow_on_number(
    control: &ControlPlane,
    scope: &WorkspaceScope,
    number: &str,
    agent: &AgentSpec,
    flow: Flow,
) -> String {
    let agent = control
        .store
        .create_agent(scope, "test", agent)
        .await
        .expect("agent");
    let definition: Workflow = serde_json::from_value(flow(&agent.id)).expect("workflow");
    let owner = control
        .store
        .create_api_key(scope, "owner", Role::Owner)
        .await
        .expect("key")
        .key;
    let api = Api::of(control);
    let created = api.create("/v1/workflows", &owner, json!(definition)).await;
    let id = created["id"].as_str().expect("id").to_owned();
    api.expect(
        201,
        "POST",
        &format!("/v1/workflows/{id}/publish"),
        &owner,
        None,
    )
    .await;
    let route = PhoneNumberSpec {
        number: number.into(),
        region: None,
        regions: Vec::new(),
        agent_id: None,
        workflow_id: Some(id),
    };
    control
        .store
        .create_number(scope, "test", &route)
        .await
        .expect("number");
    agent.id
}

/// A UDP trunk on 127.0.0.1 `port` tried at `priority`, calling as +15550100, giving up on
/// an unanswered INVITE after 10 s.
pub fn udp_trunk(name: &str, port: u16, priority: i32) -> SipTrunkSpec {
    SipTrunkSpec {
        name: name.into(),
        host: "127.0.0.1".into(),
        port,
        transport: SipTransport::Udp,
        username: None,
        password: None,
        caller_id: Some("+15550100".into()),
        priority,
        regions: Vec::new(),
        invite_timeout_ms: 10_000,
        outbound_proxy: None,
        registration: None,
        srtp: Default::default(),
        srtp_allow_without_tls: false,
    }
}

/// An agent's providers: speech-to-text, the model and text-to-speech of the fake servers.
pub fn fake_providers(speech: &FakeOpenAiSpeech, llm: &FakeLlmServer) -> Value {
    json!({
        "stt": {"provider": "openai", "model": "whisper-1", "base_url": speech.base_url(), "api_key": "stt-key"},
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": llm.base_url(), "api_key": "llm-key"},
        "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": speech.base_url(), "api_key": "tts-key"}
    })
}

/// `fields` (an object) written over the fields of `into` (an object).
fn merge(into: &mut Value, fields: Value) {
    if let (Some(into), Value::Object(fields)) = (into.as_object_mut(), fields) {
        into.extend(fields);
    }
}

//! Every route of the API in one table — its method and path, a body, the least role that may
//! call it, what success answers, and whether it names a resource — with a workspace holding
//! one resource of every kind to call them on. The role tests (`roles.rs`) and the workspace
//! isolation tests (`workspace_isolation.rs`) both walk it.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::StatusCode;
use serde_json::{json, Value};

use freya_control::server::ControlPlane;
use freya_control::store::{CallRecordingInfo, NewOutboundCall, NewWebhook, Role, WorkspaceScope};
use freya_shared::ids::new_id;
use freya_shared::model::{
    AgentSpec, CallEvent, CallEventKind, PhoneNumberSpec, ProviderSpec, SipTrunkSpec,
};

use super::control_config;
use super::http::workspace_with_keys;

/// A workspace with one key per role and one resource of every kind.
pub struct RouteWorld {
    pub ws: String,
    /// owner, admin, editor, viewer
    pub keys: [String; 4],
    pub agent: String,
    pub spare_agent: String,
    pub number: String,
    pub number_text: String,
    pub call: String,
    pub member: String,
    pub api_key: String,
    pub provider: String,
    pub webhook: String,
    pub delivery: String,
    pub workflow: String,
    pub spare_workflow: String,
}

/// A small valid flow: a greeting and a goodbye.
fn flow(name: &str) -> Value {
    json!({"name": name, "start": "hi", "nodes": [
        {"id": "hi", "type": "say", "text": "Hello.", "next": "bye"},
        {"id": "bye", "type": "end", "text": "Goodbye."}
    ]})
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn unique() -> u32 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

fn agent_spec(name: &str) -> AgentSpec {
    serde_json::from_value(json!({ "name": name })).expect("agent spec")
}

/// A fresh workspace with a key per role and one resource of every kind, in `control`.
pub async fn route_world(control: &ControlPlane) -> RouteWorld {
    let (ws, keys) = workspace_with_keys(control, "World").await;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let store = &control.store;
    let agent = store
        .create_agent(
            &scope,
            "test",
            &serde_json::from_value(json!({"name": "A", "transfer_destinations": ["+4799999999"]}))
                .expect("agent spec"),
        )
        .await
        .expect("agent")
        .id;
    let spare_agent = store
        .create_agent(&scope, "test", &agent_spec("Spare"))
        .await
        .expect("agent")
        .id;
    let number_text = format!("+1555{:07}", unique());
    let number = store
        .create_number(
            &scope,
            "test",
            &PhoneNumberSpec {
                number: number_text.clone(),
                region: None,
                regions: Vec::new(),
                agent_id: Some(agent.clone()),
                workflow_id: None,
            },
        )
        .await
        .expect("number")
        .id;
    let call = new_id();
    store
        .create_outbound_call(
            &scope,
            "test",
            &NewOutboundCall {
                id: call.clone(),
                edge_id: "edge-not-connected".into(),
                from_number: number_text.clone(),
                to_number: "+4712345678".into(),
                agent_id: agent.clone(),
            },
        )
        .await
        .expect("call");
    give_the_call_a_recording(control, &ws, &call).await;
    let member = store
        .create_user(&format!("member{}@example.com", unique()), "M", "no-login")
        .await
        .expect("user");
    store
        .add_member(&scope, &member, Role::Viewer)
        .await
        .expect("member");
    let api_key = store
        .create_api_key(&scope, "spare", Role::Viewer)
        .await
        .expect("key")
        .id;
    let trunk: SipTrunkSpec = serde_json::from_value(
        json!({"name": "Carrier", "host": "sip.example.com", "username": "u", "password": "p"}),
    )
    .expect("trunk");
    let provider = store
        .create_provider(&scope, "test", &ProviderSpec::SipTrunk(trunk))
        .await
        .expect("provider")
        .id;
    let webhook = store
        .create_webhook(
            &scope,
            "test",
            &NewWebhook {
                url: "http://127.0.0.1:9/hook".into(),
                events: vec!["call.started".into()],
                secret: Some("0123456789abcdef".into()),
            },
        )
        .await
        .expect("webhook")
        .id;
    store
        .record_call_event(
            "edge-test",
            &CallEvent::raw(&call, &ws, CallEventKind::Started, json!({})),
        )
        .await
        .expect("event");
    let (deliveries, _) = store
        .webhook_deliveries(&scope, &webhook, None, 10)
        .await
        .expect("deliveries");
    let delivery = deliveries.first().expect("a queued delivery").id.clone();
    let definition: freya_shared::workflow::Workflow =
        serde_json::from_value(flow("Flow")).expect("workflow");
    let workflow = store
        .create_workflow(&scope, "test", &definition)
        .await
        .expect("workflow")
        .id;
    store
        .publish_workflow(&scope, "test", &workflow, &definition)
        .await
        .expect("published");
    let spare_workflow = store
        .create_workflow(&scope, "test", &definition)
        .await
        .expect("workflow")
        .id;
    RouteWorld {
        ws,
        keys,
        agent,
        spare_agent,
        number,
        number_text,
        call,
        member,
        api_key,
        provider,
        webhook,
        delivery,
        workflow,
        spare_workflow,
    }
}

/// Where the control planes of this test keep recordings (every file has a fresh UUID name).
fn recordings_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("freya-roles-test-recordings")
}

/// A recording for the world's call, as an edge's upload would leave it: a file and its row.
async fn give_the_call_a_recording(control: &ControlPlane, ws: &str, call: &str) {
    let recording_id = new_id();
    let folder = recordings_dir().join(ws);
    std::fs::create_dir_all(&folder).expect("recordings folder");
    let wav = [b"RIFF".as_slice(), &[0u8; 40]].concat();
    std::fs::write(folder.join(format!("{recording_id}.wav")), &wav).expect("recording file");
    let info = CallRecordingInfo {
        recording_id,
        format: "wav".into(),
        bytes: wav.len() as i64,
        duration_ms: 0,
        sha256: "0".repeat(64),
    };
    control
        .store
        .attach_recording(call, ws, &info)
        .await
        .expect("recording");
}

/// One route: how to call it in a world, the least role that may, and what success answers.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub body: fn(&RouteWorld) -> Option<Value>,
    pub least: Role,
    pub success: StatusCode,
    /// Whether the path names a resource of the world (so another workspace must get 404).
    pub names_a_resource: bool,
}

/// `path` with the world's ids in its placeholders.
pub fn fill(path: &str, w: &RouteWorld) -> String {
    path.replace("{ws}", &w.ws)
        .replace("{agent}", &w.agent)
        .replace("{spare_agent}", &w.spare_agent)
        .replace("{number}", &w.number)
        .replace("{call}", &w.call)
        .replace("{member}", &w.member)
        .replace("{key}", &w.api_key)
        .replace("{provider}", &w.provider)
        .replace("{webhook}", &w.webhook)
        .replace("{delivery}", &w.delivery)
        .replace("{spare_workflow}", &w.spare_workflow)
        .replace("{workflow}", &w.workflow)
}

fn none(_: &RouteWorld) -> Option<Value> {
    None
}

/// Every route of the API, as the table in `api/mod.rs` has it.
pub fn routes() -> Vec<Route> {
    use Role::*;
    let r = |method, path, body, least, success: u16, names_a_resource| Route {
        method,
        path,
        body,
        least,
        success: StatusCode::from_u16(success).expect("status"),
        names_a_resource,
    };
    vec![
        r("GET", "/v1/workspaces/{ws}", none, Viewer, 200, true),
        r(
            "PATCH",
            "/v1/workspaces/{ws}",
            |_| Some(json!({"name": "Renamed"})),
            Admin,
            200,
            true,
        ),
        r("DELETE", "/v1/workspaces/{ws}", none, Owner, 204, true),
        r(
            "GET",
            "/v1/workspaces/{ws}/members",
            none,
            Viewer,
            200,
            true,
        ),
        r(
            "POST",
            "/v1/workspaces/{ws}/members",
            |_| None, // filled in by the test: needs a fresh user
            Admin,
            201,
            true,
        ),
        r(
            "PATCH",
            "/v1/workspaces/{ws}/members/{member}",
            |_| Some(json!({"role": "editor"})),
            Admin,
            200,
            true,
        ),
        r(
            "DELETE",
            "/v1/workspaces/{ws}/members/{member}",
            none,
            Admin,
            204,
            true,
        ),
        r(
            "GET",
            "/v1/workspaces/{ws}/api-keys",
            none,
            Admin,
            200,
            true,
        ),
        r(
            "POST",
            "/v1/workspaces/{ws}/api-keys",
            |_| Some(json!({"name": "k", "role": "viewer"})),
            Admin,
            201,
            true,
        ),
        r(
            "DELETE",
            "/v1/workspaces/{ws}/api-keys/{key}",
            none,
            Admin,
            204,
            true,
        ),
        r("GET", "/v1/edges", none, Viewer, 200, false),
        // No such edge: an allowed request gets as far as not finding it.
        r("POST", "/v1/edges/edge-none/drain", none, Admin, 404, false),
        r("GET", "/v1/agents", none, Viewer, 200, false),
        r(
            "POST",
            "/v1/agents",
            |_| Some(json!({"name": "New"})),
            Editor,
            201,
            false,
        ),
        r("GET", "/v1/agents/{agent}", none, Viewer, 200, true),
        r(
            "PATCH",
            "/v1/agents/{agent}",
            |_| Some(json!({"name": "Changed"})),
            Editor,
            200,
            true,
        ),
        r(
            "DELETE",
            "/v1/agents/{spare_agent}",
            none,
            Editor,
            204,
            true,
        ),
        r("GET", "/v1/phone-numbers", none, Viewer, 200, false),
        r(
            "POST",
            "/v1/phone-numbers",
            |w| Some(json!({"number": format!("+1666{:07}", unique()), "agent_id": w.agent})),
            Editor,
            201,
            false,
        ),
        r("GET", "/v1/phone-numbers/{number}", none, Viewer, 200, true),
        r(
            "PATCH",
            "/v1/phone-numbers/{number}",
            |_| Some(json!({"region": "eu-west"})),
            Editor,
            200,
            true,
        ),
        r(
            "DELETE",
            "/v1/phone-numbers/{number}",
            none,
            Editor,
            204,
            true,
        ),
        r("GET", "/v1/workflows", none, Viewer, 200, false),
        r(
            "POST",
            "/v1/workflows",
            |_| Some(flow("New")),
            Editor,
            201,
            false,
        ),
        r(
            "POST",
            "/v1/workflows/validate",
            |_| Some(flow("Checked")),
            Viewer,
            200,
            false,
        ),
        r("GET", "/v1/workflows/{workflow}", none, Viewer, 200, true),
        r(
            "PATCH",
            "/v1/workflows/{workflow}",
            |_| Some(json!({"name": "Changed"})),
            Editor,
            200,
            true,
        ),
        r(
            "POST",
            "/v1/workflows/{workflow}/publish",
            none,
            Editor,
            201,
            true,
        ),
        r(
            "GET",
            "/v1/workflows/{workflow}/versions",
            none,
            Viewer,
            200,
            true,
        ),
        r(
            "GET",
            "/v1/workflows/{workflow}/versions/1",
            none,
            Viewer,
            200,
            true,
        ),
        r(
            "DELETE",
            "/v1/workflows/{spare_workflow}",
            none,
            Editor,
            204,
            true,
        ),
        r("GET", "/v1/calls", none, Viewer, 200, false),
        r("GET", "/v1/calls/{call}", none, Viewer, 200, true),
        // No edge is connected in this test: an allowed request gets as far as finding none.
        r("POST", "/v1/calls/{call}/hangup", none, Editor, 503, true),
        r(
            "POST",
            "/v1/calls/{call}/legs",
            |_| Some(json!({"to": "+4799999999"})),
            Editor,
            503,
            true,
        ),
        // The call has no leg 1 yet: an allowed request gets as far as finding none.
        r("DELETE", "/v1/calls/{call}/legs/1", none, Editor, 404, true),
        r(
            "POST",
            "/v1/calls/{call}/bridge",
            |_| Some(json!({"legs": [0, 1], "agent": "muted"})),
            Editor,
            404,
            true,
        ),
        r("DELETE", "/v1/calls/{call}/bridge", none, Editor, 503, true),
        r("GET", "/v1/calls/{call}/recording", none, Viewer, 200, true),
        r(
            "DELETE",
            "/v1/calls/{call}/recording",
            none,
            Admin,
            204,
            true,
        ),
        r(
            "POST",
            "/v1/calls",
            |w| Some(json!({"from": w.number_text, "to": "+4712345678"})),
            Editor,
            503,
            false,
        ),
        r("GET", "/v1/audit-log", none, Admin, 200, false),
        r("GET", "/v1/providers", none, Viewer, 200, false),
        r(
            "POST",
            "/v1/providers",
            |_| Some(json!({"name": "T", "host": "sip.example.com"})),
            Admin,
            201,
            false,
        ),
        r("GET", "/v1/providers/{provider}", none, Viewer, 200, true),
        r(
            "PATCH",
            "/v1/providers/{provider}",
            |_| Some(json!({"priority": 5})),
            Admin,
            200,
            true,
        ),
        r("DELETE", "/v1/providers/{provider}", none, Admin, 204, true),
        r("GET", "/v1/webhooks", none, Admin, 200, false),
        r(
            "POST",
            "/v1/webhooks",
            |_| {
                Some(json!({
                    "url": "https://hooks.example.com/freya",
                    "events": ["call.ended"],
                    "secret": "0123456789abcdef"
                }))
            },
            Admin,
            201,
            false,
        ),
        r("GET", "/v1/webhooks/{webhook}", none, Admin, 200, true),
        r(
            "PATCH",
            "/v1/webhooks/{webhook}",
            |_| Some(json!({"events": ["*"]})),
            Admin,
            200,
            true,
        ),
        r(
            "GET",
            "/v1/webhooks/{webhook}/deliveries",
            none,
            Admin,
            200,
            true,
        ),
        r(
            "POST",
            "/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver",
            none,
            Admin,
            202,
            true,
        ),
        r("DELETE", "/v1/webhooks/{webhook}", none, Admin, 204, true),
        r("GET", "/v1/analytics/calls", none, Viewer, 200, false),
    ]
}

/// Every role, most powerful first (in the order of a world's keys).
pub const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Editor, Role::Viewer];

/// The body `route` is sent with in `w` (a new member is a new user each time).
pub async fn body_for(control: &ControlPlane, route: &Route, w: &RouteWorld) -> Option<Value> {
    if route.method == "POST" && route.path.ends_with("/members") {
        let email = format!("new{}@example.com", unique());
        control
            .store
            .create_user(&email, "N", "no-login")
            .await
            .expect("user");
        return Some(json!({"email": email, "role": "viewer"}));
    }
    (route.body)(w)
}

/// A control plane whose webhook worker makes one pass at start and then sleeps: the worlds'
/// queued deliveries stay put, so redelivering one never races an attempt.
pub fn quiet_config(url: &str) -> freya_control::config::ControlConfig {
    let mut config = control_config(url);
    config.webhooks.poll_interval_ms = 600_000;
    config.recordings.dir = recordings_dir();
    config
}

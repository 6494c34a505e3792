//! The REST API over real HTTP on loopback: authentication, strict JSON with problem+json
//! errors naming the field, workspace isolation, roles, and the resources edges are built from.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};

use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};
use support::on_both_engines;
use support::{Backend, TestDb};

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, content_type)
    }
}

async fn setup(backend: Backend) -> (TestDb, ControlPlane, Api, String, String) {
    let (db, control) = support::control_plane(backend).await;
    let ws = control
        .store
        .create_workspace("A")
        .await
        .expect("workspace");
    let scope = WorkspaceScope { workspace_id: ws };
    let editor = control
        .store
        .create_api_key(&scope, "e", Role::Editor)
        .await
        .expect("key");
    let viewer = control
        .store
        .create_api_key(&scope, "v", Role::Viewer)
        .await
        .expect("key");
    let api = Api {
        base: format!("http://{}", control.http_addr),
        http: reqwest::Client::new(),
    };
    (db, control, api, editor.key, viewer.key)
}

async fn agents_and_numbers_round_trip_and_patch(backend: Backend) {
    let (db, control, api, key, _) = setup(backend).await;
    let (status, agent, _) = api
        .call(
            "POST",
            "/v1/agents",
            &key,
            Some(json!({"name": "Desk", "first_message": "Hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    assert_eq!(agent["language"], "en");
    assert!(agent["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let id = agent["id"].as_str().expect("id").to_owned();

    let (status, patched, _) = api
        .call(
            "PATCH",
            &format!("/v1/agents/{id}"),
            &key,
            Some(json!({"first_message": "Hello", "variables": {"city": "Oslo"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["first_message"], "Hello");
    assert_eq!(patched["name"], "Desk");
    assert_eq!(patched["variables"]["city"], "Oslo");

    let (status, number, _) = api
        .call(
            "POST",
            "/v1/phone-numbers",
            &key,
            Some(json!({"number": "+15550111", "agent_id": id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{number}");
    let (status, list, _) = api.call("GET", "/v1/phone-numbers", &key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["number"], "+15550111");

    let (status, dup, _) = api
        .call(
            "POST",
            "/v1/phone-numbers",
            &key,
            Some(json!({"number": "+15550111", "agent_id": id})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{dup}");

    // Every change is in the audit log, in the same transaction as the change.
    let actions = control
        .store
        .audit_actions(
            &WorkspaceScope {
                workspace_id: agent["workspace_id"].as_str().expect("ws").into(),
            },
            10,
        )
        .await
        .expect("audit");
    let names: Vec<&str> = actions.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        names,
        ["phone_number.created", "agent.updated", "agent.created"]
    );
    control.stop().await;
    db.cleanup().await;
}

async fn another_workspace_sees_nothing(backend: Backend) {
    let (db, control, api, key, _) = setup(backend).await;
    let (_, agent, _) = api
        .call("POST", "/v1/agents", &key, Some(json!({"name": "Mine"})))
        .await;
    let id = agent["id"].as_str().expect("id").to_owned();
    let other_ws = control
        .store
        .create_workspace("B")
        .await
        .expect("workspace");
    let other = control
        .store
        .create_api_key(
            &WorkspaceScope {
                workspace_id: other_ws,
            },
            "o",
            Role::Owner,
        )
        .await
        .expect("key");
    let (status, body, content_type) = api
        .call("GET", &format!("/v1/agents/{id}"), &other.key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(content_type, "application/problem+json");
    let (status, _, _) = api
        .call(
            "PATCH",
            &format!("/v1/agents/{id}"),
            &other.key,
            Some(json!({"name": "Stolen"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list, _) = api.call("GET", "/v1/agents", &other.key, None).await;
    assert_eq!(list["data"], json!([]));
    // Routing a number to another workspace's agent is refused as if the agent did not exist.
    let (status, body, _) = api
        .call(
            "POST",
            "/v1/phone-numbers",
            &other.key,
            Some(json!({"number": "+15550199", "agent_id": id})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "agent_id");
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn bad_input_gets_problem_json_naming_the_field() {
    let (db, control, api, key, _) = setup(Backend::Sqlite).await;
    let (status, body, content_type) = api
        .call(
            "POST",
            "/v1/agents",
            &key,
            Some(json!({"name": "Desk", "frist_message": "typo"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["errors"][0]["field"], "frist_message");
    assert_eq!(body["status"], 422);

    let (status, body, _) = api
        .call(
            "POST",
            "/v1/agents",
            &key,
            Some(json!({"name": "Desk", "max_call_seconds": "long"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "max_call_seconds");

    let (status, body, _) = api
        .call("POST", "/v1/agents", &key, Some(json!({"language": "en"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "name");

    let (status, body, _) = api
        .call(
            "POST",
            "/v1/phone-numbers",
            &key,
            Some(json!({"number": "not a number", "agent_id": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["number", "agent_id"]);

    let response = reqwest::Client::new()
        .post(format!("{}/v1/agents", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("problem body");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("line 1")),
        "{body}"
    );

    let (status, _, _) = api.call("GET", "/v1/agents/not-a-uuid", &key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api.call("GET", "/v1/nothing-here", &key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn unknown_paths_and_unserved_methods_answer_problem_json() {
    let (db, control, api, key, _) = setup(Backend::Sqlite).await;
    for (method, path, status, bearer) in [
        ("GET", "/v1/nope", StatusCode::NOT_FOUND, key.as_str()),
        ("GET", "/v1/nope", StatusCode::NOT_FOUND, ""),
        ("GET", "/nope", StatusCode::NOT_FOUND, ""),
        (
            "DELETE",
            "/v1/edges",
            StatusCode::METHOD_NOT_ALLOWED,
            key.as_str(),
        ),
        (
            "PUT",
            "/v1/agents",
            StatusCode::METHOD_NOT_ALLOWED,
            key.as_str(),
        ),
        (
            "GET",
            "/v1/workflows/validate",
            StatusCode::METHOD_NOT_ALLOWED,
            "",
        ),
        ("POST", "/healthz", StatusCode::METHOD_NOT_ALLOWED, ""),
    ] {
        let (answered, body, content_type) = api.call(method, path, bearer, None).await;
        assert_eq!(answered, status, "{method} {path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert_eq!(body["status"], status.as_u16(), "{method} {path}: {body}");
        assert!(body["title"].is_string(), "{method} {path}: {body}");
    }
    // A 405 still says which methods the route serves.
    let response = api
        .http
        .delete(format!("{}/v1/edges", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(allow.contains("GET"), "Allow: {allow}");
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn callers_need_a_valid_key_and_a_sufficient_role() {
    let (db, control, api, _, viewer) = setup(Backend::Sqlite).await;
    let response = reqwest::get(format!("{}/v1/agents", api.base))
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let (status, _, _) = api.call("GET", "/v1/agents", "fk_wrong", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = api.call("GET", "/v1/agents", &viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = api
        .call("POST", "/v1/agents", &viewer, Some(json!({"name": "X"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let (db, control, api, _, _) = setup(Backend::Sqlite).await;
    for (path, expected) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let text = reqwest::get(format!("{}{path}", api.base))
            .await
            .expect("probe")
            .text()
            .await
            .expect("text");
        assert_eq!(text, expected);
    }
    let metrics = reqwest::get(format!("{}/metrics", api.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("freya_control_http_requests_total"),
        "{metrics}"
    );
    let page = reqwest::get(format!("{}/", api.base))
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("text");
    assert!(page.contains("<title>Freya</title>"));
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    agents_and_numbers_round_trip_and_patch,
    another_workspace_sees_nothing
);

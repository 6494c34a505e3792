//! The REST API over real HTTP on loopback: authentication, strict JSON with problem+json
//! errors naming the field, workspace isolation, roles, and the resources edges are built from.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{started, workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::{Backend, TestDb};
use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;

/// A control plane, a client, and an editor's and a viewer's key of one workspace.
async fn setup(backend: Backend) -> (TestDb, ControlPlane, Api, String, String) {
    let (db, control, api) = started(backend).await;
    let (_, [_, _, editor, viewer]) = workspace_with_keys(&control, "A").await;
    (db, control, api, editor, viewer)
}

async fn agents_and_numbers_round_trip_and_patch(backend: Backend) {
    let (db, control, api, key, _) = setup(backend).await;
    let desk = json!({"name": "Desk", "first_message": "Hi"});
    let agent = api.create("/v1/agents", &key, desk).await;
    assert_eq!(agent["language"], "en");
    assert!(agent["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let id = agent["id"].as_str().expect("id").to_owned();

    let patch = json!({"first_message": "Hello", "variables": {"city": "Oslo"}});
    let path = format!("/v1/agents/{id}");
    let patched = api.expect(200, "PATCH", &path, &key, Some(patch)).await;
    assert_eq!(patched["first_message"], "Hello");
    assert_eq!(patched["name"], "Desk");
    assert_eq!(patched["variables"]["city"], "Oslo");

    let number = json!({"number": "+15550111", "agent_id": id});
    let numbers = "/v1/phone-numbers";
    api.create(numbers, &key, number.clone()).await;
    let list = api.expect(200, "GET", numbers, &key, None).await;
    assert_eq!(list["data"][0]["number"], "+15550111");
    api.expect(409, "POST", numbers, &key, Some(number)).await;

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
    let mine = json!({"name": "Mine"});
    let agent = api.create("/v1/agents", &key, mine).await;
    let id = agent["id"].as_str().expect("id").to_owned();
    let (_, [other, ..]) = workspace_with_keys(&control, "B").await;
    let path = format!("/v1/agents/{id}");
    let answer = api.call("GET", &path, &other, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json");
    let stolen = json!({"name": "Stolen"});
    api.expect(404, "PATCH", &path, &other, Some(stolen)).await;
    let list = api.expect(200, "GET", "/v1/agents", &other, None).await;
    assert_eq!(list["data"], json!([]));
    // Routing a number to another workspace's agent is refused as if the agent did not exist.
    let number = json!({"number": "+15550199", "agent_id": id});
    let body = api
        .expect(422, "POST", "/v1/phone-numbers", &other, Some(number))
        .await;
    assert_eq!(body["errors"][0]["field"], "agent_id");
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn bad_input_gets_problem_json_naming_the_field() {
    let (db, control, api, key, _) = setup(Backend::Sqlite).await;
    for (path, body, fields) in [
        (
            "/v1/agents",
            json!({"name": "Desk", "frist_message": "typo"}),
            &["frist_message"][..],
        ),
        (
            "/v1/agents",
            json!({"name": "Desk", "max_call_seconds": "long"}),
            &["max_call_seconds"],
        ),
        ("/v1/agents", json!({"language": "en"}), &["name"]),
        (
            "/v1/phone-numbers",
            json!({"number": "not a number", "agent_id": "x"}),
            &["number", "agent_id"],
        ),
    ] {
        let answer = api.call("POST", path, &key, Some(body)).await;
        let body = &answer.body;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.content_type(), "application/problem+json");
        assert_eq!(body["status"], 422);
        let named: Vec<&str> = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(named, fields, "{body}");
    }

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

    api.expect_each(&[
        ("GET", "/v1/agents/not-a-uuid", &key, None, 404),
        ("GET", "/v1/nothing-here", &key, None, 404),
    ])
    .await;
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
        ("DELETE", "/v1/edges", StatusCode::METHOD_NOT_ALLOWED, &key),
        ("PUT", "/v1/agents", StatusCode::METHOD_NOT_ALLOWED, &key),
        (
            "GET",
            "/v1/workflows/validate",
            StatusCode::METHOD_NOT_ALLOWED,
            "",
        ),
        ("POST", "/healthz", StatusCode::METHOD_NOT_ALLOWED, ""),
    ] {
        let answer = api.call(method, path, bearer, None).await;
        let body = &answer.body;
        assert_eq!(answer.status, status, "{method} {path}: {body}");
        let content_type = answer.content_type();
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
    api.expect_each(&[
        ("GET", "/v1/agents", "fk_wrong", None, 401),
        ("GET", "/v1/agents", &viewer, None, 200),
        (
            "POST",
            "/v1/agents",
            &viewer,
            Some(json!({"name": "X"})),
            403,
        ),
    ])
    .await;
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

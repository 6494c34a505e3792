//! `/v1/workflows` versions over HTTP, on SQLite and PostgreSQL: drafts that change while
//! published versions stay exactly as published, paging, and phone numbers that route to a
//! workflow's latest published version — refused until there is one — all the way into an
//! edge's snapshot, which never carries the editor's node positions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::flows::{api_support_line, flow_world, located};
use crate::support::on_both_engines;
use crate::support::{local_snapshot, Backend};
use freya_shared::snapshot::CallTarget;

async fn published_versions_are_immutable_and_drafts_change(backend: Backend) {
    let w = flow_world(backend).await;
    let editor = &w.keys[2];
    let created = w.create(api_support_line(&w.agent)).await;
    assert_eq!(created["latest_version"], Value::Null);
    assert_eq!(created["nodes"][0]["id"], "greet");
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/workflows/{id}");
    let publish = format!("{path}/publish");
    let first = w.api.expect(201, "POST", &publish, editor, None).await;
    assert_eq!(first["version"], 1);
    // Change the draft (merge patch: `nodes` replaced whole is not needed for a rename).
    let patch = json!({"name": "Support line v2", "variables": {"business": "Acme Corp"}});
    let patched = w.api.expect(200, "PATCH", &path, editor, Some(patch)).await;
    assert_eq!(patched["variables"]["business"], "Acme Corp");
    assert_eq!(patched["variables"]["tier"], "basic");
    assert_eq!(patched["latest_version"], 1);
    // A patch that breaks the draft is refused whole, and the draft stays.
    let nowhere = json!({"start": "nowhere"});
    let broken = w
        .api
        .expect(422, "PATCH", &path, editor, Some(nowhere))
        .await;
    assert_eq!(located(&broken), [(Value::Null, json!("start"))]);
    let second = w.api.expect(201, "POST", &publish, editor, None).await;
    assert_eq!(second["version"], 2);
    // Version 1 is exactly what was published first; version 2 has the change.
    let v1 = w.read(&format!("{path}/versions/1")).await;
    assert_eq!(v1["definition"], first["definition"]);
    assert_eq!(v1["definition"]["name"], "Support line");
    assert_eq!(v1["definition"]["variables"]["business"], "Acme");
    let v2 = w.read(&format!("{path}/versions/2")).await;
    assert_eq!(v2["definition"]["name"], "Support line v2");
    let versions = w.read(&format!("{path}/versions")).await;
    let numbers: Vec<&Value> = versions["data"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [&json!(2), &json!(1)]);
    for missing in ["3", "0", "x"] {
        let version = format!("{path}/versions/{missing}");
        w.api.expect(404, "GET", &version, editor, None).await;
    }
    // Nothing about the API can change a version: there is no route for it.
    let version = format!("{path}/versions/1");
    let rename = json!({"name": "x"});
    w.api
        .expect(405, "PATCH", &version, editor, Some(rename))
        .await;
    // The audit log names every change.
    let audit = w.api.call("GET", "/v1/audit-log", &w.keys[0], None).await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("workflow."))
        .collect();
    assert_eq!(
        actions,
        [
            "workflow.published",
            "workflow.updated",
            "workflow.published",
            "workflow.created"
        ]
    );
    w.stop().await;
}

async fn workflows_are_listed_a_page_at_a_time(backend: Backend) {
    let w = flow_world(backend).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut flow = api_support_line(&w.agent);
        flow["name"] = json!(format!("Flow {n}"));
        let created = w.create(flow).await;
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/workflows?limit=2".to_owned();
    loop {
        let page = w.api.expect(200, "GET", &path, &w.keys[3], None).await;
        let data = page["data"].as_array().expect("data");
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|f| f["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/workflows?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    w.api
        .expect(400, "GET", "/v1/workflows?cursor=zz", &w.keys[3], None)
        .await;
    w.stop().await;
}

async fn numbers_route_to_the_latest_published_version(backend: Backend) {
    let w = flow_world(backend).await;
    let editor = &w.keys[2];
    let created = w.create(api_support_line(&w.agent)).await;
    let id = created["id"].as_str().expect("id").to_owned();
    // Exactly one target, named by field.
    for (body, field) in [
        (
            json!({"number": "+15557000001", "agent_id": w.agent, "workflow_id": id}),
            "workflow_id",
        ),
        (json!({"number": "+15557000001"}), "agent_id"),
        (
            json!({"number": "+15557000001", "workflow_id": "nope"}),
            "workflow_id",
        ),
        // No published version yet: nothing could answer.
        (
            json!({"number": "+15557000001", "workflow_id": id}),
            "workflow_id",
        ),
    ] {
        let answer = w
            .api
            .call("POST", "/v1/phone-numbers", editor, Some(body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{}", answer.body);
    }
    w.api
        .call("POST", &format!("/v1/workflows/{id}/publish"), editor, None)
        .await;
    let number = w
        .api
        .call(
            "POST",
            "/v1/phone-numbers",
            editor,
            Some(json!({"number": "+15557000001", "workflow_id": id})),
        )
        .await;
    assert_eq!(number.status, StatusCode::CREATED, "{}", number.body);
    assert_eq!(number.body["workflow_id"], json!(id));
    assert!(number.body.get("agent_id").is_none());
    let snapshot = local_snapshot(&w.control).await;
    let routed = snapshot
        .numbers
        .iter()
        .find(|n| n.number == "+15557000001")
        .expect("the number is routed");
    assert_eq!(
        routed.target,
        CallTarget::Workflow {
            workflow_id: id.clone(),
            version: 1
        }
    );
    assert_eq!(snapshot.workflows.len(), 1);
    assert_eq!(snapshot.workflows[0].definition.name, "Support line");
    assert!(
        snapshot.agents.iter().any(|a| a.id == w.agent),
        "the workflow's agents travel with it"
    );
    let route = snapshot.route("+15557000001").expect("routes");
    assert!(route.agent().is_none());
    // A new version moves the number on; the old one stays stored.
    w.api
        .call(
            "PATCH",
            &format!("/v1/workflows/{id}"),
            editor,
            Some(json!({"name": "Support line v2"})),
        )
        .await;
    w.api
        .call("POST", &format!("/v1/workflows/{id}/publish"), editor, None)
        .await;
    let snapshot = local_snapshot(&w.control).await;
    assert_eq!(snapshot.workflows.len(), 1);
    assert_eq!(snapshot.workflows[0].version, 2);
    assert_eq!(snapshot.workflows[0].definition.name, "Support line v2");
    // The agent a workflow hands calls to cannot go either.
    let agent_kept = w
        .api
        .expect(
            409,
            "DELETE",
            &format!("/v1/agents/{}", w.agent),
            editor,
            None,
        )
        .await;
    assert!(agent_kept["detail"]
        .as_str()
        .unwrap_or("")
        .contains("Support line v2"));
    // The workflow cannot go while the number routes to it; switching to an agent frees it.
    let refused = w
        .api
        .call("DELETE", &format!("/v1/workflows/{id}"), editor, None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let number_id = number.body["id"].as_str().expect("number id");
    let switched = w
        .api
        .call(
            "PATCH",
            &format!("/v1/phone-numbers/{number_id}"),
            editor,
            Some(json!({"workflow_id": null, "agent_id": w.agent})),
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.body);
    let deleted = w
        .api
        .call("DELETE", &format!("/v1/workflows/{id}"), editor, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = w
        .api
        .call(
            "GET",
            &format!("/v1/workflows/{id}/versions/1"),
            editor,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    w.stop().await;
}

async fn node_positions_are_kept_with_the_draft_and_versions_but_never_sent_to_edges(
    backend: Backend,
) {
    let w = flow_world(backend).await;
    let editor = &w.keys[2];
    // The editor's layout: a position on every node.
    let mut flow = api_support_line(&w.agent);
    for (i, node) in flow["nodes"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        node["position"] = json!({"x": 240 * i, "y": 120});
    }
    let created = w.create(flow).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created["nodes"][2]["position"],
        json!({"x": 480.0, "y": 120.0})
    );
    // A position is two numbers: anything else is answered at the node's field.
    let mut bad = created.clone();
    bad["nodes"][0]["position"] = json!({"x": 1, "y": 2, "z": 3});
    let refused = w
        .api
        .call(
            "PATCH",
            &format!("/v1/workflows/{id}"),
            editor,
            Some(json!({"nodes": bad["nodes"]})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    w.api
        .expect(
            201,
            "POST",
            &format!("/v1/workflows/{id}/publish"),
            editor,
            None,
        )
        .await;
    let version = w
        .api
        .expect(
            200,
            "GET",
            &format!("/v1/workflows/{id}/versions/1"),
            editor,
            None,
        )
        .await;
    assert_eq!(
        version["definition"]["nodes"][2]["position"],
        json!({"x": 480.0, "y": 120.0}),
        "{version}"
    );
    w.api
        .create(
            "/v1/phone-numbers",
            editor,
            json!({"number": "+15557000002", "workflow_id": id}),
        )
        .await;
    // What an edge runs has no layout: an edge of an older release refuses unknown node fields.
    let snapshot = local_snapshot(&w.control).await;
    let sent = serde_json::to_string(&snapshot.workflows).expect("serializes");
    assert_eq!(snapshot.workflows.len(), 1);
    assert!(!sent.contains("position"), "{sent}");
    w.stop().await;
}

on_both_engines!(
    published_versions_are_immutable_and_drafts_change,
    workflows_are_listed_a_page_at_a_time,
    numbers_route_to_the_latest_published_version,
    node_positions_are_kept_with_the_draft_and_versions_but_never_sent_to_edges,
);

//! A number reachable in several regions, on SQLite and PostgreSQL: the API validates and shows
//! its home and further regions, the edges of every one of them answer it (real edges in two
//! regions learn and forget it as it moves), outbound calls from it go to the home region's
//! edge first and to a further region's when home has none, and calls keep their edge's region.

use crate::support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::{edge_config, eventually, until_edge_holds, Backend, SECRET};
use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_shared::ids::{new_id, now_ms, rfc3339};
use freya_shared::model::{AgentSpec, CallEvent, CallEventKind};

async fn new_agent(control: &ControlPlane, ws: &str) -> String {
    let spec: AgentSpec = serde_json::from_value(json!({"name": "Regional"})).expect("spec");
    let scope = WorkspaceScope {
        workspace_id: ws.into(),
    };
    control
        .store
        .create_agent(&scope, "t", &spec)
        .await
        .expect("agent")
        .id
}

/// An edge of `region` linked to `control`, with its data directory.
async fn edge_in(control: &ControlPlane, region: &str) -> (Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = edge_config(dir.path(), control.grpc_addr, SECRET);
    config.region = region.into();
    let edge = Edge::start(&config).await.expect("edge starts");
    (edge, dir)
}

/// Waits until `edge` routes `number` (`true`) or no longer does (`false`).
async fn until_edge_routes(edge: &Edge, number: &str, routes: bool) {
    let what = format!("edge routing {number} to be {routes}");
    until_edge_holds(edge, &what, |s| s.route(number).is_some() == routes).await;
}

/// The numbers of the snapshot for `region`, each with its home region.
async fn snapshot_numbers(control: &ControlPlane, region: &str) -> Vec<(String, Option<String>)> {
    control
        .store
        .edge_snapshot(region)
        .await
        .expect("snapshot")
        .numbers
        .into_iter()
        .map(|n| (n.number, n.home_region))
        .collect()
}

async fn invalid_regions_are_refused_naming_the_field(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, editor, _]) = workspace_with_keys(&control, "Regions").await;
    let agent = new_agent(&control, &ws).await;
    let create = |regions: Value, region: Value| json!({"number": "+15550142", "agent_id": agent, "region": region, "regions": regions});
    for (body, field) in [
        (create(json!(["eu", "Europe"]), json!("us")), "regions[1]"),
        (create(json!(["eu", "eu"]), json!("us")), "regions[1]"),
        (create(json!(["eu", "ap", "us"]), json!("us")), "regions[2]"),
        (create(json!(["eu"]), Value::Null), "regions"),
        (create(json!("eu"), json!("us")), "regions"),
    ] {
        let answer = api
            .call("POST", "/v1/phone-numbers", &editor, Some(body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{}", answer.body);
    }

    let created = api
        .create(
            "/v1/phone-numbers",
            &editor,
            create(json!(["eu", "ap"]), json!("us")),
        )
        .await;
    assert_eq!(created["region"], "us");
    assert_eq!(created["regions"], json!(["eu", "ap"]));
    let path = format!("/v1/phone-numbers/{}", created["id"].as_str().expect("id"));
    // A patch is validated as the whole number it makes.
    for (patch, field) in [
        (json!({"region": null}), "regions"),
        (json!({"region": "eu"}), "regions[0]"),
        (json!({"regions": ["ap", "Ap"]}), "regions[1]"),
    ] {
        let answer = api.call("PATCH", &path, &editor, Some(patch.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{}", answer.body);
    }
    // Another workspace neither sees nor moves it.
    let (_, [_, _, stranger, _]) = workspace_with_keys(&control, "Elsewhere").await;
    api.expect(404, "GET", &path, &stranger, None).await;
    let moved = api
        .call("PATCH", &path, &stranger, Some(json!({"regions": ["sa"]})))
        .await;
    assert_eq!(moved.status, StatusCode::NOT_FOUND);
    let listed = api.call("GET", "/v1/phone-numbers", &stranger, None).await;
    assert_eq!(listed.body["data"], json!([]));
    let unchanged = api.call("GET", &path, &editor, None).await;
    assert_eq!(unchanged.body["regions"], json!(["eu", "ap"]));
    let listed = api.call("GET", "/v1/phone-numbers", &editor, None).await;
    assert_eq!(listed.body["data"][0]["regions"], json!(["eu", "ap"]));

    // Dropping the further regions, then the home: back to "every region".
    let patched = api
        .call("PATCH", &path, &editor, Some(json!({"regions": null})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["regions"], json!([]));
    let everywhere = api
        .call("PATCH", &path, &editor, Some(json!({"region": null})))
        .await;
    assert_eq!(everywhere.status, StatusCode::OK, "{}", everywhere.body);
    assert!(
        everywhere.body.get("region").is_none(),
        "{}",
        everywhere.body
    );
    assert_eq!(
        snapshot_numbers(&control, "anywhere").await,
        [("+15550142".to_owned(), None)]
    );
    control.stop().await;
    db.cleanup().await;
}

async fn edges_of_every_reachable_region_answer_and_follow_a_move(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, editor, _]) = workspace_with_keys(&control, "Reach").await;
    let agent = new_agent(&control, &ws).await;
    let (us, _us_dir) = edge_in(&control, "us").await;
    let (eu, _eu_dir) = edge_in(&control, "eu").await;

    let created = api
        .create(
            "/v1/phone-numbers",
            &editor,
            json!({"number": "+15550143", "agent_id": agent, "region": "us", "regions": ["eu"]}),
        )
        .await;
    let path = format!("/v1/phone-numbers/{}", created["id"].as_str().expect("id"));
    let home = Some("us".to_owned());
    let entry = vec![("+15550143".to_owned(), home.clone())];
    assert_eq!(snapshot_numbers(&control, "us").await, entry);
    assert_eq!(snapshot_numbers(&control, "eu").await, entry);
    assert!(snapshot_numbers(&control, "ap").await.is_empty());
    let eu_snapshot = control.store.edge_snapshot("eu").await.expect("snapshot");
    assert!(eu_snapshot.agent(&agent).is_some(), "eu carries the agent");

    // Both edges answer it, each knowing whether it is home.
    until_edge_routes(&us, "+15550143", true).await;
    until_edge_routes(&eu, "+15550143", true).await;
    let number_at = |edge: &Edge| {
        edge.state
            .snapshot()
            .route("+15550143")
            .map(|r| r.number.is_home_in(&edge.state.snapshot().region))
    };
    assert_eq!(number_at(&us), Some(true));
    assert_eq!(number_at(&eu), Some(false));

    // Moving the further region from eu to ap: eu's edge forgets it, us keeps it.
    api.expect(
        200,
        "PATCH",
        &path,
        &editor,
        Some(json!({"regions": ["ap"]})),
    )
    .await;
    until_edge_routes(&eu, "+15550143", false).await;
    assert_eq!(snapshot_numbers(&control, "ap").await, entry);
    assert!(snapshot_numbers(&control, "eu").await.is_empty());
    assert!(control
        .store
        .edge_snapshot("eu")
        .await
        .expect("snapshot")
        .agent(&agent)
        .is_none());
    assert_eq!(number_at(&us), Some(true));

    // Moving home to eu: now us forgets it and eu answers it as its home.
    let rehomed = api
        .call("PATCH", &path, &editor, Some(json!({"region": "eu"})))
        .await;
    assert_eq!(rehomed.status, StatusCode::OK, "{}", rehomed.body);
    until_edge_routes(&us, "+15550143", false).await;
    until_edge_routes(&eu, "+15550143", true).await;
    assert_eq!(number_at(&eu), Some(true));

    // Deleting it takes it from every region, further ones included.
    let deleted = api.call("DELETE", &path, &editor, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    until_edge_routes(&eu, "+15550143", false).await;
    assert!(snapshot_numbers(&control, "ap").await.is_empty());
    us.stop().await;
    eu.stop().await;
    control.stop().await;
    db.cleanup().await;
}

/// Places a call from `from` until it is accepted, returning the call.
async fn placed_call(api: &Api, editor: &str, from: &str) -> Value {
    eventually(
        Duration::from_secs(15),
        "an outbound call to be accepted",
        || {
            let api = api.clone();
            let editor = editor.to_owned();
            let body = json!({"from": from, "to": "+4712345678"});
            async move {
                let answer = api.call("POST", "/v1/calls", &editor, Some(body)).await;
                (answer.status == StatusCode::ACCEPTED).then_some(answer.body)
            }
        },
    )
    .await
}

/// Waits until the control plane no longer lists the edge `id` as online (offline, or draining
/// on its way out): one it will not hand calls to.
async fn until_offline(api: &Api, key: &str, id: &str) {
    eventually(
        Duration::from_secs(15),
        "the edge to be seen out of service",
        || {
            let api = api.clone();
            let key = key.to_owned();
            async move {
                let edges = api.call("GET", "/v1/edges", &key, None).await.body;
                edges
                    .as_array()?
                    .iter()
                    .any(|e| e["id"] == id && e["status"] != "online")
                    .then_some(())
            }
        },
    )
    .await;
}

async fn outbound_calls_prefer_the_home_region_then_the_further_ones(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, editor, _]) = workspace_with_keys(&control, "Out").await;
    let agent = new_agent(&control, &ws).await;
    api.create(
        "/v1/phone-numbers",
        &editor,
        json!({"number": "+15550144", "agent_id": agent, "region": "us", "regions": ["eu"]}),
    )
    .await;
    // The eu edge starts first, so it is not the home edge's head start that picks it.
    let (eu, _eu_dir) = edge_in(&control, "eu").await;
    let (us, _us_dir) = edge_in(&control, "us").await;
    until_edge_routes(&eu, "+15550144", true).await;
    until_edge_routes(&us, "+15550144", true).await;
    // Both can take a call, so the choice below is the preference, not who connected first.
    for edge in [&eu, &us] {
        eventually(
            Duration::from_secs(10),
            "the edge's command stream",
            || async { control.commands.is_connected(&edge.id).then_some(()) },
        )
        .await;
    }

    let at_home = placed_call(&api, &editor, "+15550144").await;
    assert_eq!(at_home["edge_id"], us.id.as_str(), "{at_home}");
    assert_eq!(at_home["region"], "us", "{at_home}");
    let again = placed_call(&api, &editor, "+15550144").await;
    assert_eq!(again["edge_id"], us.id.as_str(), "{again}");

    // Home has no edge left: the further region places the call.
    let us_id = us.id.clone();
    us.stop().await;
    until_offline(&api, &editor, &us_id).await;
    let abroad = placed_call(&api, &editor, "+15550144").await;
    assert_eq!(abroad["edge_id"], eu.id.as_str(), "{abroad}");
    assert_eq!(abroad["region"], "eu", "{abroad}");

    // No region has an edge: the answer names the regions tried.
    let eu_id = eu.id.clone();
    eu.stop().await;
    until_offline(&api, &editor, &eu_id).await;
    let none = api
        .expect(
            503,
            "POST",
            "/v1/calls",
            &editor,
            Some(json!({"from": "+15550144", "to": "+4712345678"})),
        )
        .await;
    let detail = none["detail"].as_str().expect("detail");
    assert!(detail.contains("regions us, eu"), "{detail}");
    control.stop().await;
    db.cleanup().await;
}

async fn an_inbound_call_keeps_the_region_of_the_edge_that_answered(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, _, viewer]) = workspace_with_keys(&control, "In").await;
    support::register_edge(&control, "edge-eu-1", "eu").await;
    let call = new_id();
    let started = CallEvent::raw(
        &call,
        &ws,
        CallEventKind::Started,
        json!({"direction": "inbound", "from": "+4790000000", "to": "+15550145"}),
    );
    control
        .store
        .record_call_event("edge-eu-1", &started)
        .await
        .expect("event");
    let answer = api
        .expect(200, "GET", &format!("/v1/calls/{call}"), &viewer, None)
        .await;
    assert_eq!(answer["edge_id"], "edge-eu-1");
    assert_eq!(answer["region"], "eu");
    let day_ms = 86_400_000;
    let range = format!(
        "/v1/analytics/calls?from={}&to={}&interval=day&group_by=region",
        rfc3339(now_ms() - day_ms),
        rfc3339(now_ms() + day_ms)
    );
    let by_region = api.expect(200, "GET", &range, &viewer, None).await;
    assert_eq!(by_region["buckets"][0]["group"], "eu", "{}", by_region);

    // The edge comes back in another region: the call happened in eu, and stays there.
    support::register_edge(&control, "edge-eu-1", "us").await;
    let again = api
        .call("GET", &format!("/v1/calls/{call}"), &viewer, None)
        .await;
    assert_eq!(again.body["region"], "eu");
    let by_region = api.call("GET", &range, &viewer, None).await;
    assert_eq!(
        by_region.body["buckets"][0]["group"], "eu",
        "{}",
        by_region.body
    );
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    invalid_regions_are_refused_naming_the_field,
    edges_of_every_reachable_region_answer_and_follow_a_move,
    outbound_calls_prefer_the_home_region_then_the_further_ones,
    an_inbound_call_keeps_the_region_of_the_edge_that_answered,
);

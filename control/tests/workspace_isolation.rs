//! Workspaces are apart, on SQLite and PostgreSQL: another workspace's owner reading, changing
//! or deleting any resource of a workspace gets a 404 — the resource does not exist for them —
//! and its lists show none of the workspace's ids; afterwards nothing of it was changed.

use reqwest::StatusCode;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::route_table::{body_for, fill, quiet_config, route_world, routes};
use crate::support::{Backend, TestDb};
use freya_control::server::ControlPlane;

async fn another_workspace_gets_404_for_every_resource(backend: Backend) {
    let db = TestDb::new(backend).await;
    let control = ControlPlane::start(&quiet_config(&db.url))
        .await
        .expect("control starts");
    let api = Api::of(&control);
    let (_, [stranger, ..]) = workspace_with_keys(&control, "Stranger").await;
    let w = route_world(&control).await;
    let mut failures = Vec::new();
    for route in routes() {
        let path = fill(route.path, &w);
        let body = body_for(&control, &route, &w).await;
        let answer = api.call(route.method, &path, &stranger, body).await;
        if route.names_a_resource {
            if answer.status != StatusCode::NOT_FOUND {
                failures.push(format!(
                    "{} {}: expected 404, got {} {}",
                    route.method, route.path, answer.status, answer.body
                ));
            }
        } else if route.method == "GET" {
            // A list shows the stranger's own things only: none of the world's ids appear.
            let text = answer.body.to_string();
            let world_ids = [
                &w.ws,
                &w.agent,
                &w.spare_agent,
                &w.number,
                &w.call,
                &w.member,
                &w.api_key,
                &w.provider,
                &w.webhook,
                &w.delivery,
                &w.workflow,
                &w.spare_workflow,
            ];
            if let Some(id) = world_ids.iter().find(|id| text.contains(id.as_str())) {
                failures.push(format!(
                    "{} {} shows {id}: {text}",
                    route.method, route.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing of the world was changed or deleted by the stranger.
    let owner = &w.keys[0];
    for path in [
        format!("/v1/workspaces/{}", w.ws),
        format!("/v1/agents/{}", w.spare_agent),
        format!("/v1/phone-numbers/{}", w.number),
        format!("/v1/workspaces/{}/members", w.ws),
        format!("/v1/providers/{}", w.provider),
        format!("/v1/webhooks/{}", w.webhook),
        format!("/v1/workflows/{}", w.spare_workflow),
        format!("/v1/workflows/{}/versions/1", w.workflow),
    ] {
        let answer = api.call("GET", &path, owner, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    assert_eq!(
        api.call("GET", &format!("/v1/workspaces/{}", w.ws), owner, None)
            .await
            .body["name"],
        "World"
    );
    let members = api
        .call(
            "GET",
            &format!("/v1/workspaces/{}/members", w.ws),
            owner,
            None,
        )
        .await;
    assert!(members.body["data"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["user_id"] == w.member.as_str() && m["role"] == "viewer"));
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(another_workspace_gets_404_for_every_resource);

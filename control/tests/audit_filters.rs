//! `GET /v1/audit-log` narrowed by action (or its start), resource type, resource and actor,
//! on SQLite and PostgreSQL over real HTTP: each filter keeps exactly its entries, the filters
//! combine, a filtered list pages by its cursor without losing or repeating an entry, `%` and
//! `_` in a filter are literal, and a filter too long is a 400 naming it.

use crate::support;

use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::Backend;

/// The entries of `GET /v1/audit-log?{query}` read by `key`, page by page (`limit` each).
async fn entries(api: &Api, key: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/v1/audit-log?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.expect(200, "GET", &path, key, None).await;
        all.extend(page["data"].as_array().expect("entries").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
    panic!("more than 100 pages for {query}");
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect()
}

async fn each_filter_keeps_exactly_its_entries_across_pages(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [owner, admin, ..]) = workspace_with_keys(&control, "Audit").await;
    let mut agents = Vec::new();
    for name in ["One", "Two", "Three"] {
        let made = api
            .create("/v1/agents", &owner, json!({"name": name}))
            .await;
        agents.push(made["id"].as_str().expect("id").to_owned());
    }
    api.expect(
        200,
        "PATCH",
        &format!("/v1/agents/{}", agents[0]),
        &admin,
        Some(json!({"name": "One again"})),
    )
    .await;
    let flow = json!({"name": "F", "start": "hi", "nodes": [
        {"id": "hi", "type": "say", "text": "Hello.", "next": "bye"},
        {"id": "bye", "type": "end", "text": "Goodbye."}
    ]});
    api.create("/v1/workflows", &admin, flow).await;

    let everything = entries(&api, &owner, "", 100).await;
    let by_action = |prefix: &str| {
        everything
            .iter()
            .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with(prefix)))
            .count()
    };
    // A start of an action, and a whole one, walked one entry a page.
    let agent_entries = entries(&api, &owner, "action=agent.", 1).await;
    assert_eq!(agent_entries.len(), 4, "{agent_entries:?}");
    assert_eq!(agent_entries.len(), by_action("agent."));
    let created = entries(&api, &owner, "action=agent.created", 1).await;
    assert_eq!(actions(&created), ["agent.created"; 3]);
    let mut ids: Vec<&str> = created
        .iter()
        .filter_map(|e| e["resource_id"].as_str())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = agents.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "each agent once, none repeated across pages");
    // Upper case reads the same on both engines.
    assert_eq!(
        entries(&api, &owner, "action=AGENT.CREATED", 100)
            .await
            .len(),
        3
    );

    let workflows = entries(&api, &owner, "resource_type=workflow", 100).await;
    assert_eq!(actions(&workflows), ["workflow.created"]);
    let first = entries(&api, &owner, &format!("resource_id={}", agents[0]), 100).await;
    assert_eq!(actions(&first), ["agent.updated", "agent.created"]);

    // The admin key's actor: its update and its workflow, nothing of the owner's.
    let admin_actor = first[0]["actor"].as_str().expect("actor").to_owned();
    let by_admin = entries(&api, &owner, &format!("actor={admin_actor}"), 100).await;
    assert_eq!(actions(&by_admin), ["workflow.created", "agent.updated"]);
    let combined = entries(
        &api,
        &owner,
        &format!("actor={admin_actor}&resource_type=agent"),
        100,
    )
    .await;
    assert_eq!(actions(&combined), ["agent.updated"]);

    // Wildcards are literal, and an empty filter is no filter.
    assert!(entries(&api, &owner, "action=%25", 100).await.is_empty());
    assert!(entries(&api, &owner, "action=_gent.", 100).await.is_empty());
    assert!(entries(&api, &owner, "resource_type=agen%25", 100)
        .await
        .is_empty());
    assert_eq!(
        entries(&api, &owner, "action=&actor=", 100).await.len(),
        everything.len()
    );
    control.stop().await;
    db.cleanup().await;
}

async fn a_filter_too_long_or_unknown_is_refused_naming_it(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [owner, ..]) = workspace_with_keys(&control, "Hostile").await;
    for name in ["action", "resource_type", "resource_id", "actor"] {
        let long = "a".repeat(201);
        let path = format!("/v1/audit-log?{name}={long}");
        api.refused_naming(400, "GET", &path, &owner, None, name)
            .await;
    }
    let within = "a".repeat(200);
    api.expect(
        200,
        "GET",
        &format!("/v1/audit-log?actor={within}"),
        &owner,
        None,
    )
    .await;
    let unknown = api
        .expect(400, "GET", "/v1/audit-log?acter=user:1", &owner, None)
        .await;
    assert!(unknown.to_string().contains("acter"), "{unknown}");
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    each_filter_keeps_exactly_its_entries_across_pages,
    a_filter_too_long_or_unknown_is_refused_naming_it,
);

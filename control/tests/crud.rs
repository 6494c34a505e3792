//! The one CRUD path of the five workspace resources, through real HTTP on SQLite and
//! PostgreSQL: every list walks in cursor pages that together hold each item exactly once, in
//! list order (providers by priority); a bad `limit` or `cursor` is a 400 naming it; and the
//! route table's declared roles — read from `src/api/mod.rs` itself, so a route added there is
//! walked here — are enforced: the role just below the declared one gets 403 on every route,
//! the declared one gets past the check.

use crate::support;

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::Backend;
use freya_control::store::Role;
use freya_shared::ids::new_id;

/// One route method and the least role the route table declares for it.
#[derive(Debug)]
struct Declared {
    method: &'static str,
    path: String,
    role: Role,
}

/// The text inside the parentheses that open at `open` (the index just after `(`).
fn balanced(text: &str, open: usize) -> &str {
    let mut depth = 1;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i];
                }
            }
            _ => {}
        }
    }
    &text[open..]
}

/// Every `needs(Role::X, ...)` of the route table in `src/api/mod.rs`, one entry per method.
fn declared_roles() -> Vec<Declared> {
    let source = include_str!("../src/api/mod.rs");
    let start = source.find("fn v1()").expect("fn v1");
    let end = source[start..].find("\n}\n").expect("end of v1") + start;
    let mut declared = Vec::new();
    for route in source[start..end].split(".route(").skip(1) {
        let Some(path) = route
            .trim_start()
            .strip_prefix('"')
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let mut rest = route;
        if !rest.contains("needs(") {
            let open = ["/workflows/validate", "/workflows/{id}/versions"];
            let resource = [
                "/agents",
                "/phone-numbers",
                "/workflows",
                "/providers",
                "/webhooks",
            ];
            assert!(
                open.iter().any(|o| path.starts_with(o))
                    || !resource.iter().any(|r| path.starts_with(r)),
                "{path} serves a resource but declares no role in the route table"
            );
        }
        while let Some(at) = rest.find("needs(") {
            let inner = balanced(rest, at + "needs(".len());
            let (role, methods) = inner.split_once(',').expect("needs(role, route)");
            let role = match role.trim() {
                "Role::Viewer" => Role::Viewer,
                "Role::Editor" => Role::Editor,
                "Role::Admin" => Role::Admin,
                "Role::Owner" => Role::Owner,
                other => panic!("unknown role {other}"),
            };
            for (i, _) in methods.match_indices('(') {
                let word_start = methods[..i]
                    .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != ':')
                    .map_or(0, |s| s + 1);
                let method = match &methods[word_start..i] {
                    "get" => "GET",
                    "post" => "POST",
                    "patch" => "PATCH",
                    "delete" => "DELETE",
                    _ => continue,
                };
                declared.push(Declared {
                    method,
                    path: format!("/v1{path}"),
                    role,
                });
            }
            rest = &rest[at + "needs(".len() + inner.len()..];
        }
    }
    declared
}

/// `path` with every `{...}` replaced by a fresh UUID: the role check comes before any lookup.
fn with_ids(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') {
                new_id()
            } else {
                s.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The key of `role` among a world's keys (owner, admin, editor, viewer).
fn key_of(keys: &[String; 4], role: Role) -> &str {
    match role {
        Role::Owner => &keys[0],
        Role::Admin => &keys[1],
        Role::Editor => &keys[2],
        Role::Viewer => &keys[3],
    }
}

fn below(role: Role) -> Option<Role> {
    match role {
        Role::Viewer => None,
        Role::Editor => Some(Role::Viewer),
        Role::Admin => Some(Role::Editor),
        Role::Owner => Some(Role::Admin),
    }
}

async fn the_route_tables_roles_are_enforced(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let declared = declared_roles();
    // All five resources' create, list, get, patch and delete, publish, and the webhook
    // deliveries and redelivery: a parse that found fewer would test nothing.
    assert!(declared.len() >= 27, "{declared:#?}");
    let writes = declared
        .iter()
        .filter(|d| d.method != "GET" && d.role > Role::Viewer)
        .count();
    assert!(writes >= 15, "{declared:#?}");
    let mut failures = Vec::new();
    for route in &declared {
        // A workspace of its own for each route: the owner's DELETE of the workspace must not
        // take the next route's keys with it.
        let (ws, keys) = workspace_with_keys(&control, "Roles").await;
        let path = with_ids(&route.path.replace("{workspace_id}", &ws));
        let body = (route.method != "GET" && route.method != "DELETE").then(|| json!({}));
        if let Some(lower) = below(route.role) {
            let answer = api
                .call(route.method, &path, key_of(&keys, lower), body.clone())
                .await;
            if answer.status != StatusCode::FORBIDDEN
                || answer.body["status"] != 403
                || !answer.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(route.role.as_str()))
            {
                failures.push(format!(
                    "{} {} as {}: expected 403 naming `{}`, got {} {}",
                    route.method,
                    route.path,
                    lower.as_str(),
                    route.role.as_str(),
                    answer.status,
                    answer.body
                ));
            }
        }
        let answer = api
            .call(route.method, &path, key_of(&keys, route.role), body)
            .await;
        if answer.status == StatusCode::FORBIDDEN {
            failures.push(format!(
                "{} {} as {}: refused at the declared role: {}",
                route.method,
                route.path,
                route.role.as_str(),
                answer.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    control.stop().await;
    db.cleanup().await;
}

/// Creates `count` items of a resource with `body(i)`; their ids in creation order.
async fn create_many(
    api: &Api,
    key: &str,
    path: &str,
    count: usize,
    body: impl Fn(usize) -> Value,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let answer = api.call("POST", path, key, Some(body(i))).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{path}: {}",
            answer.body
        );
        ids.push(answer.body["id"].as_str().expect("id").to_owned());
    }
    ids
}

/// Every id of a list, walked `limit` at a time through `next_cursor`; and how many pages.
async fn walk(api: &Api, key: &str, path: &str, limit: usize) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let answer = api.call("GET", &url, key, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.body);
        let data = answer.body["data"].as_array().expect("data");
        assert!(data.len() <= limit, "{url}: a page larger than its limit");
        ids.extend(
            data.iter()
                .map(|d| d["id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        assert!(pages <= 100, "{path}: the cursor never ends");
        match answer.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (ids, pages),
        }
    }
}

async fn every_list_walks_in_cursor_pages(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, keys) = workspace_with_keys(&control, "Pages").await;
    let owner = &keys[0];
    let agents = create_many(
        &api,
        owner,
        "/v1/agents",
        7,
        |i| json!({"name": format!("A{i}")}),
    )
    .await;
    let numbers = create_many(
        &api,
        owner,
        "/v1/phone-numbers",
        7,
        |i| json!({"number": format!("+1555000{i:04}"), "agent_id": agents[0]}),
    )
    .await;
    let workflows = create_many(&api, owner, "/v1/workflows", 7, |i| {
        json!({"name": format!("F{i}"), "start": "hi", "nodes": [
            {"id": "hi", "type": "say", "text": "Hello.", "next": "bye"},
            {"id": "bye", "type": "end", "text": "Goodbye."}
        ]})
    })
    .await;
    let webhooks = create_many(&api, owner, "/v1/webhooks", 7, |i| {
        json!({"url": format!("https://hooks.example.com/{i}"), "events": ["call.ended"],
               "secret": "0123456789abcdef"})
    })
    .await;
    // Priorities against creation order: the list (and its pages) go by priority, then id.
    let priorities = [5, 1, 4, 1, 3, 0, 2];
    let providers = create_many(
        &api,
        owner,
        "/v1/providers",
        7,
        |i| json!({"name": format!("T{i}"), "host": "sip.example.com", "priority": priorities[i]}),
    )
    .await;
    let mut by_priority: Vec<(i32, &String)> = priorities.iter().copied().zip(&providers).collect();
    by_priority.sort();
    let providers: Vec<String> = by_priority.into_iter().map(|(_, id)| id.clone()).collect();

    for (path, created) in [
        ("/v1/agents", &agents),
        ("/v1/phone-numbers", &numbers),
        ("/v1/workflows", &workflows),
        ("/v1/webhooks", &webhooks),
        ("/v1/providers", &providers),
    ] {
        let (whole, pages) = walk(&api, owner, path, 500).await;
        assert_eq!(pages, 1, "{path}");
        assert_eq!(&whole, created, "{path}: one page holds all, in list order");
        for limit in [1, 2, 3, 7] {
            let (walked, pages) = walk(&api, owner, path, limit).await;
            assert_eq!(
                &walked, created,
                "{path} by {limit}: each item once, in order"
            );
            assert_eq!(pages, created.len().div_ceil(limit), "{path} by {limit}");
            let unique: HashSet<&String> = walked.iter().collect();
            assert_eq!(unique.len(), walked.len(), "{path} by {limit}");
        }
        let unpaged = api.call("GET", path, owner, None).await;
        assert_eq!(unpaged.body["data"].as_array().map(Vec::len), Some(7));
        assert!(
            unpaged.body["next_cursor"].is_null(),
            "{path}: 7 fit the default page"
        );
        for bad in [
            "limit=0",
            "limit=501",
            "limit=x",
            "cursor=zz",
            "cursor=",
            "colour=red",
        ] {
            let answer = api.call("GET", &format!("{path}?{bad}"), owner, None).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path}?{bad}: {}",
                answer.body
            );
            let field = bad.split('=').next().expect("name");
            if bad != "limit=x" {
                // (a malformed number is named by the query parser's own words)
                assert_eq!(answer.body["errors"][0]["field"], field, "{path}?{bad}");
            }
        }
    }
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    the_route_tables_roles_are_enforced,
    every_list_walks_in_cursor_pages,
);

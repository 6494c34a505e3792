//! The OpenAPI document: it parses as OpenAPI 3.1, names every route the router serves (read
//! from the router's source, so a new route without documentation fails here), every documented
//! operation is really served, `$ref`s resolve, authenticated operations declare bearer auth and
//! problem+json errors, operation ids are unique; and `/docs` renders it without fetching anything from elsewhere.

use crate::support;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::http::workspace_with_keys;
use crate::support::Backend;

/// The paths of `.route("...")` calls in `body`, with `prefix`.
fn routes_in(body: &str, prefix: &str) -> Vec<String> {
    body.split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"'))
        .filter_map(|rest| rest.split('"').next())
        .map(|path| format!("{prefix}{path}"))
        .collect()
}

/// Every route the router serves, read from `src/api/mod.rs`.
fn router_paths() -> Vec<String> {
    let source = include_str!("../src/api/mod.rs");
    let v1_start = source.find("fn v1()").expect("fn v1");
    let v1_end = source[v1_start..].find("\n}\n").expect("end of v1") + v1_start;
    let router_start = source.find("fn router(").expect("fn router");
    let router_end = source[router_start..].find("\n}\n").expect("end of router") + router_start;
    let mut paths = routes_in(&source[v1_start..v1_end], "/v1");
    paths.extend(routes_in(&source[router_start..router_end], ""));
    paths
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_covers_every_route_with_auth_and_problem_schemas() {
    let (db, control, api) = support::http::started(Backend::Sqlite).await;
    let (_, [owner, ..]) = workspace_with_keys(&control, "O").await;

    let answer = api.expect(200, "GET", "/openapi.json", "", None).await;
    let doc = answer;
    assert!(
        doc["openapi"].as_str().expect("version").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");

    let expected = router_paths();
    assert!(expected.len() >= 30, "{expected:?}");
    let missing: Vec<&String> = expected
        .iter()
        .filter(|p| !paths.contains_key(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );

    let mut found = Vec::new();
    refs(&doc, &mut found);
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for r in &found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema ref");
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
    assert!(schemas.contains_key("Problem"));
    // A provider is one of the two kinds, each with its own fields.
    let kinds: Vec<&str> = schemas["ProviderSpec"]["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("ProviderSpec is a oneOf: {}", schemas["ProviderSpec"]))
        .iter()
        .filter_map(|s| s["$ref"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "#/components/schemas/SipTrunkSpec",
            "#/components/schemas/TwilioAccountSpec"
        ]
    );
    assert!(schemas["TwilioAccountSpec"]["required"]
        .as_array()
        .expect("required")
        .contains(&serde_json::json!("account_sid")));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let mut operation_ids = std::collections::HashSet::new();
    let fake_id = freya_shared::ids::new_id();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().expect("an operation id");
            assert!(
                operation_ids.insert(id.to_owned()),
                "duplicate operationId {id}"
            );
            let authenticated = path.starts_with("/v1/") && path != "/v1/auth/login";
            if authenticated {
                assert_eq!(
                    op["security"][0]["bearer"],
                    Value::Array(vec![]),
                    "{method} {path}"
                );
                assert!(
                    op["responses"]["401"]["content"]["application/problem+json"].is_object(),
                    "{method} {path} lacks a problem+json 401"
                );
            }
            // Documented means served: never the router's fallback, never 405.
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        fake_id.as_str()
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let served = api
                .call(&method.to_uppercase(), &concrete, &owner, None)
                .await;
            assert_ne!(
                served.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_ne!(served.body["detail"], "no such endpoint", "{method} {path}");
            assert_ne!(
                served.status,
                StatusCode::NOT_IMPLEMENTED,
                "{method} {path}"
            );
        }
    }
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_docs_page_is_self_contained_html() {
    let (db, control, api) = support::http::started(Backend::Sqlite).await;
    let response = api
        .http
        .get(format!("{}/docs", api.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let page = response.text().await.expect("page");
    assert!(page.contains("fetch(\"/openapi.json\")"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no CDN"
    );
    control.stop().await;
    db.cleanup().await;
}

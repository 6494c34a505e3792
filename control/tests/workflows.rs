//! `/v1/workflows` definitions over HTTP, on SQLite and PostgreSQL: broken definitions each
//! answered 422 with the right `{node, field}` (every problem at once), and expressions past
//! the limits refused the same way while the server keeps answering.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::flows::{api_support_line, flow_world, located, with_node, FlowWorld, Located};
use crate::support::on_both_engines;
use crate::support::Backend;

/// `flow` sent by `key` to validation and to creation: both refuse it, 422 with a problem
/// document (`name` names the case); each path and the body it answered.
async fn refused_by_both(
    w: &FlowWorld,
    key: &str,
    flow: &Value,
    name: &str,
) -> Vec<(&'static str, Value)> {
    let mut bodies = Vec::new();
    for path in ["/v1/workflows/validate", "/v1/workflows"] {
        let answer = w.api.call("POST", path, key, Some(flow.clone())).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name} at {path}: {}",
            answer.body
        );
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{name} at {path}"
        );
        bodies.push((path, answer.body));
    }
    bodies
}

async fn broken_definitions_are_answered_at_their_node_and_field(backend: Backend) {
    let w = flow_world(backend).await;
    let good = api_support_line(&w.agent);
    let add = |node: Value| {
        let mut flow = api_support_line(&w.agent);
        if let Some(nodes) = flow["nodes"].as_array_mut() {
            nodes.push(node);
        }
        flow
    };
    let table: Vec<(&str, Value, Vec<Located>)> = vec![
        (
            "unknown next",
            with_node(good.clone(), "accounts", |n| n["next"] = json!("byee")),
            vec![("accounts", "next")],
        ),
        (
            "unreachable node",
            add(json!({"id": "orphan", "type": "end"})),
            vec![("orphan", "id")],
        ),
        (
            "no path to an end",
            {
                let mut flow = with_node(good.clone(), "accounts", |n| n["next"] = json!("hold"));
                if let Some(nodes) = flow["nodes"].as_array_mut() {
                    nodes.push(
                        json!({"id": "hold", "type": "gather", "save_as": "x", "next": "hold"}),
                    );
                }
                flow
            },
            vec![("accounts", "next"), ("hold", "next")],
        ),
        (
            "loop that waits for no input",
            with_node(good.clone(), "accounts", |n| n["next"] = json!("accounts")),
            vec![("accounts", "next"), ("accounts", "next")],
        ),
        (
            "bad expression",
            with_node(good.clone(), "route", |n| {
                n["branches"][0]["when"] = json!("choice ==")
            }),
            vec![("route", "branches[0].when")],
        ),
        (
            "unknown agent",
            with_node(good.clone(), "sales", |n| {
                n["agent_id"] = json!(freya_shared::ids::new_id())
            }),
            vec![("sales", "agent_id")],
        ),
        (
            "bad template variable",
            with_node(good.clone(), "accounts", |n| {
                n["text"] = json!("Hello {{first_name}}.")
            }),
            vec![("accounts", "text")],
        ),
    ];
    let editor = &w.keys[2];
    for (name, flow, expected) in table {
        let expected: Vec<(Value, Value)> = expected
            .into_iter()
            .map(|(node, field)| (json!(node), json!(field)))
            .collect();
        for (path, body) in refused_by_both(&w, editor, &flow, name).await {
            assert_eq!(located(&body), expected, "{name} at {path}");
        }
    }
    // Every problem of one document at once.
    let two = with_node(
        with_node(good.clone(), "accounts", |n| n["next"] = json!("byee")),
        "route",
        |n| n["branches"][0]["when"] = json!("choice =="),
    );
    let answer = w
        .api
        .call("POST", "/v1/workflows/validate", &w.keys[3], Some(two))
        .await;
    assert_eq!(
        located(&answer.body),
        [
            (json!("route"), json!("branches[0].when")),
            (json!("accounts"), json!("next"))
        ]
    );
    // A valid one, even for a viewer; and nothing was stored by any of it.
    let answer = w
        .api
        .expect(
            200,
            "POST",
            "/v1/workflows/validate",
            &w.keys[3],
            Some(good),
        )
        .await;
    assert_eq!(answer, json!({"valid": true}));
    let list = w.api.call("GET", "/v1/workflows", editor, None).await;
    assert_eq!(list.body["data"], json!([]));
    // A mistyped field is refused when parsing, naming it.
    let mut typo = api_support_line(&w.agent);
    typo["nodes"][0]["nxt"] = json!("menu");
    let answer = w
        .api
        .expect(422, "POST", "/v1/workflows", editor, Some(typo))
        .await;
    assert!(answer.to_string().contains("nxt"), "{}", answer);
    w.stop().await;
}

async fn expressions_past_the_limits_are_a_422_and_the_server_answers_on(backend: Backend) {
    let w = flow_world(backend).await;
    let editor = &w.keys[2];
    let with_when = |when: String| {
        with_node(api_support_line(&w.agent), "route", |n| {
            n["branches"][0]["when"] = json!(when)
        })
    };
    let cases = [
        (
            "10,000 chained terms",
            vec!["choice == '1'"; 10_000].join(" || "),
            "the limit is 4096",
        ),
        (
            "10,000 nested parentheses",
            format!("{}choice{}", "(".repeat(10_000), ")".repeat(10_000)),
            "the limit is 4096",
        ),
        (
            "a syntax error past character 65,535",
            format!("'{}' == == 1", "x".repeat(70_000)),
            "the limit is 4096",
        ),
        (
            "100 nested parentheses",
            format!("{}choice{}", "(".repeat(100), ")".repeat(100)),
            "the limit is 64",
        ),
    ];
    for (name, when, limit) in cases {
        for (path, body) in refused_by_both(&w, editor, &with_when(when.clone()), name).await {
            assert_eq!(
                located(&body),
                [(json!("route"), json!("branches[0].when"))],
                "{name} at {path}"
            );
            let message = body["errors"][0]["message"].as_str().unwrap_or("");
            assert!(message.contains(limit), "{name} at {path}: {message}");
        }
        // The process is still there and still validating.
        let answer = w
            .api
            .call(
                "POST",
                "/v1/workflows/validate",
                editor,
                Some(api_support_line(&w.agent)),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "after {name}: {}",
            answer.body
        );
    }
    let list = w.api.call("GET", "/v1/workflows", editor, None).await;
    assert_eq!(list.body["data"], json!([]), "nothing was stored");
    w.stop().await;
}

on_both_engines!(
    broken_definitions_are_answered_at_their_node_and_field,
    expressions_past_the_limits_are_a_422_and_the_server_answers_on,
);

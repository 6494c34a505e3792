//! The audit log tells what an update changed, on SQLite and PostgreSQL over real HTTP: each
//! changed field by its path with its old and new value, and a secret (an agent's provider
//! `api_key` and `tool_secret`, a webhook's `secret`, a trunk's `password`) only as `"changed"`
//! — no secret value anywhere in `GET /v1/audit-log`. And an agent with tools but no
//! `tool_secret` is refused, so no tool request is ever signed with an empty key.

use crate::support;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::Backend;

const SECRETS: [&str; 6] = [
    "sk-first-llm-key",
    "sk-second-llm-key",
    "first-tool-secret",
    "second-tool-secret",
    "whsec-first-0123456789",
    "whsec-second-0123456789",
];

/// The newest audit entry with `action`, and the whole answer's text.
async fn newest(api: &Api, key: &str, action: &str) -> (Value, String) {
    let answer = api.expect(200, "GET", "/v1/audit-log", key, None).await;
    let entry = answer["data"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == action)
        .cloned()
        .unwrap_or_else(|| panic!("no {action} entry in {}", answer));
    (entry, answer.to_string())
}

/// An edit and what the audit log says of it: `PATCH path` with `body` by `editor` (200), then
/// the newest `action` entry (read by `owner`), its `changes`, after checking that no secret
/// value is anywhere in the log.
async fn patched(
    api: &Api,
    (editor, owner): (&str, &str),
    path: &str,
    body: Value,
    action: &str,
) -> (Value, Value) {
    api.expect(200, "PATCH", path, editor, Some(body)).await;
    let (entry, text) = newest(api, owner, action).await;
    assert_no_secret(&text);
    let changes = entry["detail"]["changes"].clone();
    (entry, changes)
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} is in the audit log: {text}"
        );
    }
}

async fn an_agent_update_names_its_changes_and_never_its_secrets(backend: Backend) {
    let (db, control) = support::control_plane(backend).await;
    let api = Api::of(&control);
    let (_, [owner, _, editor, _]) = workspace_with_keys(&control, "Audited").await;
    let created = api
        .create(
            "/v1/agents",
            &editor,
            json!({
                "name": "Front desk",
                "llm": {"provider": "openai", "model": "gpt-4o-mini",
                        "base_url": "https://api.openai.com/v1", "api_key": SECRETS[0]},
                "tools": [{"name": "book", "url": "https://example.com/book"}],
                "tool_secret": SECRETS[2]
            }),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_string();

    let (entry, changes) = patched(
        &api,
        (&editor, &owner),
        &format!("/v1/agents/{id}"),
        json!({"llm": {"model": "gpt-4o"}, "tool_secret": SECRETS[3]}),
        "agent.updated",
    )
    .await;
    assert_eq!(
        changes["llm.model"],
        json!({"old": "gpt-4o-mini", "new": "gpt-4o"})
    );
    assert_eq!(changes["tool_secret"], "changed");
    assert_eq!(
        changes.as_object().map(|c| c.len()),
        Some(2),
        "only what changed: {changes}"
    );
    assert_eq!(entry["detail"]["name"], "Front desk");
    assert_eq!(entry["resource_id"], id.as_str());

    // A new key for the model, and the tools gone with their secret: still no value.
    let (_, changes) = patched(
        &api,
        (&editor, &owner),
        &format!("/v1/agents/{id}"),
        json!({"llm": {"api_key": SECRETS[1]}, "tools": [], "tool_secret": null}),
        "agent.updated",
    )
    .await;
    assert_eq!(changes["llm.api_key"], "changed", "{changes}");
    assert_eq!(changes["tool_secret"], "changed", "{changes}");
    assert_eq!(
        changes["tools[0].url"],
        json!({"old": "https://example.com/book", "new": null})
    );

    // A webhook's new URL and secret.
    let hook = api
        .create(
            "/v1/webhooks",
            &owner,
            json!({"url": "https://hooks.example.com/a", "events": ["call.ended"],
                    "secret": SECRETS[4]}),
        )
        .await;
    let hook_id = hook["id"].as_str().expect("id");
    let (_, changes) = patched(
        &api,
        (&owner, &owner),
        &format!("/v1/webhooks/{hook_id}"),
        json!({"url": "https://hooks.example.com/b", "secret": SECRETS[5]}),
        "webhook.updated",
    )
    .await;
    assert_eq!(
        changes["url"],
        json!({"old": "https://hooks.example.com/a", "new": "https://hooks.example.com/b"})
    );
    assert_eq!(changes["secret"], "changed");
    assert!(
        changes.get("events").is_none(),
        "events did not change: {changes}"
    );

    control.stop().await;
    db.cleanup().await;
}

async fn tools_without_a_tool_secret_are_refused_naming_the_field(backend: Backend) {
    let (db, control) = support::control_plane(backend).await;
    let api = Api::of(&control);
    let (_, [_, _, editor, _]) = workspace_with_keys(&control, "Unsigned").await;
    let tools = json!([{"name": "book", "url": "https://example.com/book"}]);
    for body in [
        json!({"name": "No secret", "tools": tools}),
        json!({"name": "Empty secret", "tools": tools, "tool_secret": ""}),
    ] {
        let refused = api.call("POST", "/v1/agents", &editor, Some(body)).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(
            refused.headers["content-type"], "application/problem+json",
            "{:?}",
            refused.headers
        );
        assert_eq!(refused.body["errors"][0]["field"], "tool_secret");
    }
    // Nor can a PATCH take the secret away from an agent that has tools.
    let created = api
        .create(
            "/v1/agents",
            &editor,
            json!({"name": "Signed", "tools": tools, "tool_secret": "s3cret-enough"}),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    let refused = api
        .expect(
            422,
            "PATCH",
            &format!("/v1/agents/{id}"),
            &editor,
            Some(json!({"tool_secret": null})),
        )
        .await;
    assert_eq!(refused["errors"][0]["field"], "tool_secret");
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    an_agent_update_names_its_changes_and_never_its_secrets,
    tools_without_a_tool_secret_are_refused_naming_the_field,
);

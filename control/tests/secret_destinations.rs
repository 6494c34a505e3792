//! A stored secret goes only where it was given for, on SQLite and PostgreSQL: a PATCH that
//! changes where an agent's provider `api_key`, a Twilio account's `auth_token` or a trunk's
//! `password` is sent — a `base_url`, an `api_base_url`, a `host` or `port` — without giving
//! the secret again is a 422 naming the secret and changes nothing; with the secret it is
//! accepted, and other changes keep the stored secret.

use crate::support;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::{local_snapshot, Backend};
use freya_control::store::WorkspaceScope;

const SID: &str = "AC0123456789abcdef0123456789abcdef";

/// Asserts `patch` on `path` is refused, naming `field` with `message`, and that a read of
/// `path` afterwards is what it was before.
async fn refused_unchanged(
    api: &Api,
    key: &str,
    path: &str,
    patch: Value,
    field: &str,
    message: &str,
) {
    let before = api.call("GET", path, key, None).await.body;
    let answer = api.call("PATCH", path, key, Some(patch.clone())).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{patch}: {}",
        answer.body
    );
    assert_eq!(answer.body["errors"][0]["field"], field, "{}", answer.body);
    assert_eq!(
        answer.body["errors"][0]["message"], message,
        "{}",
        answer.body
    );
    let after = api.call("GET", path, key, None).await.body;
    assert_eq!(before, after, "{patch} changed the resource");
}

async fn a_new_agent_provider_base_url_needs_the_api_key_again(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, editor, _]) = workspace_with_keys(&control, "D").await;
    let created = api
        .create("/v1/agents", &editor, json!({
                "name": "Desk",
                "stt": {"provider": "openai", "base_url": "https://stt.example/v1", "api_key": "sk-stt"},
                "llm": {"provider": "openai", "base_url": "https://llm.example/v1", "api_key": "sk-llm"},
                "llm_fallback": {"provider": "anthropic", "base_url": "https://fb.example/v1", "api_key": "sk-fb"},
                "tts": {"provider": "openai", "base_url": "https://tts.example/v1", "api_key": "sk-tts"}
            })).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/agents/{id}");

    for section in ["stt", "llm", "llm_fallback", "tts"] {
        let field = format!("{section}.api_key");
        let message = format!("must be given again when `{section}.base_url` changes");
        // The base URL alone, or with the mask sent back, is refused.
        for patch in [
            json!({section: {"base_url": "https://attacker.example/v1"}}),
            json!({section: {"base_url": "https://attacker.example/v1", "api_key": "********"}}),
        ] {
            refused_unchanged(&api, &editor, &path, patch, &field, &message).await;
        }
    }
    // Another provider would get the key too.
    refused_unchanged(
        &api,
        &editor,
        &path,
        json!({"llm_fallback": {"provider": "openai"}}),
        "llm_fallback.api_key",
        "must be given again when `llm_fallback.provider` changes",
    )
    .await;
    let read = api.call("GET", &path, &editor, None).await;
    assert_eq!(read.body["tts"]["base_url"], "https://tts.example/v1");

    // Other changes keep the key; a new base URL with its key is accepted.
    for patch in [
        json!({"name": "Front desk", "tts": {"voice": "alloy"}, "llm": {"model": "gpt-4o"}}),
        json!({"tts": {"base_url": "https://tts2.example/v1", "api_key": "sk-tts-2"}}),
        json!({"llm": {"base_url": null, "api_key": null}}),
    ] {
        let answer = api.call("PATCH", &path, &editor, Some(patch.clone())).await;
        assert_eq!(answer.status, StatusCode::OK, "{patch}: {}", answer.body);
    }
    let stored = control
        .store
        .agent(&WorkspaceScope { workspace_id: ws }, &id)
        .await
        .expect("agent")
        .spec;
    let key = |p: &Option<freya_shared::model::agent::ProviderSpec>| {
        p.as_ref().and_then(|p| p.api_key.clone())
    };
    assert_eq!(stored.name, "Front desk");
    assert_eq!(key(&stored.stt).as_deref(), Some("sk-stt"));
    assert_eq!(key(&stored.llm_fallback).as_deref(), Some("sk-fb"));
    assert_eq!(key(&stored.llm), None);
    assert_eq!(key(&stored.tts).as_deref(), Some("sk-tts-2"));
    let tts = stored.tts.as_ref().expect("tts");
    assert_eq!(tts.base_url.as_deref(), Some("https://tts2.example/v1"));
    assert_eq!(tts.voice.as_deref(), Some("alloy"));
    control.stop().await;
    db.cleanup().await;
}

async fn a_new_provider_host_needs_the_secret_again(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [_, admin, ..]) = workspace_with_keys(&control, "H").await;
    let trunk = api
        .create(
            "/v1/providers",
            &admin,
            json!({"name": "Carrier", "host": "sip.carrier.example", "username": "acme",
                        "password": "trunk-pass"}),
        )
        .await;
    let trunk = format!("/v1/providers/{}", trunk["id"].as_str().expect("id"));
    let account = api
        .create(
            "/v1/providers",
            &admin,
            json!({"kind": "twilio", "name": "Twilio", "account_sid": SID,
                        "auth_token": "tw-token"}),
        )
        .await;
    let account_id = account["id"].as_str().expect("id").to_owned();
    let account = format!("/v1/providers/{account_id}");

    for (path, patch, field, moved) in [
        (
            &trunk,
            json!({"host": "sip.attacker.example"}),
            "password",
            "host",
        ),
        (
            &trunk,
            json!({"port": 5080, "password": "********"}),
            "password",
            "port",
        ),
        (
            &trunk,
            json!({"outbound_proxy": "sip:203.0.113.66;lr"}),
            "password",
            "outbound_proxy",
        ),
        (
            // Digest responses to a registrar's challenges are the password's hash.
            &trunk,
            json!({"registration": {"registrar": "reg.attacker.example"}}),
            "password",
            "registration.registrar",
        ),
        (
            &account,
            json!({"api_base_url": "https://attacker.example"}),
            "auth_token",
            "api_base_url",
        ),
        (
            &account,
            json!({"api_base_url": "https://attacker.example", "auth_token": "********"}),
            "auth_token",
            "api_base_url",
        ),
    ] {
        let message = format!("must be given again when `{moved}` changes");
        refused_unchanged(&api, &admin, path, patch, field, &message).await;
    }
    let read = api.call("GET", &account, &admin, None).await;
    assert_eq!(read.body["api_base_url"], "https://api.twilio.com");
    let read = api.call("GET", &trunk, &admin, None).await;
    assert_eq!(read.body["host"], "sip.carrier.example");

    for (path, patch) in [
        (&trunk, json!({"priority": 3, "caller_id": "+15550100"})),
        (&account, json!({"name": "Twilio US", "priority": 2})),
        (
            &account,
            json!({"api_base_url": "https://api.twilio.example", "auth_token": "tw-token-2"}),
        ),
    ] {
        let answer = api.call("PATCH", path, &admin, Some(patch.clone())).await;
        assert_eq!(answer.status, StatusCode::OK, "{patch}: {}", answer.body);
    }
    let snapshot = local_snapshot(&control).await;
    for provider in &snapshot.providers {
        let expected = if provider.id == account_id {
            "tw-token-2"
        } else {
            "trunk-pass"
        };
        assert_eq!(
            provider.spec.secret(),
            Some(expected),
            "{:?}",
            provider.spec
        );
    }
    assert_eq!(snapshot.providers.len(), 2);
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    a_new_agent_provider_base_url_needs_the_api_key_again,
    a_new_provider_host_needs_the_secret_again,
);

//! An agent's secrets on SQLite and PostgreSQL: provider API keys and the tool-signing secret
//! never come back through the API (they read as `********`), a PATCH that leaves them out or
//! sends the mask back keeps them, a new value replaces them, the stored document holds them
//! only sealed — and the edge snapshot carries the real ones.

use crate::support;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::http::workspace_with_keys;
use crate::support::on_both_engines;
use crate::support::{local_snapshot, Backend};

async fn agent_secrets_are_masked_on_read_and_kept_by_patch(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, editor, _]) = workspace_with_keys(&control, "S").await;
    let created = api
        .call(
            "POST",
            "/v1/agents",
            &editor,
            Some(json!({
                "name": "Desk",
                "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-real-llm-key"},
                "llm_fallback": {"provider": "anthropic", "api_key": "sk-real-fallback-key"},
                "tool_secret": "real-tool-secret"
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    for answer in [
        created,
        api.call("GET", &format!("/v1/agents/{id}"), &editor, None)
            .await,
        api.call("GET", "/v1/agents", &editor, None).await,
    ] {
        let text = answer.body.to_string();
        assert!(
            !text.contains("sk-real") && !text.contains("real-tool"),
            "{text}"
        );
    }
    let read = api
        .call("GET", &format!("/v1/agents/{id}"), &editor, None)
        .await;
    assert_eq!(read.body["llm"]["api_key"], "********");
    assert_eq!(read.body["llm_fallback"]["api_key"], "********");
    assert_eq!(read.body["tool_secret"], "********");
    // At rest, every secret is sealed.
    let at_rest = db
        .read_text("SELECT spec FROM agents WHERE id = $1", &id)
        .await;
    assert!(
        !at_rest.contains("sk-real") && !at_rest.contains("real-tool"),
        "{at_rest}"
    );
    assert!(at_rest.contains("\"api_key\":\"v2:"), "{at_rest}");

    // Sending the document back as read (masks included), or leaving secrets out, keeps them.
    let mut round_trip = read.body.clone();
    for field in ["id", "workspace_id", "created_at", "updated_at"] {
        round_trip.as_object_mut().expect("object").remove(field);
    }
    round_trip["name"] = json!("Front desk");
    for patch in [round_trip, json!({"llm": {"model": "gpt-4o"}})] {
        api.expect(
            200,
            "PATCH",
            &format!("/v1/agents/{id}"),
            &editor,
            Some(patch),
        )
        .await;
    }
    let stored = control
        .store
        .agent(
            &freya_control::store::WorkspaceScope { workspace_id: ws },
            &id,
        )
        .await
        .expect("agent");
    let llm = stored.spec.llm.as_ref().expect("llm");
    assert_eq!(llm.api_key.as_deref(), Some("sk-real-llm-key"));
    assert_eq!(llm.model.as_deref(), Some("gpt-4o"));
    assert_eq!(stored.spec.tool_secret.as_deref(), Some("real-tool-secret"));
    let fallback = stored.spec.llm_fallback.as_ref().expect("fallback");
    assert_eq!(fallback.api_key.as_deref(), Some("sk-real-fallback-key"));
    assert_eq!(stored.spec.name, "Front desk");

    // A new value replaces it.
    let rotated = api
        .call(
            "PATCH",
            &format!("/v1/agents/{id}"),
            &editor,
            Some(json!({"llm": {"api_key": "sk-rotated"}})),
        )
        .await;
    assert_eq!(rotated.body["llm"]["api_key"], "********");
    let snapshot_key = control
        .store
        .agent(&stored_scope(&stored.workspace_id), &id)
        .await
        .expect("agent")
        .spec
        .llm
        .and_then(|l| l.api_key);
    assert_eq!(snapshot_key.as_deref(), Some("sk-rotated"));
    // Edges get the opened secrets.
    api.create(
        "/v1/phone-numbers",
        &editor,
        json!({"number": "+15550001", "agent_id": id}),
    )
    .await;
    let snapshot = local_snapshot(&control).await;
    let agent = snapshot.agents.iter().find(|a| a.id == id).expect("agent");
    assert_eq!(agent.spec.tool_secret.as_deref(), Some("real-tool-secret"));
    control.stop().await;
    db.cleanup().await;
}

fn stored_scope(ws: &str) -> freya_control::store::WorkspaceScope {
    freya_control::store::WorkspaceScope {
        workspace_id: ws.to_owned(),
    }
}

on_both_engines!(agent_secrets_are_masked_on_read_and_kept_by_patch);

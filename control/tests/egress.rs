//! Outbound safety at the API: a viewer reads a workflow's steps without the values a function
//! answered, and a number that is not a SIP user part is never dialled from.

use crate::support;

use serde_json::json;

use crate::support::http::workspace_with_keys;
use crate::support::Backend;
use freya_control::store::WorkspaceScope;
use freya_shared::ids::new_id;
use freya_shared::model::{AgentSpec, CallEvent, CallEventKind};

#[tokio::test]
async fn a_viewer_reads_workflow_steps_without_the_saved_answer() {
    let (db, control, api) = support::http::started(Backend::Sqlite).await;
    let (ws, [_, _, editor, viewer]) = workspace_with_keys(&control, "Steps").await;
    let call = new_id();
    let started = CallEvent::raw(&call, &ws, CallEventKind::Started, json!({"from": "+1555"}));
    let mut step = CallEvent::raw(
        &call,
        &ws,
        CallEventKind::Started,
        json!({"elapsed_ms": 250, "node": "lookup", "step": "variables_changed",
               "changes": {"customer": {"ssn": "078-05-1120", "tier": "gold"}}}),
    );
    step.kind = "call.workflow_step".into();
    for event in [&started, &step] {
        control
            .store
            .record_call_event("edge-1", event)
            .await
            .expect("event");
    }
    let path = format!("/v1/calls/{call}");
    let seen_by_editor = api.expect(200, "GET", &path, &editor, None).await;
    assert_eq!(
        seen_by_editor["workflow_steps"][0]["changes"]["customer"]["ssn"],
        "078-05-1120"
    );
    let seen_by_viewer = api.expect(200, "GET", &path, &viewer, None).await;
    let text = seen_by_viewer.to_string();
    assert!(!text.contains("078-05-1120"), "{text}");
    let shown = &seen_by_viewer["workflow_steps"][0];
    assert_eq!(shown["step"], "variables_changed");
    assert_eq!(shown["changed"], json!(["customer"]));
    assert_eq!(shown["values_hidden"], true);
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_from_number_outside_the_sip_user_grammar_is_refused_naming_from() {
    let (db, control, api) = support::http::started(Backend::Sqlite).await;
    let (ws, [_, admin, editor, _]) = workspace_with_keys(&control, "Dial").await;
    let scope = WorkspaceScope { workspace_id: ws };
    let spec: AgentSpec = serde_json::from_value(json!({"name": "Caller"})).expect("spec");
    // A valid number name (`#` is allowed there) that RFC 3261's user part does not allow.
    let _agent =
        support::agent_on_number_in(&control, &scope, "desk#1", Some("local"), &spec).await;
    let refused = api
        .expect(
            422,
            "POST",
            "/v1/calls",
            &editor,
            Some(json!({"from": "desk#1", "to": "+4712345678"})),
        )
        .await;
    assert_eq!(refused["errors"][0]["field"], "from", "{}", refused);
    let provider = api
        .expect(
            422,
            "POST",
            "/v1/providers",
            &admin,
            Some(json!({"name": "T", "host": "sip.example.com", "caller_id": "a@evil.example>"})),
        )
        .await;
    assert_eq!(provider["errors"][0]["field"], "caller_id", "{}", provider);
    control.stop().await;
    db.cleanup().await;
}

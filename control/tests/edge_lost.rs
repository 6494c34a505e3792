//! An edge that dies mid-call, on SQLite and PostgreSQL. The attack (a fault, really): a real
//! edge carries a call, then stops heartbeating without ending it, as after SIGKILL. The
//! control plane shows the edge offline, ends the call with reason `edge_lost` at the edge's
//! last heartbeat, and sends the `call.ended` webhook; when the edge comes back with the same
//! id and its spool carries the call's true end, the record takes the true end.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::http::workspace_with_keys;
use crate::support::on_both_engines;
use crate::support::webhook_sink::call_ended_hooks;
use crate::support::{edge_config, eventually, Backend, SECRET};
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_shared::model::{CallEvent, CallEventKind, EdgeStatus};

fn event(call: &str, ws: &str, kind: CallEventKind, payload: Value) -> CallEvent {
    CallEvent::raw(call, ws, kind, payload)
}

async fn a_silent_edges_calls_end_as_edge_lost_and_its_spool_reconciles(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, keys) = workspace_with_keys(&control, "Lost").await;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let stop_receiver = CancellationToken::new();
    let seen = call_ended_hooks(&api, &keys[0], stop_receiver.clone()).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = edge_config(dir.path(), control.grpc_addr, SECRET);
    let edge = Edge::start(&config).await.expect("edge starts");
    let edge_id = edge.id.clone();
    let events = edge.events();
    for e in [
        event(
            "live",
            &ws,
            CallEventKind::Started,
            json!({"direction": "inbound"}),
        ),
        event("live", &ws, CallEventKind::Answered, json!({})),
        event(
            "ringing",
            &ws,
            CallEventKind::Started,
            json!({"direction": "inbound"}),
        ),
        event(
            "over",
            &ws,
            CallEventKind::Started,
            json!({"direction": "inbound"}),
        ),
        event(
            "over",
            &ws,
            CallEventKind::Ended,
            json!({"reason": "caller_hangup"}),
        ),
    ] {
        events.send(e).await.expect("edge takes events");
    }
    let store = control.store.clone();
    eventually(Duration::from_secs(10), "the calls to be recorded", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let live = store.call(&scope, "live").await.ok()?;
            let over = store.call(&scope, "over").await.ok()?;
            (live.status == "in_progress" && over.status == "ended").then_some(())
        }
    })
    .await;

    // The edge goes silent without ending anything.
    edge.stop().await;
    let last_seen = eventually(Duration::from_secs(10), "the edge to show offline", || {
        let (store, edge_id) = (store.clone(), edge_id.clone());
        async move {
            let edges = store.edges(2_000).await.ok()?;
            let record = edges.into_iter().find(|e| e.id == edge_id)?;
            (record.status == EdgeStatus::Offline).then_some(record.last_seen_ms)
        }
    })
    .await;
    for call in ["live", "ringing"] {
        let record = eventually(
            Duration::from_secs(10),
            "the call to end as edge_lost",
            || {
                let (store, scope) = (store.clone(), scope.clone());
                async move {
                    let record = store.call(&scope, call).await.ok()?;
                    record.ended_at_ms.is_some().then_some(record)
                }
            },
        )
        .await;
        assert_eq!(record.end_reason.as_deref(), Some("edge_lost"), "{call}");
        assert_eq!(
            record.ended_at_ms,
            Some(last_seen),
            "{call} ends at the last heartbeat"
        );
    }
    let over = store.call(&scope, "over").await.expect("over");
    assert_eq!(
        over.end_reason.as_deref(),
        Some("caller_hangup"),
        "an ended call is left alone"
    );

    let lost_webhook = eventually(Duration::from_secs(10), "the call.ended webhook", || {
        let seen = seen.clone();
        async move {
            seen.lock()
                .expect("lock")
                .iter()
                .find(|b| b.to_string().contains("edge_lost") && b.to_string().contains("live"))
                .cloned()
        }
    })
    .await;
    assert!(
        lost_webhook.to_string().contains("call.ended"),
        "{lost_webhook}"
    );

    // The edge comes back with the same id; its spool carries the true end of `live`.
    let edge = Edge::start(&config).await.expect("edge restarts");
    assert_eq!(edge.id, edge_id);
    let mut true_end = event(
        "live",
        &ws,
        CallEventKind::Ended,
        json!({"reason": "caller_hangup"}),
    );
    true_end.at_ms = last_seen - 100;
    edge.events()
        .send(true_end)
        .await
        .expect("edge takes events");
    let reconciled = eventually(
        Duration::from_secs(10),
        "the true end to replace edge_lost",
        || {
            let (store, scope) = (store.clone(), scope.clone());
            async move {
                let record = store.call(&scope, "live").await.ok()?;
                (record.end_reason.as_deref() == Some("caller_hangup")).then_some(record)
            }
        },
    )
    .await;
    assert_eq!(reconciled.ended_at_ms, Some(last_seen - 100));
    // The edge is back online and its other calls stay as they were.
    let ringing = store.call(&scope, "ringing").await.expect("ringing");
    assert_eq!(ringing.end_reason.as_deref(), Some("edge_lost"));

    edge.stop().await;
    stop_receiver.cancel();
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(multi_thread; a_silent_edges_calls_end_as_edge_lost_and_its_spool_reconciles);

//! Mixed releases during a rolling upgrade, over real gRPC on loopback: an edge one minor
//! release behind the control plane registers, heartbeats, receives its configuration and has
//! its events — written to the previous event schema — stored and read into the call row; an
//! edge below the release floor is refused at registration with `FAILED_PRECONDITION` and a
//! message naming both releases, and is not listed as an edge. (Two majors behind is the
//! default floor; with this release at major 0 the test sets `[edges] min_version`, the same
//! check; `grpc/edge_version.rs` tests the majors rule itself.)

use crate::support;

use std::time::Duration;

use crate::support::on_both_engines;
use crate::support::wire_events::{link, publish_all, wire};
use crate::support::Backend;
use freya_control::store::WorkspaceScope;
use freya_proto::v1::{
    CallEvent as WireEvent, HeartbeatRequest, RegisterRequest, WatchConfigRequest,
};
use freya_shared::model::{CallEvent, CALL_EVENT_SCHEMA};
use serde_json::json;

const THIS_RELEASE: &str = env!("CARGO_PKG_VERSION");

/// This release's `(major, minor, patch)`.
fn this_release() -> (u64, u64, u64) {
    let mut parts = THIS_RELEASE
        .split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u64>().expect("a numeric release"));
    let mut next = || parts.next().expect("MAJOR.MINOR.PATCH");
    (next(), next(), next())
}

/// The release one minor before this one (the previous major's last minor at a x.0 release).
fn one_minor_behind() -> String {
    match this_release() {
        (major, 0, _) if major > 0 => format!("{}.99.0", major - 1),
        (major, minor, _) if minor > 0 => format!("{major}.{}.3", minor - 1),
        (major, minor, patch) => format!("{major}.{minor}.{}", patch.saturating_sub(1)),
    }
}

fn register(edge: &str, version: &str) -> RegisterRequest {
    RegisterRequest {
        edge_id: edge.into(),
        region: "eu".into(),
        capacity: 10,
        version: version.into(),
        ..Default::default()
    }
}

async fn an_edge_one_minor_behind_keeps_working(backend: Backend) {
    let (_db, control) = support::control_plane(backend).await;
    let edge = "edge-previous-minor";
    let mut link = link(&control, edge);
    let previous = one_minor_behind();
    link.register(register(edge, &previous))
        .await
        .expect("an edge one minor behind registers");
    link.heartbeat(HeartbeatRequest {
        edge_id: edge.into(),
        health: None,
        registrations: Vec::new(),
    })
    .await
    .expect("and heartbeats");
    let mut watch = link
        .watch_config(WatchConfigRequest {
            edge_id: edge.into(),
            region: "eu".into(),
            known_version: 0,
        })
        .await
        .expect("the configuration watch opens")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a snapshot in time")
        .expect("stream")
        .expect("a snapshot");
    assert!(first.version > 0 && !first.snapshot_json.is_empty());
    let edges = control.store.edges(60_000).await.expect("edges");
    let listed = edges.iter().find(|e| e.id == edge).expect("listed");
    assert_eq!(listed.version, previous);

    // Its events, at the previous event schema: version 1 wrote `caller` for the side that hung
    // up, where today's edges write `remote`.
    let ws = control.store.create_workspace("Mixed").await.expect("ws");
    let call = freya_shared::ids::new_id();
    let payloads = [
        (
            "call.started",
            json!({"direction": "inbound", "from": "+4790000001", "to": "+15550100",
                   "agent_id": "agent-1", "edge_id": edge}),
        ),
        ("call.answered", json!({})),
        (
            "call.ended",
            json!({"reason": "caller_hangup", "hangup_by": "caller", "duration_ms": 4_000}),
        ),
    ];
    let events: Vec<WireEvent> = payloads
        .iter()
        .enumerate()
        .map(|(n, (kind, payload))| {
            let mut event = CallEvent::raw(&call, &ws, *kind, payload.clone());
            event.at_ms = 1_735_689_600_000 + n as i64 * 1_000;
            event.schema = CALL_EVENT_SCHEMA - 1;
            wire(&event)
        })
        .collect();
    publish_all(&mut link, events).await;
    let scope = WorkspaceScope { workspace_id: ws };
    let record = control.store.call(&scope, &call).await.expect("the call");
    assert_eq!(record.status, "ended");
    assert_eq!(record.end_reason.as_deref(), Some("caller_hangup"));
    assert_eq!(record.region.as_deref(), Some("eu"));
    let stored = control
        .store
        .call_events(&scope, &call)
        .await
        .expect("events");
    let ended = stored
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended stored");
    assert_eq!(
        ended.payload["hangup_by"], "caller",
        "stored as the edge wrote it"
    );
    control.stop().await;
}

async fn an_edge_below_the_release_floor_is_refused_with_a_clear_message(backend: Backend) {
    let db = support::TestDb::new(backend).await;
    let mut config = support::control_config(&db.url);
    config.edges.min_version = Some(THIS_RELEASE.into());
    let control = freya_control::server::ControlPlane::start(&config)
        .await
        .expect("control starts");
    let edge = "edge-too-old";
    let mut link = link(&control, edge);
    let old = one_minor_behind();
    let refused = link
        .register(register(edge, &old))
        .await
        .expect_err("an edge below edges.min_version is refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let message = refused.message();
    assert!(
        message.contains(&old),
        "names the edge's release: {message}"
    );
    assert!(message.contains("edges.min_version"), "{message}");
    assert!(message.contains("upgrade the edge"), "{message}");
    let edges = control.store.edges(60_000).await.expect("edges");
    assert!(
        edges.iter().all(|e| e.id != edge),
        "a refused edge is not listed"
    );
    let beat = link
        .heartbeat(HeartbeatRequest {
            edge_id: edge.into(),
            health: None,
            registrations: Vec::new(),
        })
        .await
        .expect_err("a refused edge has no registration to heartbeat");
    assert_eq!(beat.code(), tonic::Code::NotFound);

    // The same floor serves an edge at it, and a version that is no release number is served
    // (with a warning) rather than refused.
    link.register(register("edge-current", THIS_RELEASE))
        .await
        .expect("an edge at the floor registers");
    link.register(register("edge-from-a-checkout", "dev"))
        .await
        .expect("an unversioned edge registers");
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    an_edge_one_minor_behind_keeps_working,
    an_edge_below_the_release_floor_is_refused_with_a_clear_message,
);

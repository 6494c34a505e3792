//! `ReportCluster` on SQLite and PostgreSQL: an edge's peers say it is down. A real edge carries
//! a call and keeps heartbeating (so the heartbeat timeout never fires); two peers report it
//! down over gRPC. The control plane shows it `offline` with `cluster_state: down`, ends the
//! call as `edge_lost` once (one `call.ended` webhook for two reports), and refuses a report
//! sent in another edge's name. A report about an older run of an edge changes nothing; a
//! later `alive` brings it back online.

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::webhook_sink::{call_ended_hooks, ended_with};
use crate::support::{edge_config, eventually, Backend, SECRET};
use freya_control::store::{CallRecord, Store, WorkspaceScope};
use freya_edge::Edge;
use freya_proto::v1::{ClusterReport, PeerState, RegisterRequest};
use freya_shared::model::{CallEvent, CallEventKind};

fn down(edge_id: &str, generation: u64, state: &str) -> PeerState {
    PeerState {
        edge_id: edge_id.into(),
        generation,
        state: state.into(),
        gossip_addr: "127.0.0.1:9".into(),
    }
}

/// Edge `id` as `GET /v1/edges` lists it.
async fn listed(api: &Api, key: &str, id: &str) -> Value {
    let edges = api.expect(200, "GET", "/v1/edges", key, None).await;
    let listed = edges
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["id"] == id);
    listed
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed: {edges}"))
}

/// Call `call_id`'s record once it has ended.
async fn ended(store: &Store, scope: &WorkspaceScope, call_id: &str) -> CallRecord {
    eventually(Duration::from_secs(10), "the call to end", || async {
        let record = store.call(scope, call_id).await.ok()?;
        record.ended_at_ms.is_some().then_some(record)
    })
    .await
}

async fn peers_reports_end_a_live_edges_calls_once(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, keys) = workspace_with_keys(&control, "Cluster").await;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let seen = call_ended_hooks(&api, &keys[0], CancellationToken::new()).await;

    // The edge runs no cluster itself: it registers generation 0, as an edge older than gossip.
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    let edge_id = edge.id.clone();
    for (kind, payload) in [
        (CallEventKind::Started, json!({"direction": "inbound"})),
        (CallEventKind::Answered, json!({})),
    ] {
        edge.events()
            .send(CallEvent::raw("live", &ws, kind, payload))
            .await
            .expect("edge takes events");
    }
    let store = control.store.clone();
    eventually(Duration::from_secs(10), "the call in progress", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let call = store.call(&scope, "live").await.ok()?;
            (call.status == "in_progress").then_some(())
        }
    })
    .await;

    let grpc = format!("http://{}", control.grpc_addr);
    let peer = |id: &str| {
        freya_edge::control_link::client(&grpc, SECRET, id, Duration::from_secs(2)).expect("client")
    };
    let (mut one, mut two) = (peer("peer-1"), peer("peer-2"));
    // A report in another edge's name is refused.
    let forged = one
        .report_cluster(ClusterReport {
            edge_id: "peer-2".into(),
            peers: vec![down(&edge_id, 0, "down")],
        })
        .await
        .expect_err("a report in another edge's name");
    assert_eq!(forged.code(), tonic::Code::PermissionDenied);
    for (client, me) in [(&mut one, "peer-1"), (&mut two, "peer-2")] {
        client
            .report_cluster(ClusterReport {
                edge_id: me.into(),
                peers: vec![down(&edge_id, 0, "down")],
            })
            .await
            .expect("a peer's report");
    }

    let record = ended(&store, &scope, "live").await;
    assert_eq!(record.end_reason.as_deref(), Some("edge_lost"));
    let shown = listed(&api, &keys[0], &edge_id).await;
    assert_eq!(shown["status"], "offline", "{shown}");
    assert_eq!(shown["cluster_state"], "down", "{shown}");
    let ended_hooks = || ended_with(&seen, "live", "edge_lost");
    eventually(Duration::from_secs(10), "the call.ended webhook", || {
        let n = ended_hooks();
        async move { (n > 0).then_some(()) }
    })
    .await;
    // Reported again (the first peer repeats itself): still one end, one webhook.
    one.report_cluster(ClusterReport {
        edge_id: "peer-1".into(),
        peers: vec![down(&edge_id, 0, "down")],
    })
    .await
    .expect("a repeated report");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ended_hooks(), 1, "one call.ended for two peers' reports");

    // A later `alive` brings it back online (it never stopped heartbeating).
    two.report_cluster(ClusterReport {
        edge_id: "peer-2".into(),
        peers: vec![down(&edge_id, 0, "alive")],
    })
    .await
    .expect("alive again");
    let shown = listed(&api, &keys[0], &edge_id).await;
    assert_eq!(shown["status"], "online", "{shown}");

    // An edge now on its run 5: a report about run 4 changes nothing.
    one.register(RegisterRequest {
        edge_id: "peer-1".into(),
        region: "local".into(),
        capacity: 1,
        generation: 5,
        gossip_addr: "127.0.0.1:7946".into(),
        ..Default::default()
    })
    .await
    .expect("peer-1 registers");
    two.report_cluster(ClusterReport {
        edge_id: "peer-2".into(),
        peers: vec![down("peer-1", 4, "down")],
    })
    .await
    .expect("a stale report is taken, and ignored");
    let peer_one = listed(&api, &keys[0], "peer-1").await;
    assert_eq!(peer_one["status"], "online", "{peer_one}");
    assert!(peer_one["cluster_state"].is_null(), "{peer_one}");

    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(multi_thread; peers_reports_end_a_live_edges_calls_once);

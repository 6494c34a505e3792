//! The edge ↔ control-plane link, end to end over real gRPC on loopback, on SQLite and
//! PostgreSQL: registration and status, configuration propagation, exactly-once events across a
//! control-plane restart, and refusal of a wrong secret.

use crate::support;

use std::time::Duration;

use crate::support::on_both_engines;
use crate::support::{
    control_config, edge_config, eventually, until_edge_holds, Backend, TestDb, SECRET,
};
use freya_control::server::ControlPlane;
use freya_control::store::{EdgeRecord, Role, Store, WorkspaceScope};
use freya_edge::Edge;
use freya_shared::model::{AgentSpec, CallEvent, CallEventKind, EdgeStatus, PhoneNumberSpec};

fn agent(name: &str, first_message: &str) -> AgentSpec {
    let mut spec: AgentSpec =
        serde_json::from_value(serde_json::json!({ "name": name })).expect("agent spec");
    spec.first_message = Some(first_message.into());
    spec
}

/// The record of edge `edge_id` once the store shows it in `status` (`what` names the wait).
async fn edge_shown(store: &Store, edge_id: &str, status: EdgeStatus, what: &str) -> EdgeRecord {
    eventually(Duration::from_secs(10), what, || async move {
        let edges = store.edges(2_000).await.ok()?;
        edges
            .into_iter()
            .find(|e| e.id == edge_id && e.status == status)
    })
    .await
}

async fn edge_registers_and_shows_online(backend: Backend) {
    let (db, control) = support::control_plane(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    let store = control.store.clone();
    let edge_id = edge.id.clone();
    let record = edge_shown(
        &store,
        &edge_id,
        EdgeStatus::Online,
        "the edge to show online",
    )
    .await;
    assert_eq!(record.region, "local");
    assert_eq!(record.capacity, 10);

    // The edge's own probes: ready once it holds a configuration, metrics in Prometheus text.
    let edge_http = format!("http://{}", edge.http_addr);
    eventually(Duration::from_secs(10), "the edge to be ready", || {
        let url = format!("{edge_http}/readyz");
        async move {
            reqwest::get(url)
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        }
    })
    .await;
    let metrics = reqwest::get(format!("{edge_http}/metrics"))
        .await
        .expect("edge metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("freya_edge_config_version"), "{metrics}");

    // Draining through the command stream shows up in the next heartbeat.
    let drain = freya_proto::v1::EdgeCommand {
        id: freya_shared::ids::new_id(),
        command: Some(freya_proto::v1::edge_command::Command::Drain(
            freya_proto::v1::Drain {
                draining: true,
                leave: false,
            },
        )),
    };
    let hub = control.commands.clone();
    eventually(
        Duration::from_secs(10),
        "the command stream to open",
        || {
            let hub = hub.clone();
            let (edge_id, drain) = (edge_id.clone(), drain.clone());
            async move { hub.send(&edge_id, drain).await.ok() }
        },
    )
    .await;
    edge_shown(
        &store,
        &edge_id,
        EdgeStatus::Draining,
        "the edge to show draining",
    )
    .await;
    assert!(edge.state.is_draining());

    // Once the edge stops, it turns offline after the configured silence.
    edge.stop().await;
    edge_shown(
        &store,
        &edge_id,
        EdgeStatus::Offline,
        "the stopped edge to show offline",
    )
    .await;
    control.stop().await;
    db.cleanup().await;
}

async fn an_agent_change_reaches_the_edge_within_a_second(backend: Backend) {
    let (db, control) = support::control_plane(backend).await;
    let store = control.store.clone();
    let workspace_id = store.create_workspace("Acme").await.expect("workspace");
    let scope = WorkspaceScope { workspace_id };
    let created = store
        .create_agent(&scope, "test", &agent("Desk", "Hello"))
        .await
        .expect("agent");
    store
        .create_number(
            &scope,
            "test",
            &PhoneNumberSpec {
                number: "+15550100".into(),
                region: None,
                regions: Vec::new(),
                agent_id: Some(created.id.clone()),
                workflow_id: None,
            },
        )
        .await
        .expect("number");
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    until_edge_holds(&edge, "the first snapshot", |s| {
        s.route("+15550100").is_some()
    })
    .await;

    let changed_at = tokio::time::Instant::now();
    store
        .update_agent(&scope, "test", &created.id, &agent("Desk", "Good morning"))
        .await
        .expect("update");
    let mut watch = edge.state.watch_snapshot();
    let arrived = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let greeting = watch
                .borrow_and_update()
                .route("+15550100")
                .and_then(|r| r.agent().and_then(|a| a.spec.first_message.clone()));
            if greeting.as_deref() == Some("Good morning") {
                return;
            }
            if watch.changed().await.is_err() {
                panic!("snapshot channel closed");
            }
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "the change did not reach the edge within a second"
    );
    eprintln!(
        "agent change reached the edge in {:?}",
        changed_at.elapsed()
    );

    // The snapshot is cached: a restarted edge serves it without the control plane.
    edge.stop().await;
    control.stop().await;
    let cfg = edge_config(dir.path(), "127.0.0.1:1".parse().expect("addr"), SECRET);
    let offline_edge = Edge::start(&cfg).await.expect("edge restarts alone");
    let greeting = offline_edge
        .state
        .snapshot()
        .route("+15550100")
        .and_then(|r| r.agent().and_then(|a| a.spec.first_message.clone()));
    assert_eq!(greeting.as_deref(), Some("Good morning"));
    offline_edge.stop().await;
    db.cleanup().await;
}

async fn events_arrive_exactly_once_across_a_control_plane_restart(backend: Backend) {
    const EVENTS: usize = 300;
    let db = TestDb::new(backend).await;
    let mut config = control_config(&db.url);
    let control = ControlPlane::start(&config).await.expect("control starts");
    // Restart on the same addresses, so the edge finds it again.
    config.http.addr = control.http_addr.to_string();
    config.grpc.addr = control.grpc_addr.to_string();
    let workspace_id = control
        .store
        .create_workspace("Acme")
        .await
        .expect("workspace");
    let scope = WorkspaceScope {
        workspace_id: workspace_id.clone(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");

    let events = edge.events();
    let producer = tokio::spawn(async move {
        let mut ids = Vec::new();
        for n in 0..EVENTS {
            let event = CallEvent::raw(
                format!("call-{}", n / 3),
                workspace_id.clone(),
                match n % 3 {
                    0 => CallEventKind::Started,
                    1 => CallEventKind::Answered,
                    _ => CallEventKind::Ended,
                },
                serde_json::json!({ "n": n }),
            );
            ids.push(event.id.clone());
            events.send(event).await.expect("edge accepts events");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ids
    });

    let store = control.store.clone();
    eventually(Duration::from_secs(10), "some events to be stored", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move { (store.count_call_events(&scope).await.ok()? >= 50).then_some(()) }
    })
    .await;
    control.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let control = ControlPlane::start(&config)
        .await
        .expect("control restarts");
    let ids = producer.await.expect("producer finished");

    let store = control.store.clone();
    let stored = eventually(Duration::from_secs(30), "every event to be stored", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let n = store.count_call_events(&scope).await.ok()?;
            (n >= EVENTS as i64).then_some(n)
        }
    })
    .await;
    assert_eq!(stored, EVENTS as i64, "no event stored twice");
    // Every id the edge produced is there, each exactly once, in the right call.
    for (n, id) in ids.iter().enumerate() {
        let call_events = store
            .call_events(&scope, &format!("call-{}", n / 3))
            .await
            .expect("events of a call");
        assert_eq!(
            call_events.iter().filter(|e| &e.id == id).count(),
            1,
            "event {n}"
        );
    }
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_edge_with_a_wrong_secret_is_refused() {
    let (_db, control) = support::control_plane(Backend::Sqlite).await;
    let mut client = freya_edge::control_link::client(
        &format!("http://{}", control.grpc_addr),
        "not-the-secret-at-all",
        "intruder",
        Duration::from_secs(2),
    )
    .expect("client");
    let refused = client
        .register(freya_proto::v1::RegisterRequest {
            edge_id: "intruder".into(),
            region: "local".into(),
            capacity: 1,
            ..Default::default()
        })
        .await
        .expect_err("a wrong secret must be refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // A whole edge with the wrong secret never appears in the list.
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(
        dir.path(),
        control.grpc_addr,
        "wrong-secret-wrong-secret",
    ))
    .await
    .expect("edge starts");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let edges = control.store.edges(2_000).await.expect("edges");
    assert!(edges.iter().all(|e| e.id != edge.id), "{edges:?}");
    edge.stop().await;
    control.stop().await;
}

#[tokio::test]
async fn api_keys_authenticate_with_their_role_and_workspace() {
    let (_db, control) = support::control_plane(Backend::Sqlite).await;
    let store = &control.store;
    let ws = store.create_workspace("A").await.expect("workspace");
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let key = store
        .create_api_key(&scope, "ci", Role::Viewer)
        .await
        .expect("key");
    assert!(key.key.starts_with(&key.prefix));
    let who = store
        .authenticate_api_key(&key.key)
        .await
        .expect("lookup")
        .expect("valid");
    assert_eq!(who.scope.workspace_id, ws);
    assert_eq!(who.role, Role::Viewer);
    assert!(store
        .authenticate_api_key("fk_nope")
        .await
        .expect("lookup")
        .is_none());
    control.stop().await;
}

on_both_engines!(
    multi_thread;
    edge_registers_and_shows_online,
    an_agent_change_reaches_the_edge_within_a_second,
    events_arrive_exactly_once_across_a_control_plane_restart,
);

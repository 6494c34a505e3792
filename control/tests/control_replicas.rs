//! Two control-plane replicas on one PostgreSQL database, one of them a `freya control` process
//! killed (SIGKILL) while calls are up. The edge is given both gRPC URLs, the killed replica
//! first, so it is the one the edge uses until it dies. Calls in progress at the kill hang up
//! afterwards and new calls are made: every call's events are recorded (through the surviving
//! replica, which the edge moved to), and the webhook receiver counts each `call.started` and
//! `call.ended` delivery exactly once.
//!
//! The kill lands while no delivery is in flight (the test waits for the queue to be empty
//! first): a replica killed between a receiver's 2xx and recording it is the one case of a
//! delivery sent twice (at least once, see `store/deliveries.rs`), which no scheme can rule
//! out and this test does not pretend to.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::raw_sip::Call;
use crate::support::webhook_sink::{webhook_receiver, Seen};
use crate::support::{
    agent_on_number, control_config, edge_config, eventually, until_routed, Backend, TestDb,
    ENCRYPTION_KEY, JWT_SECRET, SECRET,
};
use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_shared::model::AgentSpec;

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);
const NUMBER: &str = "+15550100";
/// Calls up when the replica is killed, and calls made after it.
const CALLS_AT_KILL: usize = 6;
const CALLS_AFTER: usize = 6;

/// A `freya control` process, killed on drop.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The replica to kill, as a process on `db_url` with the test control plane's settings.
fn start_replica(dir: &Path, db_url: &str, http: u16, grpc: u16) -> Replica {
    let path = dir.join("control.toml");
    let recordings = dir.join("recordings");
    let text = format!(
        "[http]\naddr = \"127.0.0.1:{http}\"\n\
         [grpc]\naddr = \"127.0.0.1:{grpc}\"\n\
         [database]\nurl = \"{db_url}\"\nmin_connections = 1\nmax_connections = 5\n\
         [edges]\nshared_secret = \"{SECRET}\"\nheartbeat_interval_ms = 200\n\
         offline_after_ms = 2000\nconfig_poll_ms = 200\n\
         [auth]\njwt_secret = \"{JWT_SECRET}\"\ntoken_ttl_seconds = 600\n\
         encryption_key = \"{ENCRYPTION_KEY}\"\n\
         [rate_limits]\nper_key_per_minute = 60000\nper_ip_per_minute = 60000\nburst = 10000\n\
         [webhooks]\npoll_interval_ms = 50\ntimeout_ms = 2000\nretry_base_ms = 100\n\
         retry_max_ms = 400\nallow_private_targets = true\n\
         [recordings]\ndir = \"{}\"\n",
        recordings.display()
    );
    std::fs::write(&path, text).expect("control config");
    let child = Command::new(env!("CARGO_BIN_EXE_freya"))
        .arg("control")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya control");
    Replica(child)
}

/// Deliveries not yet delivered (pending, or claimed by a replica).
async fn undelivered(db_url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db_url)
        .await
        .expect("connect to the test database");
    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'delivered'")
        .fetch_one(&mut conn)
        .await
        .expect("count deliveries")
}

/// How many times the receiver got each (event id, type).
fn counted(seen: &Seen) -> HashMap<(String, String), u32> {
    let mut count = HashMap::new();
    for body in seen.lock().expect("lock").iter() {
        let key = (
            body["id"].as_str().unwrap_or_default().to_owned(),
            body["type"].as_str().unwrap_or_default().to_owned(),
        );
        *count.entry(key).or_default() += 1;
    }
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_replica_loses_and_duplicates_nothing() {
    let db = TestDb::new(Backend::Postgres).await;
    let survivor = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("the surviving replica starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let (http, grpc) = (free_port(), free_port());
    let mut doomed = start_replica(dir.path(), &db.url, http, grpc);
    let doomed_api = format!("http://127.0.0.1:{http}");
    eventually(LIMIT, "the second replica to serve", || async {
        let answer = reqwest::get(format!("{doomed_api}/healthz")).await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;

    let api = Api::of(&survivor);
    let (ws, keys) = workspace_with_keys(&survivor, "Replicas").await;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let stop_receiver = CancellationToken::new();
    let (seen, url) = webhook_receiver(stop_receiver.clone()).await;
    api.create(
        "/v1/webhooks",
        &keys[0],
        json!({"url": url, "events": ["call.started", "call.ended"],
                    "secret": "whsec-0123456789abcdef"}),
    )
    .await;
    let desk: AgentSpec = serde_json::from_value(json!({"name": "Desk"})).expect("agent");
    agent_on_number(&survivor, &scope, NUMBER, &desk).await;

    // The edge knows both replicas, the doomed one first.
    let edge_dir = tempfile::tempdir().expect("temp dir");
    let mut config = edge_config(edge_dir.path(), survivor.grpc_addr, SECRET);
    config.control.url = format!("http://127.0.0.1:{grpc}");
    config.control.urls = vec![
        format!("http://127.0.0.1:{grpc}"),
        format!("http://{}", survivor.grpc_addr),
    ];
    config.capacity = 50;
    let edge = Edge::start(&config).await.expect("edge starts");
    until_routed(&edge, NUMBER).await;
    assert!(
        !survivor.commands.is_connected(&edge.id),
        "the edge is on the first URL, the replica to be killed"
    );

    // Calls up when the replica dies; every start delivered before the kill.
    let mut up = Vec::new();
    for n in 0..CALLS_AT_KILL {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
        let call = Call::dial(edge.sip_addr, &rtp, NUMBER, &format!("replica-up-{n}")).await;
        up.push((call, rtp));
    }
    eventually(LIMIT, "the calls' starts to be delivered", || async {
        let started = counted(&seen)
            .keys()
            .filter(|k| k.1 == "call.started")
            .count();
        (started == CALLS_AT_KILL && undelivered(&db.url).await == 0).then_some(())
    })
    .await;

    let _ = doomed.0.kill();
    let _ = doomed.0.wait();

    // The calls up end now, and more are made: the edge must reach the survivor for any of it
    // to be recorded.
    for (call, _rtp) in &up {
        call.hang_up(2).await;
    }
    for n in 0..CALLS_AFTER {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
        let call = Call::dial(edge.sip_addr, &rtp, NUMBER, &format!("replica-after-{n}")).await;
        call.hang_up(2).await;
    }
    let total = CALLS_AT_KILL + CALLS_AFTER;
    let calls = eventually(LIMIT, "every call recorded as ended", || {
        let (store, scope) = (survivor.store.clone(), scope.clone());
        async move {
            let calls = store.calls(&scope, 100).await.ok()?;
            (calls.len() == total && calls.iter().all(|c| c.ended_at_ms.is_some())).then_some(calls)
        }
    })
    .await;
    for call in &calls {
        assert_eq!(
            call.end_reason.as_deref(),
            Some("caller_hangup"),
            "{call:?}"
        );
        let events = survivor
            .store
            .call_events(&scope, &call.id)
            .await
            .expect("events");
        for kind in ["call.started", "call.answered", "call.ended"] {
            assert_eq!(
                events.iter().filter(|e| e.kind == kind).count(),
                1,
                "{kind} of {}: {events:?}",
                call.id
            );
        }
    }
    // Its command stream reconnects on its own backoff, after the events have moved.
    eventually(
        LIMIT,
        "the edge's command stream on the surviving replica",
        || async { survivor.commands.is_connected(&edge.id).then_some(()) },
    )
    .await;

    eventually(LIMIT, "every delivery", || async {
        let count = counted(&seen);
        (count.len() == 2 * total && undelivered(&db.url).await == 0).then_some(())
    })
    .await;
    // Room for a second copy to arrive, if there were one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let count = counted(&seen);
    assert_eq!(count.len(), 2 * total, "{count:?}");
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    for kind in ["call.started", "call.ended"] {
        assert_eq!(count.keys().filter(|k| k.1 == kind).count(), total);
    }

    edge.stop().await;
    survivor.stop().await;
    stop_receiver.cancel();
    db.cleanup().await;
}

/// Timed work (ending lost edges' calls) is done by one replica at a time: the lease on it is
/// refused to a second replica while the first holds it, and taken over once it has run out
/// (the holder died) or been given back (the holder stopped).
#[tokio::test(flavor = "multi_thread")]
async fn a_timer_lease_has_one_holder_until_it_runs_out() {
    let db = TestDb::new(Backend::Postgres).await;
    let a = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("replica a");
    let b = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("replica b");
    let (now, lease) = (1_000_000, 1_000);
    let hold = |store: &freya_control::store::Store, holder: &'static str, at: i64| {
        let store = store.clone();
        async move {
            store
                .hold_timer_lease("test_work", holder, at, lease)
                .await
                .expect("lease")
        }
    };
    assert!(hold(&a.store, "a", now).await);
    assert!(!hold(&b.store, "b", now + 10).await, "held by a");
    assert!(hold(&a.store, "a", now + 500).await, "a renews");
    assert!(
        !hold(&b.store, "b", now + 1_400).await,
        "renewed until now + 1500"
    );
    assert!(
        hold(&b.store, "b", now + 1_501).await,
        "run out: b takes over"
    );
    assert!(!hold(&a.store, "a", now + 1_600).await, "a lost it");
    b.store
        .release_timer_lease("test_work", "b")
        .await
        .expect("release");
    assert!(
        hold(&a.store, "a", now + 1_700).await,
        "given back: a at once"
    );
    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}

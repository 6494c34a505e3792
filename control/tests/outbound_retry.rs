//! An outbound call an edge accepts but cannot place is placed once more on another edge, over
//! real sockets: a control plane and two edges in this process, edge A on 127.0.0.1 (preferred:
//! more room) and edge B on 127.0.0.2, one UDP trunk (a hand-written UAS) that answers each
//! INVITE as the test scripts it *by the edge it comes from*. A 503 on A's path is retried on B
//! and answered there, recorded (`call.retried`, `edge_attempts`) with one call for webhooks; a
//! busy 486 is the callee's answer and never retried; a retry that fails too is not retried
//! again. Then the claim itself, on PostgreSQL with two control-plane replicas storing the same
//! failures at once: one retry. With replicas, on SQLite and PostgreSQL: a retry goes to an edge
//! whose command stream is on another replica than the one that claimed it, and a call left
//! leased by a replica killed before it sent the command is placed by another once the lease
//! has run out.

use crate::support;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::net::UdpSocket;

use crate::support::http::Api;
use crate::support::party::find_header;
use crate::support::world::{udp_trunk, World};
use crate::support::{
    control_config, control_plane, edge_config, eventually, on_both_engines, Backend, SECRET,
};
use freya_control::store::{EdgeAttempt, NewOutboundCall, NewWebhook, Role, WorkspaceScope};
use freya_edge::Edge;
use freya_shared::model::call_payloads::CallFailed;
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};

const PARTY: &str = "+4733333333";
const LIMIT: Duration = Duration::from_secs(20);
const EDGE_B: &str = "edge-b";

/// How the scripted trunk answers an INVITE from an edge: `None` answers 200 OK.
type Script = fn(IpAddr) -> Option<(u16, &'static str)>;

/// The trunk's record: each call it was offered, as `(edge address, Call-ID)`.
#[derive(Clone, Default)]
struct Offers(Arc<Mutex<HashSet<(IpAddr, String)>>>);

impl Offers {
    fn from(&self, ip: &str) -> usize {
        let ip: IpAddr = ip.parse().expect("ip");
        let offers = self.0.lock().expect("offers");
        offers.iter().filter(|(from, _)| *from == ip).count()
    }
}

/// The header `name:` of a SIP message (first occurrence), whole line; empty when absent.
fn header<'a>(message: &'a str, name: &str) -> &'a str {
    find_header(message, name).unwrap_or("")
}

/// A response to `request` with `code`, echoing its Via, From, To (tagged), Call-ID and CSeq.
fn response(request: &str, code: u16, phrase: &str, local: SocketAddr, sdp: &str) -> String {
    let vias: Vec<&str> = request
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
        .collect();
    let to = header(request, "To");
    let to = if to.contains("tag=") {
        to.to_owned()
    } else {
        format!("{to};tag=trunk")
    };
    let content = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "SIP/2.0 {code} {phrase}\r\n{}\r\n{}\r\n{to}\r\n{}\r\n{}\r\n\
         Contact: <sip:trunk@{local}>\r\n{content}Content-Length: {}\r\n\r\n{sdp}",
        vias.join("\r\n"),
        header(request, "From"),
        header(request, "Call-ID"),
        header(request, "CSeq"),
        sdp.len()
    )
}

/// Serves the trunk on `sip` until aborted: INVITEs as `script` says for their source address,
/// 200 OK to any other request but ACK.
fn trunk(sip: UdpSocket, rtp_port: u16, script: Script) -> (Offers, tokio::task::JoinHandle<()>) {
    let offers = Offers::default();
    let seen = offers.clone();
    let task = tokio::spawn(async move {
        let local = sip.local_addr().expect("addr");
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = sip.recv_from(&mut buf).await else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answer = if text.starts_with("INVITE ") {
                let call_id = header(&text, "Call-ID").to_owned();
                seen.0.lock().expect("offers").insert((from.ip(), call_id));
                match script(from.ip()) {
                    Some((code, phrase)) => response(&text, code, phrase, local, ""),
                    None => response(&text, 200, "OK", local, &sdp),
                }
            } else if text.starts_with("ACK ") || text.starts_with("SIP/2.0") {
                continue;
            } else {
                response(&text, 200, "OK", local, "")
            };
            let _ = sip.send_to(answer.as_bytes(), from).await;
        }
    });
    (offers, task)
}

fn edge_a_fails_with_503(from: IpAddr) -> Option<(u16, &'static str)> {
    (from == IpAddr::from([127, 0, 0, 1])).then_some((503, "Service Unavailable"))
}

fn edge_a_hears_busy(from: IpAddr) -> Option<(u16, &'static str)> {
    (from == IpAddr::from([127, 0, 0, 1])).then_some((486, "Busy Here"))
}

fn every_edge_fails_with_503(_: IpAddr) -> Option<(u16, &'static str)> {
    Some((503, "Service Unavailable"))
}

/// Which control-plane replica edge B's command stream (and heartbeats) go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BLinks {
    /// The world's control plane, like edge A.
    ToTheSameReplica,
    /// A second replica on the same database, which A never talks to.
    ToAnotherReplica,
}

/// The world (edge A, twice B's room so `POST /v1/calls` picks it first), edge B on
/// 127.0.0.2, the scripted trunk in both edges' configuration, and a webhook subscription.
struct Cluster {
    w: World,
    b: Edge,
    /// The replica B links to, when not the world's.
    second: Option<freya_control::server::ControlPlane>,
    offers: Offers,
    trunk: tokio::task::JoinHandle<()>,
    webhook_id: String,
    _rtp: UdpSocket,
    _dir: tempfile::TempDir,
}

async fn cluster(script: Script) -> Cluster {
    cluster_on(Backend::Sqlite, script, BLinks::ToTheSameReplica).await
}

async fn cluster_on(backend: Backend, script: Script, b_links: BLinks) -> Cluster {
    let w = World::builder()
        .backend(backend)
        .edge_config(|config| config.capacity = 20)
        .start()
        .await;
    let second = match b_links {
        BLinks::ToTheSameReplica => None,
        BLinks::ToAnotherReplica => Some(
            freya_control::server::ControlPlane::start(&control_config(&w.db.url))
                .await
                .expect("second replica"),
        ),
    };
    let b_control = second.as_ref().unwrap_or(&w.control);
    let dir = tempfile::tempdir().expect("dir");
    let mut b_config = edge_config(dir.path(), b_control.grpc_addr, SECRET);
    b_config.id = Some(EDGE_B.into());
    b_config.sip.addr = "127.0.0.2:0".into();
    let b = Edge::start(&b_config).await.expect("edge B starts");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let sip = UdpSocket::bind("127.0.0.1:0").await.expect("trunk");
    let port = sip.local_addr().expect("addr").port();
    let (offers, trunk) = trunk(sip, rtp_port, script);
    w.set_trunks(vec![udp_trunk("carrier", port, 1)]);
    eventually(LIMIT, "edge B's first configuration", || async {
        (!b.state.snapshot().numbers.is_empty()).then_some(())
    })
    .await;
    b.state.set_snapshot((*w.edge.state.snapshot()).clone());
    let store = &w.control.store;
    eventually(LIMIT, "both edges online", || async {
        let edges = store.edges(60_000).await.ok()?;
        let online = |id: &str| {
            edges.iter().any(|e| {
                e.id == id && e.status == freya_shared::model::EdgeStatus::Online && e.capacity > 0
            })
        };
        (online(&w.edge.id) && online(EDGE_B)).then_some(())
    })
    .await;
    let (hub, a) = (&w.control.commands, w.edge.id.clone());
    let b_hub = &b_control.commands;
    eventually(LIMIT, "both edges' command streams", || async {
        (hub.is_connected(&a) && b_hub.is_connected(EDGE_B)).then_some(())
    })
    .await;
    let hook = NewWebhook {
        url: "http://127.0.0.1:9/hook".into(),
        events: ["call.started", "call.answered", "call.failed", "call.ended"]
            .map(String::from)
            .to_vec(),
        secret: Some("whsec-test-0123456789".into()),
    };
    let webhook_id = store
        .create_webhook(&w.scope, "test", &hook)
        .await
        .expect("webhook")
        .id;
    Cluster {
        w,
        b,
        second,
        offers,
        trunk,
        webhook_id,
        _rtp: rtp,
        _dir: dir,
    }
}

impl Cluster {
    /// `POST /v1/calls` from the world's number to the party; the call's id.
    async fn place(&self) -> String {
        let key = self.w.key(Role::Editor).await;
        let body = json!({"from": self.w.number, "to": PARTY});
        let answer = Api::of(&self.w.control)
            .call("POST", "/v1/calls", &key, Some(body))
            .await;
        assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
        assert_eq!(
            answer.body["edge_id"],
            self.w.edge.id.as_str(),
            "A is tried first"
        );
        answer.body["id"].as_str().expect("id").to_owned()
    }

    /// How many webhook deliveries of `kind` were queued.
    async fn deliveries(&self, kind: &str) -> usize {
        let (deliveries, _) = self
            .w
            .control
            .store
            .webhook_deliveries(&self.w.scope, &self.webhook_id, None, 500)
            .await
            .expect("deliveries");
        deliveries.iter().filter(|d| d.event_kind == kind).count()
    }

    async fn kinds(&self, call_id: &str) -> Vec<String> {
        let events = self.w.events_of(call_id).await;
        events.into_iter().map(|e| e.kind).collect()
    }

    async fn stop(self) {
        self.trunk.abort();
        self.b.stop().await;
        if let Some(second) = self.second {
            second.stop().await;
        }
        self.w.stop().await;
    }
}

fn attempt(edge_id: &str, reason: &str) -> EdgeAttempt {
    EdgeAttempt {
        edge_id: edge_id.into(),
        reason: reason.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_trunk_fails_on_one_edge_is_answered_on_another_once() {
    let c = cluster(edge_a_fails_with_503).await;
    let id = c.place().await;
    let store = &c.w.control.store;
    let call = eventually(LIMIT, "the call answered", || async {
        let call = store.call(&c.w.scope, &id).await.ok()?;
        (call.status == "in_progress").then_some(call)
    })
    .await;
    assert_eq!(call.edge_id.as_deref(), Some(EDGE_B), "answered on B");
    assert_eq!(
        call.edge_attempts,
        [attempt(&c.w.edge.id, "all_trunks_failed")]
    );
    let a_ip = "127.0.0.1";
    assert_eq!((c.offers.from(a_ip), c.offers.from("127.0.0.2")), (1, 1));
    let events = c.w.events_of(&id).await;
    let retried: Vec<_> = events.iter().filter(|e| e.kind == "call.retried").collect();
    assert_eq!(retried.len(), 1, "{events:?}");
    assert_eq!(retried[0].payload["from_edge"], c.w.edge.id.as_str());
    assert_eq!(retried[0].payload["to_edge"], EDGE_B);
    assert_eq!(retried[0].payload["reason"], "all_trunks_failed");
    let failed = events
        .iter()
        .find(|e| e.kind == "call.failed")
        .expect("A's failure");
    assert_eq!(failed.payload["placement"], "edge");

    // The API shows the attempt; the customer was told of one call, never of A's failure.
    let key = c.w.key(Role::Viewer).await;
    let view = Api::of(&c.w.control)
        .expect(200, "GET", &format!("/v1/calls/{id}"), &key, None)
        .await;
    assert_eq!(view["edge_id"], EDGE_B);
    assert_eq!(
        view["edge_attempts"],
        json!([{"edge_id": c.w.edge.id, "reason": "all_trunks_failed"}])
    );
    assert_eq!(c.deliveries("call.failed").await, 0);
    assert_eq!(c.deliveries("call.started").await, 1);
    assert_eq!(c.deliveries("call.answered").await, 1);

    let editor = c.w.key(Role::Editor).await;
    Api::of(&c.w.control)
        .expect(
            202,
            "POST",
            &format!("/v1/calls/{id}/hangup"),
            &editor,
            None,
        )
        .await;
    let ended = c.w.finished_call(&id).await;
    assert_eq!(ended.status, "ended");
    assert_eq!(c.deliveries("call.ended").await, 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_callee_is_not_called_again_from_another_edge() {
    let c = cluster(edge_a_hears_busy).await;
    let id = c.place().await;
    let call = c.w.finished_call(&id).await;
    assert_eq!(
        (call.status.as_str(), call.end_reason.as_deref()),
        ("failed", Some("busy"))
    );
    assert!(call.edge_attempts.is_empty(), "{:?}", call.edge_attempts);
    let events = c.w.events_of(&id).await;
    let failed = events
        .iter()
        .find(|e| e.kind == "call.failed")
        .expect("failed");
    assert_eq!(failed.payload["placement"], "callee");
    assert!(!c.kinds(&id).await.iter().any(|k| k == "call.retried"));
    // The failure was stored unclaimed (the call is over), so nothing can place it again; B
    // never offered it.
    assert_eq!(
        (c.offers.from("127.0.0.1"), c.offers.from("127.0.0.2")),
        (1, 0)
    );
    assert_eq!(c.deliveries("call.failed").await, 1);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_fails_too_is_one_failed_call_with_both_attempts() {
    let c = cluster(every_edge_fails_with_503).await;
    let id = c.place().await;
    let call = c.w.finished_call(&id).await;
    assert_eq!(call.status, "failed");
    assert_eq!(call.edge_id.as_deref(), Some(EDGE_B));
    assert_eq!(
        call.edge_attempts,
        [
            attempt(&c.w.edge.id, "all_trunks_failed"),
            attempt(EDGE_B, "all_trunks_failed")
        ]
    );
    let kinds = c.kinds(&id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "call.retried").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "call.failed").count(), 2);
    assert_eq!(
        (c.offers.from("127.0.0.1"), c.offers.from("127.0.0.2")),
        (1, 1)
    );
    assert_eq!(
        c.deliveries("call.failed").await,
        1,
        "one call, one failure"
    );
    assert_eq!(c.deliveries("call.started").await, 1);
    c.stop().await;
}

/// `call.failed` of `call_id`, saying its edge could not place it.
fn edge_failure(call_id: &str, workspace_id: &str) -> CallEvent {
    let failed = CallFailed::because(FailReason::EdgeAtCapacity).placed_by(Placement::Edge);
    CallEvent::new(call_id, workspace_id, CallEventData::Failed(failed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_storing_the_same_failures_at_once_claim_one_retry() {
    let (db, one) = control_plane(Backend::Postgres).await;
    let two = freya_control::server::ControlPlane::start(&control_config(&db.url))
        .await
        .expect("second replica");
    support::register_edge(&one, "edge-a", "local").await;
    // An edge with room for the retries, linked to neither replica: each waits for it (the
    // replicas' passes choose it), so no pass fails a call while the test looks at it.
    one.store
        .register_edge(&freya_control::store::EdgeRegistration {
            id: EDGE_B.into(),
            region: "local".into(),
            sip_addr: "127.0.0.2:5060".into(),
            rtp_addr: "127.0.0.2".into(),
            http_addr: "127.0.0.2:8081".into(),
            version: "test".into(),
            health: freya_shared::model::EdgeHealth {
                capacity: 100,
                ..Default::default()
            },
        })
        .await
        .expect("edge B");
    let scope = WorkspaceScope {
        workspace_id: one.store.create_workspace("Replicas").await.expect("ws"),
    };
    for round in 0..10 {
        let call_id = uuid::Uuid::now_v7().to_string();
        let call = NewOutboundCall {
            id: call_id.clone(),
            edge_id: "edge-a".into(),
            from_number: "+15550100".into(),
            to_number: PARTY.into(),
            agent_id: uuid::Uuid::now_v7().to_string(),
        };
        one.store
            .create_outbound_call(&scope, "test", &call)
            .await
            .expect("call");
        // The edge's report, replayed to the other replica after a failover, and a second
        // report of the same failure: stored by both replicas at once.
        let first = edge_failure(&call_id, &scope.workspace_id);
        let again = edge_failure(&call_id, &scope.workspace_id);
        let batches = [
            (&one.store, vec![first.clone()]),
            (&two.store, vec![first.clone()]),
            (&two.store, vec![again.clone()]),
            (&one.store, vec![again]),
        ];
        let stored = futures::future::join_all(
            batches
                .iter()
                .map(|(store, events)| store.record_call_events_claiming("edge-a", events)),
        )
        .await;
        let claims: usize = stored
            .into_iter()
            .map(|r| r.expect("stored").retries.len())
            .sum();
        assert_eq!(claims, 1, "round {round}: one retry across the replicas");
        let row = one.store.call(&scope, &call_id).await.expect("call");
        assert_eq!(
            (row.status.as_str(), row.ended_at_ms),
            ("queued", None),
            "waiting for its retry"
        );
        assert_eq!(row.edge_attempts, [attempt("edge-a", "edge_at_capacity")]);
    }
    two.stop().await;
    one.stop().await;
    db.cleanup().await;
}

/// Edge A's failure is stored by the replica A talks to, which holds no command stream of B:
/// the retry reaches B through the replica B talks to.
async fn a_retry_reaches_an_edge_linked_to_another_replica(backend: Backend) {
    let c = cluster_on(backend, edge_a_fails_with_503, BLinks::ToAnotherReplica).await;
    assert!(
        !c.w.control.commands.is_connected(EDGE_B),
        "B has no command stream on the replica that claims the retry"
    );
    let id = c.place().await;
    let store = &c.w.control.store;
    let call = eventually(LIMIT, "the call answered on B", || async {
        let call = store.call(&c.w.scope, &id).await.ok()?;
        (call.status == "in_progress").then_some(call)
    })
    .await;
    assert_eq!(call.edge_id.as_deref(), Some(EDGE_B));
    assert_eq!(
        call.edge_attempts,
        [attempt(&c.w.edge.id, "all_trunks_failed")]
    );
    assert_eq!(
        (c.offers.from("127.0.0.1"), c.offers.from("127.0.0.2")),
        (1, 1)
    );
    let kinds = c.kinds(&id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "call.retried").count(), 1);
    assert_eq!(c.deliveries("call.started").await, 1);
    assert_eq!(c.deliveries("call.failed").await, 0);
    // Hung up through the replica B is linked to: an API command reaches an edge from there.
    let editor = c.w.key(Role::Editor).await;
    let b_replica = c.second.as_ref().expect("the second replica");
    Api::of(b_replica)
        .expect(
            202,
            "POST",
            &format!("/v1/calls/{id}/hangup"),
            &editor,
            None,
        )
        .await;
    assert_eq!(c.w.finished_call(&id).await.status, "ended");
    c.stop().await;
}

/// Puts `call_id` in the state a replica killed mid-placement leaves: A failed it, B chosen
/// for the retry, the lease held by the dead replica until `until_ms`, no command sent. One
/// statement, so no live replica's pass sees the call waiting with a free lease first.
async fn leave_leased_by_a_dead_replica(db_url: &str, call_id: &str, a: &str, until_ms: i64) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db_url).await.expect("db");
    let attempts = serde_json::to_string(&[attempt(a, "all_trunks_failed")]).expect("json");
    let changed = sqlx::query(
        "UPDATE calls SET edge_attempts = $1, edge_id = $2, placing_since_ms = $3, \
         placing_holder = 'killed-replica', placing_until_ms = $4 WHERE id = $5",
    )
    .bind(attempts)
    .bind(EDGE_B)
    .bind(freya_shared::ids::now_ms())
    .bind(until_ms)
    .bind(call_id)
    .execute(&mut conn)
    .await
    .expect("lease the call")
    .rows_affected();
    assert_eq!(changed, 1);
}

/// A replica killed after leasing a call's retry and before sending the command: no replica
/// sends it while the dead one's lease holds, and once it has run out the survivor places the
/// call on the chosen edge, once.
async fn a_call_leased_by_a_killed_replica_is_placed_after_the_lease(backend: Backend) {
    let c = cluster_on(backend, edge_a_fails_with_503, BLinks::ToTheSameReplica).await;
    let store = &c.w.control.store;
    let call_id = uuid::Uuid::now_v7().to_string();
    let call = NewOutboundCall {
        id: call_id.clone(),
        edge_id: c.w.edge.id.clone(),
        from_number: c.w.number.clone(),
        to_number: PARTY.into(),
        agent_id: c.w.agent_id.clone(),
    };
    store
        .create_outbound_call(&c.w.scope, "test", &call)
        .await
        .expect("call");
    let lease = Duration::from_secs(3);
    let until = freya_shared::ids::now_ms() + i64::try_from(lease.as_millis()).expect("ms");
    leave_leased_by_a_dead_replica(&c.w.db.url, &call_id, &c.w.edge.id, until).await;

    // Well inside the lease: B was never asked (the survivor looks four times a second).
    tokio::time::sleep(lease / 2).await;
    assert_eq!(c.offers.from("127.0.0.2"), 0, "placed while the lease held");
    let call = eventually(LIMIT, "the call answered on B", || async {
        let call = store.call(&c.w.scope, &call_id).await.ok()?;
        (call.status == "in_progress").then_some(call)
    })
    .await;
    assert!(
        freya_shared::ids::now_ms() >= until,
        "placed only after the lease"
    );
    assert_eq!(call.edge_id.as_deref(), Some(EDGE_B));
    assert_eq!(
        (c.offers.from("127.0.0.1"), c.offers.from("127.0.0.2")),
        (0, 1)
    );
    // Handed over: the call waits no more, and no later pass sends it again.
    assert!(store
        .waiting_placements(freya_shared::ids::now_ms() + 60_000, 10)
        .await
        .expect("waiting")
        .is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.offers.from("127.0.0.2"), 1, "sent once");
    let editor = c.w.key(Role::Editor).await;
    Api::of(&c.w.control)
        .expect(
            202,
            "POST",
            &format!("/v1/calls/{call_id}/hangup"),
            &editor,
            None,
        )
        .await;
    assert_eq!(c.w.finished_call(&call_id).await.status, "ended");
    c.stop().await;
}

on_both_engines!(multi_thread;
    a_retry_reaches_an_edge_linked_to_another_replica,
    a_call_leased_by_a_killed_replica_is_placed_after_the_lease,
);

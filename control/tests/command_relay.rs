//! Commands reach an edge through whichever control-plane replica holds its command stream
//! (`grpc/relay.rs`), on SQLite (two replicas on one file) and PostgreSQL: with edge A linked
//! to one replica and edge B to another (`support/retry_cluster.rs`), an API request to
//! either replica places a call on the other's edge, hangs it up, and drains the other's edge.
//! An edge asked twice to place one call id dials once (the double dial a replica killed
//! between sending a placement and recording it could cause), and a leg dial sent twice under
//! one command id is carried out once. The outbox itself, on the store
//! alone: bounded, leased to one holder, moot once its call ended, withdrawn only while nobody
//! holds it, expired and swept.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;

use crate::support::http::Api;
use crate::support::retry_cluster::{cluster_on, BLinks, Cluster};
use crate::support::{eventually, on_both_engines, waiting_calls, Backend, TestDb};
use freya_control::store::{CommandOutcome, NewEdgeCommand, QueueError, Role};
use freya_proto::v1::leg_command::Action;
use freya_proto::v1::{edge_command::Command, DialLeg, EdgeCommand, LegCommand};
use prost::Message;

const PARTY: &str = "+4733333333";
/// Who a leg of a call dials.
const SECOND_PARTY: &str = "+4744444444";
const LIMIT: Duration = Duration::from_secs(20);
const EDGE_B: &str = "edge-b";

/// The trunk answers every edge's INVITE.
fn every_edge_is_answered(_: IpAddr) -> Option<(u16, &'static str)> {
    None
}

fn second(c: &Cluster) -> &freya_control::server::ControlPlane {
    c.second.as_ref().expect("the second replica")
}

/// A call placed, hung up and an edge drained, each through the replica the edge is not
/// linked to: A's stream is on the world's replica, B's on the second.
async fn a_replica_places_hangs_up_and_drains_on_an_edge_linked_to_another(backend: Backend) {
    let c = cluster_on(backend, every_edge_is_answered, BLinks::ToAnotherReplica).await;
    let (a, world) = (c.w.edge.id.clone(), &c.w.control);
    assert!(
        !second(&c).commands.is_connected(&a) && !world.commands.is_connected(EDGE_B),
        "each edge's stream is on one replica only"
    );
    let editor = c.w.key(Role::Editor).await;
    let body = json!({"from": c.w.number, "to": PARTY});
    // Placed through the second replica, on A (preferred: more room), linked to the first.
    let answer = Api::of(second(&c))
        .call("POST", "/v1/calls", &editor, Some(body))
        .await;
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
    assert_eq!(answer.body["edge_id"], a.as_str(), "A is chosen first");
    let id = answer.body["id"].as_str().expect("id").to_owned();
    c.answered(&id, "the call answered on A").await;
    assert_eq!(
        (c.offers.from("127.0.0.1"), c.offers.from("127.0.0.2")),
        (1, 0),
        "dialled once, from A"
    );
    // Hung up through the second replica too.
    c.hang_up(second(&c), &id).await;
    let ended = c.w.finished_call(&id).await;
    assert_eq!(ended.status, "ended");
    assert_eq!(c.offers.invites_from("127.0.0.1"), 1, "not dialled again");
    // B, linked to the second replica, drained through the first.
    let admin = c.w.key(Role::Admin).await;
    Api::of(world)
        .expect(
            202,
            "POST",
            &format!("/v1/edges/{EDGE_B}/drain"),
            &admin,
            None,
        )
        .await;
    let leave = c.b.state.leave_requested();
    tokio::time::timeout(LIMIT, leave.cancelled())
        .await
        .expect("B told to drain and leave");
    c.stop().await;
}

/// A command for an edge no replica holds is not left behind: the request answers 503 once no
/// replica took it, and the command is withdrawn, never sent later.
async fn a_command_for_an_edge_no_replica_holds_is_refused_and_withdrawn(backend: Backend) {
    let c = cluster_on(backend, every_edge_is_answered, BLinks::ToAnotherReplica).await;
    let admin = c.w.key(Role::Admin).await;
    // B's stream closes with its replica; its record still says online for a while.
    let Cluster { w, b, second, .. } = c;
    let second = second.expect("second replica");
    second.stop().await;
    let world = &w.control;
    eventually(LIMIT, "B's stream gone from every replica", || async {
        (!world.commands.is_connected(EDGE_B)).then_some(())
    })
    .await;
    let answer = Api::of(world)
        .call("POST", &format!("/v1/edges/{EDGE_B}/drain"), &admin, None)
        .await;
    assert_eq!(answer.status.as_u16(), 503, "{}", answer.body);
    assert!(!b.state.leave_requested().is_cancelled(), "B was not told");
    b.stop().await;
    w.stop().await;
}

/// The double dial a replica killed between sending a placement and recording the send could
/// cause: its successor sends the same call id again. The edge places it once.
async fn an_edge_asked_twice_to_place_one_call_dials_once(backend: Backend) {
    let c = cluster_on(backend, every_edge_is_answered, BLinks::ToTheSameReplica).await;
    let call_id = c.stored_call().await;
    let place = |n: u8| c.placement(format!("{call_id}.{n}"), &call_id);
    let hub = &c.w.control.commands;
    // Back to back, before the edge has said anything of the first.
    hub.send(&c.w.edge.id, place(1)).await.expect("first");
    hub.send(&c.w.edge.id, place(2)).await.expect("second");
    c.answered(&call_id, "the call answered on A").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.offers.invites_from("127.0.0.1"), 1, "dialled once");
    // After the call has ended too (nothing on the edge holds its id any more): a late
    // duplicate does not ring the callee again.
    c.hang_up(&c.w.control, &call_id).await;
    assert_eq!(c.w.finished_call(&call_id).await.status, "ended");
    hub.send(&c.w.edge.id, place(3)).await.expect("third");
    // The edge did not start placing it again either: one `call.started` from it.
    dialled_and_started_once(&c, &call_id).await;
    c.stop().await;
}

/// After two seconds' grace for a late duplicate: the callee was rung once, and the edge
/// started the call once.
async fn dialled_and_started_once(c: &Cluster, call_id: &str) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.offers.invites_from("127.0.0.1"), 1, "dialled once");
    let events = c.w.events_of(call_id).await;
    let started = events.iter().filter(|e| e.kind == "call.started").count();
    assert_eq!(started, 1, "started once");
}

/// The same through the call's row: a replica sent the placement, then died holding its lease
/// before recording the send; once the lease has run out the survivor sends it again. The
/// edge dials once.
async fn a_placement_sent_by_a_replica_killed_before_recording_it_dials_once(backend: Backend) {
    let c = cluster_on(backend, every_edge_is_answered, BLinks::ToTheSameReplica).await;
    let store = &c.w.control.store;
    let (a, call_id) = (c.w.edge.id.clone(), c.stored_call().await);
    // The dead replica's state: the call waiting for A under its lease, which has just run
    // out, and its command already on A's stream.
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&c.w.db.url).await.expect("db");
        let now = freya_shared::ids::now_ms();
        sqlx::query(
            "UPDATE calls SET placing_since_ms = $1, placing_holder = 'killed-replica', \
             placing_until_ms = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(now - 1)
        .bind(&call_id)
        .execute(&mut conn)
        .await
        .expect("lease the call");
    }
    let command = c.placement(uuid::Uuid::now_v7().to_string(), &call_id);
    c.w.control.commands.send(&a, command).await.expect("sent");
    eventually(LIMIT, "the survivor to hand the call over", || async {
        (!store.placement_waiting(&call_id).await.ok()?).then_some(())
    })
    .await;
    c.answered(&call_id, "the call answered on A").await;
    dialled_and_started_once(&c, &call_id).await;
    c.stop().await;
}

/// The same for a leg of a live call: a replica sent the dial, then died holding the outbox
/// row's lease before recording the send; the survivor sends it again once the lease has run
/// out. The edge dials the leg once, and does not refuse (and so end) the live leg either.
async fn a_leg_dial_sent_by_a_replica_killed_before_recording_it_dials_once(backend: Backend) {
    let c = cluster_on(backend, every_edge_is_answered, BLinks::ToTheSameReplica).await;
    let store = &c.w.control.store;
    let a = c.w.edge.id.clone();
    let call_id = c.place().await;
    c.answered(&call_id, "the call answered on A").await;
    assert_eq!(c.offers.invites_from("127.0.0.1"), 1, "the call dialled");
    let dial = EdgeCommand {
        id: uuid::Uuid::now_v7().to_string(),
        command: Some(Command::Legs(LegCommand {
            call_id: call_id.clone(),
            action: Some(Action::Dial(DialLeg {
                leg: 1,
                to: SECOND_PARTY.into(),
                ..DialLeg::default()
            })),
        })),
    };
    // The dead replica's doing: the dial on A's stream, and its row still open, its lease run
    // out (which reads as no lease at all).
    c.w.control
        .commands
        .send(&a, dial.clone())
        .await
        .expect("sent");
    let now = freya_shared::ids::now_ms();
    let row = NewEdgeCommand {
        id: dial.id.clone(),
        edge_id: a.clone(),
        kind: "legs".into(),
        call_id: Some(call_id.clone()),
        command: dial.encode_to_vec(),
        created_ms: now,
        expires_ms: now + 30_000,
    };
    store.queue_edge_command(&row, 256).await.expect("queued");
    eventually(LIMIT, "the survivor to send the dial again", || async {
        let outcome = store.edge_command_outcome(&dial.id).await.ok()??;
        (outcome == CommandOutcome::Sent).then_some(())
    })
    .await;
    eventually(LIMIT, "the leg answered", || async {
        let events = c.w.events_of(&call_id).await;
        events
            .iter()
            .any(|e| e.kind == "call.leg_answered")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        c.offers.invites_from("127.0.0.1"),
        2,
        "the call and its leg, each dialled once"
    );
    let kinds = c.kinds(&call_id).await;
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("call.leg_added"), 1, "{kinds:?}");
    assert_eq!(
        count("call.leg_ended"),
        0,
        "the live leg left alone: {kinds:?}"
    );
    c.stop().await;
}

fn queued(id: &str, edge_id: &str, call_id: Option<&str>, now: i64) -> NewEdgeCommand {
    NewEdgeCommand {
        id: id.into(),
        edge_id: edge_id.into(),
        kind: "hangup".into(),
        call_id: call_id.map(str::to_owned),
        command: vec![0x0a, 0x01, 0x78],
        created_ms: now,
        expires_ms: now + 30_000,
    }
}

/// The outbox on the store alone: bounded per edge, one holder per command until its lease
/// runs out, only for the edges asked about; a command whose call ended reads as such; a
/// request withdraws only what nobody holds; expired commands close, closed ones are swept.
async fn the_edge_command_outbox_is_bounded_leased_and_swept(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.migrated_store().await;
    let scope = waiting_calls::workspace(&store, "Outbox").await;
    let call_id = waiting_calls::outbound_call(&store, &scope, "edge-a").await;
    let now = 1_000_000;
    store
        .queue_edge_command(&queued("c1", "edge-a", Some(&call_id), now), 2)
        .await
        .expect("c1");
    store
        .queue_edge_command(&queued("c2", "edge-a", None, now + 1), 2)
        .await
        .expect("c2");
    // Bounded: a third open command for edge-a is refused, edge-b's is not.
    match store
        .queue_edge_command(&queued("c3", "edge-a", None, now + 2), 2)
        .await
    {
        Err(QueueError::Full { open, .. }) => assert_eq!(open, 2),
        other => panic!("a third command was queued: {other:?}"),
    }
    store
        .queue_edge_command(&queued("b1", "edge-b", None, now + 2), 2)
        .await
        .expect("b1");

    let edges = ["edge-a".to_owned()];
    let open = store
        .queued_edge_commands(&edges, now + 10, 10)
        .await
        .expect("open");
    let ids: Vec<&str> = open.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2"], "edge-a's commands, oldest first");
    assert_eq!(open[0].command, [0x0a, 0x01, 0x78], "stored as given");
    assert!(!open[0].call_ended);

    // One holder while the lease holds; taken over after it.
    assert!(store
        .lease_edge_command("c1", "r1", now + 10, 500)
        .await
        .expect("r1"));
    assert!(!store
        .lease_edge_command("c1", "r2", now + 20, 500)
        .await
        .expect("r2"));
    let open = store
        .queued_edge_commands(&edges, now + 20, 10)
        .await
        .expect("open");
    assert_eq!(open.len(), 1, "a leased command is not offered");
    // A request cannot withdraw what a live holder has.
    assert!(!store
        .close_edge_command("c1", None, CommandOutcome::Withdrawn, now + 20)
        .await
        .expect("withdraw"));
    assert!(store
        .lease_edge_command("c1", "r2", now + 511, 500)
        .await
        .expect("r2"));
    // The late first holder can no longer close it.
    assert!(!store
        .close_edge_command("c1", Some("r1"), CommandOutcome::Sent, now + 520)
        .await
        .expect("r1"));
    assert!(store
        .close_edge_command("c1", Some("r2"), CommandOutcome::Sent, now + 520)
        .await
        .expect("r2"));
    assert_eq!(
        store.edge_command_outcome("c1").await.expect("outcome"),
        Some(CommandOutcome::Sent)
    );
    assert!(!store
        .lease_edge_command("c1", "r3", now + 600, 500)
        .await
        .expect("closed"));
    // Nobody holds c2: the request withdraws it, and it is never offered again.
    assert!(store
        .close_edge_command("c2", None, CommandOutcome::Withdrawn, now + 600)
        .await
        .expect("withdraw"));
    assert!(store
        .queued_edge_commands(&edges, now + 600, 10)
        .await
        .expect("open")
        .is_empty());

    // A command whose call ended says so.
    store
        .fail_call(&scope, &call_id, "no_edge_reachable")
        .await
        .expect("ended");
    store
        .queue_edge_command(&queued("c4", "edge-a", Some(&call_id), now + 700), 2)
        .await
        .expect("c4");
    let open = store
        .queued_edge_commands(&edges, now + 700, 10)
        .await
        .expect("open");
    assert_eq!(open.len(), 1);
    assert!(open[0].call_ended, "its call has ended");

    // Expired: never offered nor leased, closed by the sweep; closed rows deleted after.
    let late = now + 700 + 30_000;
    assert!(store
        .queued_edge_commands(&edges, late, 10)
        .await
        .expect("open")
        .is_empty());
    assert!(!store
        .lease_edge_command("c4", "r1", late, 500)
        .await
        .expect("expired"));
    let (expired, deleted) = store
        .sweep_edge_commands(late, now, 100)
        .await
        .expect("sweep");
    assert_eq!(
        (expired, deleted),
        (2, 0),
        "c4 and b1 expired, nothing old enough"
    );
    assert_eq!(
        store.edge_command_outcome("b1").await.expect("outcome"),
        Some(CommandOutcome::Expired)
    );
    let (_, deleted) = store
        .sweep_edge_commands(late + 1, late + 1, 100)
        .await
        .expect("sweep");
    assert_eq!(deleted, 4, "every closed command deleted");
    assert_eq!(store.edge_command_outcome("c1").await.expect("gone"), None);
    store.close().await;
    db.cleanup().await;
}

on_both_engines!(multi_thread;
    a_replica_places_hangs_up_and_drains_on_an_edge_linked_to_another,
    a_command_for_an_edge_no_replica_holds_is_refused_and_withdrawn,
    an_edge_asked_twice_to_place_one_call_dials_once,
    a_placement_sent_by_a_replica_killed_before_recording_it_dials_once,
    a_leg_dial_sent_by_a_replica_killed_before_recording_it_dials_once,
    the_edge_command_outbox_is_bounded_leased_and_swept,
);

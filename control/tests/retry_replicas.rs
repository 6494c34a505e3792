//! Outbound retries with more than one control-plane replica on the same database. On
//! PostgreSQL, two replicas storing the same edge failures at once claim one retry. On SQLite
//! and PostgreSQL, a retry reaches an edge whose command stream is on another replica than the
//! one that claimed it, and a call left leased by a replica killed before it sent the command
//! is placed by another once the lease has run out. Retries on one replica are in
//! `outbound_retry.rs`.

use std::time::Duration;

use freya_control::store::EdgeRegistration;

use crate::support;
use crate::support::retry_cluster::{cluster_on, BLinks, EDGE_B};
use crate::support::scripted_trunk::edge_a_fails_with_503;
use crate::support::waiting_calls::{attempt, edge_failure, outbound_call, workspace};
use crate::support::{control_config, control_plane, on_both_engines, Backend};

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
        .register_edge(&EdgeRegistration {
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
    let scope = workspace(&one.store, "Replicas").await;
    for round in 0..10 {
        let call_id = outbound_call(&one.store, &scope, "edge-a").await;
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
    let call = c.answered(&id, "the call answered on B").await;
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
    let b_replica = c.second.as_ref().expect("the second replica");
    c.hang_up(b_replica, &id).await;
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
    let call_id = c.stored_call().await;
    let lease = Duration::from_secs(3);
    let until = freya_shared::ids::now_ms() + i64::try_from(lease.as_millis()).expect("ms");
    leave_leased_by_a_dead_replica(&c.w.db.url, &call_id, &c.w.edge.id, until).await;

    // Well inside the lease: B was never asked (the survivor looks four times a second).
    tokio::time::sleep(lease / 2).await;
    assert_eq!(c.offers.from("127.0.0.2"), 0, "placed while the lease held");
    let call = c.answered(&call_id, "the call answered on B").await;
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
    c.hang_up(&c.w.control, &call_id).await;
    assert_eq!(c.w.finished_call(&call_id).await.status, "ended");
    c.stop().await;
}

on_both_engines!(multi_thread;
    a_retry_reaches_an_edge_linked_to_another_replica,
    a_call_leased_by_a_killed_replica_is_placed_after_the_lease,
);

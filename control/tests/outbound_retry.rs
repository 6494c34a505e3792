//! An outbound call an edge accepts but cannot place is placed once more on another edge, over
//! real sockets: a control plane and two edges in this process, edge A on 127.0.0.1 (preferred:
//! more room) and edge B on 127.0.0.2, one UDP trunk (a hand-written UAS) that answers each
//! INVITE as the test scripts it *by the edge it comes from*. A 503 on A's path is retried on B
//! and answered there, recorded (`call.retried`, `edge_attempts`) with one call for webhooks; a
//! busy 486 is the callee's answer and never retried; a retry that fails too is not retried
//! again. Retries across control-plane replicas are in `retry_replicas.rs`.

use serde_json::json;

use freya_control::store::Role;

use crate::support::http::Api;
use crate::support::retry_cluster::{cluster, EDGE_B};
use crate::support::scripted_trunk::{
    edge_a_fails_with_503, edge_a_hears_busy, every_edge_fails_with_503,
};
use crate::support::waiting_calls::attempt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_trunk_fails_on_one_edge_is_answered_on_another_once() {
    let c = cluster(edge_a_fails_with_503).await;
    let id = c.place().await;
    let call = c.answered(&id, "the call answered").await;
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

    c.hang_up(&c.w.control, &id).await;
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

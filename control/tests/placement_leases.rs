//! The lease on handing a waiting outbound call to an edge (`store/call_placements.rs`), on
//! the store alone and on both engines: one holder while it holds, taken over once it has run
//! out, and only the holder may say the call was handed over. Replicas placing calls under it
//! are in `retry_replicas.rs`.

use crate::support::waiting_calls::{edge_failure, outbound_call, workspace};
use crate::support::{on_both_engines, Backend, TestDb};

/// The lease on handing a call over, on the store alone: one holder while it holds, taken over
/// once run out, and only the holder may say the call was handed over.
async fn a_placement_lease_has_one_holder_until_it_runs_out(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.migrated_store().await;
    let scope = workspace(&store, "Leases").await;
    let call_id = outbound_call(&store, &scope, "edge-a").await;
    assert!(
        !store
            .lease_placement(&call_id, "a", 1_000, 500)
            .await
            .expect("lease"),
        "a call not waiting is never leased"
    );
    let claimed = store
        .record_call_events_claiming("edge-a", &[edge_failure(&call_id, &scope.workspace_id)])
        .await
        .expect("stored");
    assert_eq!(claimed.retries.len(), 1);
    let now = freya_shared::ids::now_ms();
    let waiting = store.waiting_placements(now, 10).await.expect("waiting");
    assert_eq!(waiting.len(), 1);
    assert!(!waiting[0].edge_chosen(), "no edge chosen yet");
    assert_eq!(waiting[0].first_edge(), "edge-a");

    assert!(store
        .lease_placement(&call_id, "a", now, 500)
        .await
        .expect("a"));
    assert!(!store
        .lease_placement(&call_id, "b", now + 499, 500)
        .await
        .expect("b"));
    assert!(store
        .waiting_placements(now + 499, 10)
        .await
        .expect("w")
        .is_empty());
    assert!(store
        .lease_placement(&call_id, "a", now + 499, 500)
        .await
        .expect("renew"));
    assert!(!store
        .lease_placement(&call_id, "b", now + 998, 500)
        .await
        .expect("b"));
    // Run out: b takes it over, and a, late, can no longer say it handed the call over.
    assert_eq!(
        store
            .waiting_placements(now + 1_000, 10)
            .await
            .expect("w")
            .len(),
        1
    );
    assert!(store
        .lease_placement(&call_id, "b", now + 1_000, 500)
        .await
        .expect("b"));
    assert!(!store.placement_handed_over(&call_id, "a").await.expect("a"));
    assert!(store.placement_handed_over(&call_id, "b").await.expect("b"));
    assert!(store
        .waiting_placements(now + 60_000, 10)
        .await
        .expect("w")
        .is_empty());
    assert!(!store
        .lease_placement(&call_id, "c", now + 60_000, 500)
        .await
        .expect("c"));
    store.close().await;
    db.cleanup().await;
}

on_both_engines!(a_placement_lease_has_one_holder_until_it_runs_out);

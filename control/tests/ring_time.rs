//! Ring time, black-box with sipp against an edge linked to a real control plane, on SQLite and
//! PostgreSQL: a call's record keeps when it began ringing (`ringing_at_ms`, from its
//! `call.ringing`), and analytics give ring time percentiles — ringing to the answer, or to the
//! end of a call cancelled while ringing — beside the time to answer. Before, a record knew only
//! the INVITE and the answer, and a cancelled call had no ring time at all.

use crate::support::hourly_analytics;

use std::time::Duration;

use crate::support::caller::sipp_with_media;
use crate::support::desk::ringing_desk;
use crate::support::{eventually, on_both_engines, the_ended_call, Backend};
use freya_control::store::{AnalyticsGroup, CallBucket, CallRecord};

/// A control plane on `backend`, an edge that rings `ring_ms` before answering, an agent on
/// `demo`; runs sipp's `scenario` against it and gives back the call's record and analytics.
async fn one_call(backend: Backend, ring_ms: u32, scenario: &str) -> (CallRecord, CallBucket) {
    let desk = ringing_desk(backend, "Ringing", ring_ms).await;
    let (control, scope) = (&desk.control, &desk.scope);

    let status = sipp_with_media(desk.edge.sip_addr, "demo", scenario, &[]).await;
    assert_eq!(status, 0, "sipp's call went as scripted");
    let (call, _events) = the_ended_call(&control.store, scope).await;
    let query = hourly_analytics(call.started_at_ms, 1, AnalyticsGroup::None);
    let bucket = eventually(Duration::from_secs(5), "the call's bucket", || {
        let (store, scope, query) = (control.store.clone(), scope.clone(), query.clone());
        async move {
            let buckets = store.call_analytics(&scope, &query).await.ok()?;
            buckets.into_iter().next()
        }
    })
    .await;
    desk.stop().await;
    (call, bucket)
}

async fn a_call_that_rings_1_s_has_a_ring_time_of_about_1_s(backend: Backend) {
    let (call, bucket) = one_call(backend, 1_000, "uac_rings_then_talks.xml").await;
    let ringing_at = call.ringing_at_ms.expect("the record keeps when it rang");
    let answered_at = call.answered_at_ms.expect("answered");
    assert!(
        ringing_at >= call.started_at_ms && ringing_at - call.started_at_ms < 1_000,
        "180 right after the INVITE: {call:?}"
    );
    // Generous bounds: the edge rings exactly 1 s; the rest is scheduling.
    let rang = answered_at - ringing_at;
    assert!((900..4_000).contains(&rang), "rang {rang} ms: {call:?}");
    let ring = bucket.ring_time.expect("a ring time");
    assert_eq!(ring.calls, 1);
    assert!(
        (ring.p50_ms - rang).abs() <= 100 && ring.p95_ms == ring.p50_ms,
        "{ring:?} for {rang} ms"
    );
    // Time to answer counts from the INVITE, so it holds the ring time.
    let to_answer = bucket.time_to_answer.expect("a time to answer");
    assert!(to_answer.p50_ms >= ring.p50_ms, "{to_answer:?} {ring:?}");
}

async fn a_call_cancelled_while_ringing_has_its_ring_time_and_no_answer(backend: Backend) {
    // The edge would ring 5 s; sipp cancels after 1.5 s of ringing.
    let (call, bucket) = one_call(backend, 5_000, "uac_cancel_after_ringing.xml").await;
    assert_eq!(call.answered_at_ms, None);
    assert_eq!(call.end_reason.as_deref(), Some("caller_cancelled"));
    let ringing_at = call.ringing_at_ms.expect("the record keeps when it rang");
    let rang = call.ended_at_ms.expect("ended") - ringing_at;
    assert!((1_400..4_500).contains(&rang), "rang {rang} ms: {call:?}");
    let ring = bucket
        .ring_time
        .expect("a ring time for a call never answered");
    assert_eq!(ring.calls, 1);
    assert!((ring.p50_ms - rang).abs() <= 100, "{ring:?} for {rang} ms");
    assert_eq!(bucket.answered, 0);
    assert_eq!(bucket.time_to_answer, None, "no answer, no time to answer");
}

on_both_engines!(
    multi_thread;
    a_call_that_rings_1_s_has_a_ring_time_of_about_1_s,
    a_call_cancelled_while_ringing_has_its_ring_time_and_no_answer,
);

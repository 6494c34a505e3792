//! An INVITE flood against a real edge, with real sockets on loopback: 127.0.0.1 sends 30 new
//! INVITEs a second (each its own Call-ID) and never acknowledges anything, for several times
//! what it used to take to fill every call slot of an edge with capacity 10; meanwhile a real
//! caller on 127.0.0.2 calls. The caller must be answered (200 OK) and finish its call (ACK, RTP
//! both ways, BYE answered); the flood's excess must be refused with 503 and `Retry-After`, and
//! the flood must hold no more than its source's share of the unconfirmed budget.
//!
//! Before these limits, answered-but-unacknowledged flood calls took all ten slots within a
//! third of a second and the real caller got 503.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::flood::{flood, metrics, real_call, refused, start_edge, FloodOutcome, Limits};

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const CALLER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Capacity 10, an unconfirmed budget of 4 of which one source may hold 2.
fn limits(invites_per_second: f64, burst: u32) -> Limits {
    Limits {
        capacity: 10,
        invites_per_second_per_source: invites_per_second,
        invite_burst_per_source: burst,
        max_unconfirmed: 4,
        max_unconfirmed_per_source: 2,
    }
}

/// Floods the edge for 4 s from [`FLOODER`] while [`CALLER`] places one call 1.5 s in; returns
/// the flood's outcome and the edge's metrics, after checking the real call.
async fn flood_with_a_real_call(limits: Limits, rtp_ports: (u16, u16)) -> (FloodOutcome, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(dir.path(), limits, rtp_ports).await;
    let target = edge.sip_addr;
    let flooding = tokio::spawn(flood(
        target,
        FLOODER,
        30,
        Duration::from_secs(4),
        Duration::from_secs(1),
    ));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let call = tokio::time::timeout(
        Duration::from_secs(60),
        real_call(target, CALLER, Duration::from_millis(1_500), false),
    )
    .await
    .expect("the real call finishes (hang guard)");
    let outcome = flooding.await.expect("flood task");
    let text = metrics(&edge).await;
    edge.stop().await;

    assert_eq!(
        call.code, 200,
        "the real caller must be answered during the flood: {call:?}"
    );
    assert!(
        call.rtp_sent > 0 && call.rtp_received > 0,
        "media both ways: {call:?}"
    );
    assert!(call.bye_answered, "the BYE must be answered: {call:?}");

    assert_eq!(outcome.sent, 120);
    assert!(
        outcome.finals.len() >= outcome.sent * 9 / 10,
        "the flood's INVITEs are answered, got {} of {}",
        outcome.finals.len(),
        outcome.sent
    );
    let answered = outcome.count(200);
    assert!(
        answered <= limits.max_unconfirmed_per_source as usize,
        "the flood may hold only its share of unconfirmed calls, it got {answered} answered"
    );
    let refusals = outcome.count(503);
    assert_eq!(
        refusals + answered,
        outcome.finals.len(),
        "everything else is refused with 503"
    );
    assert_eq!(
        outcome.refused_with_retry_after(),
        refusals,
        "every 503 carries Retry-After"
    );
    assert!(refusals >= 100, "the excess is refused: {refusals}");
    (outcome, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_that_never_acks_is_rate_limited_and_a_real_caller_still_gets_through() {
    let limits = limits(5.0, 5);
    let (outcome, text) = flood_with_a_real_call(limits, (61_100, 61_199)).await;
    // 5 at once, then 5 a second: most of the 120 INVITEs are refused by the rate.
    let rate_limited = outcome
        .finals
        .values()
        .filter(|r| r.code == 503 && r.reason.contains("too many calls from this address"))
        .count();
    assert!(rate_limited >= 80, "rate-limited 503s: {rate_limited}");
    assert!(
        refused(&text, "rate_limited") >= rate_limited as u64,
        "{text}"
    );
    // What the rate let through met the source's share of the unconfirmed budget.
    assert!(refused(&text, "source_unconfirmed_share") >= 1, "{text}");
    assert_eq!(refused(&text, "capacity"), 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rate_limit_open_the_unconfirmed_share_alone_keeps_room_for_real_calls() {
    let limits = limits(1_000.0, 1_000);
    let (outcome, text) = flood_with_a_real_call(limits, (61_200, 61_299)).await;
    assert_eq!(refused(&text, "rate_limited"), 0, "{text}");
    let share = refused(&text, "source_unconfirmed_share");
    assert!(
        share >= 100,
        "refused for the source's share: {share}\n{text}"
    );
    assert!(share as usize >= outcome.count(503));
}

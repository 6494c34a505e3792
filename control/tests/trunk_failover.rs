//! A dead UDP trunk costs an outbound call a moment, not its invite timeout: the first trunk
//! is a UDP port where nothing listens, so our INVITE draws an ICMP port-unreachable, which
//! the edge reads off its SIP socket's error queue and treats as a 503 (RFC 3261 section
//! 8.1.3.1); the second trunk, a sipp UAS, answers. Both trunks keep a 30 s invite timeout, so
//! only the ICMP error can explain a quick answer. Prints the time from the command to the
//! answer (`loadtest/BENCHMARKS.md`, "Trunk failover").
//!
//! The edge gets its trunks by writing its configuration snapshot, as `sip_outbound.rs` does.

use std::time::{Duration, Instant};

use crate::support::caller::{free_udp_port, sipp_uas};
use crate::support::eventually;
use crate::support::world::{udp_trunk, World};
use freya_shared::model::SipTrunkSpec;

/// Both trunks' invite timeout: long, so that it cannot be what moves the call on.
const INVITE_TIMEOUT_MS: u32 = 30_000;

/// A sipp UAS answering one call (`uas_answer.xml`: rings, answers, hangs up after 1.5 s).
async fn answering_trunk() -> (tokio::process::Child, tempfile::TempDir, u16) {
    let media = free_udp_port().to_string();
    let trunk = sipp_uas("uas_answer.xml", &["-m", "1", "-mp", &media], "60s");
    // Let sipp bind its socket before the edge calls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    trunk
}

/// The payload of the call's `call.answered`, once recorded (`limit` is a hang guard), and the
/// time between the edge's `call.started` (stamped as it dials) and `call.answered`.
async fn answered(s: &World, call_id: &str, limit: Duration) -> (serde_json::Value, Duration) {
    eventually(limit, "the call to be answered", || {
        let (store, scope) = (s.control.store.clone(), s.scope.clone());
        async move {
            let events = store.call_events(&scope, call_id).await.ok()?;
            let at = |kind: &str| events.iter().find(|e| e.kind == kind);
            let (started, answered) = (at("call.started")?, at("call.answered")?);
            let took = u64::try_from(answered.at_ms - started.at_ms).unwrap_or_default();
            Some((answered.payload.clone(), Duration::from_millis(took)))
        }
    })
    .await
}

/// Runs the two-trunk call with `first`'s port as the first trunk: released once sipp has its
/// ports (so neither of them can be given it) when `silent` is false, kept bound and never
/// read when true. The answered payload, the time from the command to the answer seen in the
/// store, and the edge's dial-to-answer time.
async fn fail_over(
    first: std::net::UdpSocket,
    silent: bool,
    limit: Duration,
) -> (serde_json::Value, Duration, Duration) {
    let s = World::builder()
        .workspace("Failover")
        .agent(serde_json::json!({"name": "Caller"}))
        .start()
        .await;
    let (mut sipp, _work, up) = answering_trunk().await;
    let port = first.local_addr().expect("addr").port();
    let _silent = silent.then_some(first);
    let trunk = |name, port, priority| SipTrunkSpec {
        invite_timeout_ms: INVITE_TIMEOUT_MS,
        ..udp_trunk(name, port, priority)
    };
    s.set_trunks(vec![trunk("dead", port, 1), trunk("alive", up, 2)]);
    let asked = Instant::now();
    let call_id = s.place_call_by_command("+15557770009").await;
    let (payload, at_edge) = answered(&s, &call_id, limit).await;
    let took = asked.elapsed();
    let status = tokio::time::timeout(Duration::from_secs(30), sipp.wait())
        .await
        .expect("sipp finishes")
        .expect("sipp status");
    assert!(status.success(), "the second trunk's call went as scripted");
    s.stop().await;
    (payload, took, at_edge)
}

fn first_attempt(payload: &serde_json::Value) -> (&str, &str) {
    let attempts = payload["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{payload}");
    (
        attempts[0]["provider"].as_str().expect("provider"),
        // `transport_error`, `timeout`: outcomes without a status are words.
        attempts[0]["outcome"].as_str().expect("outcome"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_udp_trunk_fails_over_on_its_icmp_error_not_its_invite_timeout() {
    // A port where nothing listens: bound, then released.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("a port");
    // Hang guard only, well under the 30 s invite timeout the old behaviour would take.
    let (payload, took, at_edge) = fail_over(dead, false, Duration::from_secs(10)).await;
    println!(
        "dead first trunk (ICMP): answered {took:?} after the command, {at_edge:?} after dialling"
    );
    assert_eq!(payload["provider_id"], "trunk-alive", "{payload}");
    let (trunk, outcome) = first_attempt(&payload);
    assert_eq!(trunk, "dead");
    assert_eq!(outcome, "transport_error");
}

/// What a dead trunk cost before ICMP errors were read, and still costs when no ICMP comes
/// back (a firewall drops it): a silent peer holds the call for the whole invite timeout.
/// 30 s long, so only run on purpose (`--run-ignored only`), for the benchmark figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes the 30 s invite timeout; run for loadtest/BENCHMARKS.md"]
async fn a_silent_trunk_costs_its_invite_timeout() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("a silent peer");
    let (payload, took, at_edge) = fail_over(silent, true, Duration::from_secs(45)).await;
    println!("silent first trunk (no ICMP): answered {took:?} after the command, {at_edge:?} after dialling");
    let (trunk, outcome) = first_attempt(&payload);
    assert_eq!((trunk, outcome), ("dead", "timeout"));
    assert!(at_edge >= Duration::from_millis(u64::from(INVITE_TIMEOUT_MS)));
}

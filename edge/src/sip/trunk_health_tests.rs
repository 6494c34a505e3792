use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

const TRUNK: &str = "127.0.0.9:5060";

fn pinger() -> TrunkPinger {
    TrunkPinger::new(
        "127.0.0.1:40000".parse().unwrap(),
        Duration::from_secs(30),
        Duration::from_secs(2),
        "t0k".into(),
    )
}

fn udp(id: &str) -> TrunkTarget {
    TrunkTarget {
        provider_id: id.into(),
        target: ProbeTarget::Udp {
            addr: TRUNK.parse().unwrap(),
            host: "trunk.example".into(),
        },
    }
}

fn call_id_of(bytes: &[u8]) -> String {
    let text = std::str::from_utf8(bytes).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap()
        .to_owned()
}

fn answer(status: &str, call_id: &str) -> Vec<u8> {
    format!("SIP/2.0 {status}\r\nVia: SIP/2.0/UDP x\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        .into_bytes()
}

#[test]
fn a_new_trunk_is_pinged_at_once_and_a_200_makes_it_up_with_its_round_trip() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(start, vec![udp("prv_1")]);
    let sent = p.poll_transmit().expect("an OPTIONS");
    assert_eq!(sent.to, TRUNK.parse::<SocketAddr>().unwrap());
    let text = String::from_utf8(sent.bytes.clone()).unwrap();
    assert!(
        text.starts_with("OPTIONS sip:trunk.example:5060 SIP/2.0\r\n"),
        "{text}"
    );
    assert!(p.poll_transmit().is_none());
    assert_eq!(p.statuses()[0].state, TrunkState::Unknown);

    let at = start + Duration::from_millis(42);
    p.handle_datagram(at, sent.to, &answer("200 OK", &call_id_of(&sent.bytes)));
    let s = &p.statuses()[0];
    assert_eq!(s.state, TrunkState::Up);
    assert_eq!(s.rtt, Some(Duration::from_millis(42)));
    assert_eq!(s.checked_at, Some(at));
    assert_eq!(s.last_status, Some(200));
    assert!(p.take_changed());
    assert_eq!(p.poll_timeout(), Some(start + Duration::from_secs(30)));
}

#[test]
fn any_final_answer_but_503_is_up_and_a_503_is_down() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(start, vec![udp("prv_1")]);
    let sent = p.poll_transmit().unwrap();
    p.handle_datagram(
        start,
        sent.to,
        &answer("404 Not Found", &call_id_of(&sent.bytes)),
    );
    assert_eq!(p.statuses()[0].state, TrunkState::Up);

    p.handle_timeout(start + Duration::from_secs(30));
    let sent = p.poll_transmit().unwrap();
    p.handle_datagram(
        start + Duration::from_secs(30),
        sent.to,
        &answer("503 Service Unavailable", &call_id_of(&sent.bytes)),
    );
    let s = &p.statuses()[0];
    assert_eq!(s.state, TrunkState::Down);
    assert_eq!(
        s.last_error.as_deref(),
        Some("OPTIONS answered 503 Service Unavailable")
    );
}

#[test]
fn a_silent_trunk_is_down_after_the_timeout_and_pinged_again_after_the_interval() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(start, vec![udp("prv_1")]);
    p.poll_transmit().unwrap();
    assert_eq!(p.poll_timeout(), Some(start + Duration::from_secs(2)));
    p.handle_timeout(start + Duration::from_millis(1999));
    assert_eq!(p.statuses()[0].state, TrunkState::Unknown);
    p.handle_timeout(start + Duration::from_secs(2));
    let s = &p.statuses()[0];
    assert_eq!(s.state, TrunkState::Down);
    assert_eq!(
        s.last_error.as_deref(),
        Some("no answer to OPTIONS within 2000 ms")
    );
    assert!(p.poll_transmit().is_none());
    p.handle_timeout(start + Duration::from_secs(30));
    assert!(p.poll_transmit().is_some());
}

#[test]
fn a_trunk_answering_junk_is_down_at_the_timeout_with_what_it_sent() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(start, vec![udp("prv_1")]);
    let sent = p.poll_transmit().unwrap();
    p.handle_datagram(start, sent.to, b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff");
    p.handle_datagram(
        start,
        sent.to,
        b"SIP/2.0 200 OK\r\nCall-ID: not-ours\r\n\r\n",
    );
    assert_eq!(p.statuses()[0].state, TrunkState::Unknown);
    assert_eq!(p.dropped(), 2);
    p.handle_timeout(start + Duration::from_secs(2));
    let s = &p.statuses()[0];
    assert_eq!(s.state, TrunkState::Down);
    let error = s.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("no valid answer to OPTIONS within 2000 ms"),
        "{error}"
    );
    assert!(error.contains("HTTP/1.1 400"), "{error}");
}

#[test]
fn an_answer_from_another_address_is_ignored() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(start, vec![udp("prv_1")]);
    let sent = p.poll_transmit().unwrap();
    let spoofer: SocketAddr = "127.0.0.66:5060".parse().unwrap();
    p.handle_datagram(start, spoofer, &answer("200 OK", &call_id_of(&sent.bytes)));
    assert_eq!(p.statuses()[0].state, TrunkState::Unknown);
}

#[test]
fn an_unpingable_trunk_keeps_its_reason_and_sends_nothing() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(
        start,
        vec![TrunkTarget {
            provider_id: "prv_tcp".into(),
            target: ProbeTarget::Unpingable {
                state: TrunkState::Unknown,
                reason: "not pinged over tcp".into(),
            },
        }],
    );
    assert!(p.poll_transmit().is_none());
    let s = &p.statuses()[0];
    assert_eq!(s.state, TrunkState::Unknown);
    assert_eq!(s.last_error.as_deref(), Some("not pinged over tcp"));
}

#[test]
fn a_removed_trunk_is_forgotten_and_a_kept_one_is_not_pinged_again_early() {
    let start = Instant::now();
    let mut p = pinger();
    p.set_trunks(start, vec![udp("prv_1")]);
    p.poll_transmit().unwrap();
    p.take_changed();
    p.set_trunks(start + Duration::from_millis(10), vec![udp("prv_1")]);
    assert!(p.poll_transmit().is_none());
    assert!(!p.take_changed());
    p.set_trunks(start + Duration::from_millis(20), vec![]);
    assert!(p.statuses().is_empty());
    assert!(p.take_changed());
    assert_eq!(p.poll_timeout(), None);
}

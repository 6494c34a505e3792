//! ICMP errors as transport errors: [`SipEndpoint::handle_unreachable`] fails the client
//! transactions towards that one address, an outbound call moves on to its next trunk in the
//! same instant, and an error about any other address changes nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::Method;

use super::*;
use crate::breaker::BreakerState;
use crate::outbound::OutboundFailure;
use crate::uac::tests::{call_request, reply, request_of, trunk, two_trunks};

fn sent(ep: &mut SipEndpoint) -> Vec<(SocketAddr, Method)> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|o| (o.dest, request_of(&o).method))
        .collect()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn placed(t0: Instant) -> SipEndpoint {
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.place_call(t0, call_request(), two_trunks());
    assert_eq!(sent(&mut ep), [(addr(5081), Method::Invite)]);
    ep
}

#[test]
fn an_unreachable_trunk_fails_its_attempt_and_the_next_trunk_is_called_at_once() {
    let t0 = Instant::now();
    let mut ep = placed(t0);
    let t1 = t0 + Duration::from_millis(3);
    ep.handle_unreachable(t1, addr(5081));
    assert_eq!(sent(&mut ep), [(addr(5082), Method::Invite)]);
    assert_eq!(ep.poll_event(), None, "the call goes on through trunk b");
    assert_eq!(ep.breakers.state("a"), BreakerState::Closed { failures: 1 });
    assert_eq!(ep.breakers.state("b"), BreakerState::Closed { failures: 0 });
    // The dead trunk's INVITE is not retransmitted any more: only trunk b's is.
    ep.handle_timeout(t1 + Duration::from_millis(600));
    assert_eq!(sent(&mut ep), [(addr(5082), Method::Invite)]);
}

#[test]
fn an_error_about_another_address_changes_nothing() {
    let t0 = Instant::now();
    let mut ep = placed(t0);
    ep.handle_unreachable(t0, addr(5099));
    ep.handle_unreachable(t0, SocketAddr::from(([127, 0, 0, 2], 5081)));
    assert!(sent(&mut ep).is_empty());
    assert_eq!(ep.poll_event(), None);
    assert_eq!(ep.breakers.state("a"), BreakerState::Closed { failures: 0 });
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(
        sent(&mut ep),
        [(addr(5081), Method::Invite)],
        "trunk a is still retransmitted to"
    );
}

#[test]
fn a_late_error_after_the_trunk_answered_provisionally_is_ignored() {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.place_call(t0, call_request(), two_trunks());
    let invite = request_of(&ep.poll_transmit().expect("INVITE"));
    let ringing = crate::response::to_bytes(reply(&invite, 180, None));
    ep.handle_datagram(t0, addr(5081), &ringing);
    assert!(matches!(
        ep.poll_event(),
        Some(EndpointEvent::OutboundRinging { .. })
    ));
    ep.handle_unreachable(t0, addr(5081));
    assert!(sent(&mut ep).is_empty(), "no failover: the trunk is alive");
    assert_eq!(ep.poll_event(), None);
}

#[test]
fn every_trunk_unreachable_fails_the_call_with_transport_errors() {
    let t0 = Instant::now();
    let mut ep = placed(t0);
    ep.handle_unreachable(t0, addr(5081));
    assert_eq!(sent(&mut ep), [(addr(5082), Method::Invite)]);
    ep.handle_unreachable(t0, addr(5082));
    match ep.poll_event() {
        Some(EndpointEvent::OutboundFailed {
            failure: OutboundFailure::AllTrunksFailed { attempts },
            ..
        }) => {
            let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
            assert_eq!(outcomes, ["transport error (unreachable, as 503)"; 2]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ep.outbound_count(), 0, "nothing lingers");
}

#[test]
fn an_unreachable_peer_ends_our_bye_instead_of_retransmitting_it() {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.place_call(t0, call_request(), vec![trunk("a", 5081)]);
    let invite = request_of(&ep.poll_transmit().expect("INVITE"));
    let ok = crate::response::to_bytes(reply(&invite, 200, None));
    ep.handle_datagram(t0, addr(5081), &ok);
    sent(&mut ep);
    while ep.poll_event().is_some() {}
    ep.hangup(t0, "out-1");
    let bye = sent(&mut ep);
    let [(dest, Method::Bye)] = bye[..] else {
        panic!("{bye:?}");
    };
    ep.handle_unreachable(t0, addr(5999));
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(
        sent(&mut ep),
        [(dest, Method::Bye)],
        "other errors: still retried"
    );
    ep.handle_unreachable(t0 + Duration::from_millis(600), dest);
    ep.handle_timeout(t0 + Duration::from_secs(40));
    assert!(sent(&mut ep).is_empty(), "the BYE transaction ended");
    assert!(ep.poll_timeout().is_none(), "no transaction is left");
}

#[test]
fn a_tls_trunk_is_called_with_sips_uris_and_a_refused_connection_fails_over_at_once() {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.set_tls_address(addr(5061));
    let mut trunks = two_trunks();
    trunks[0].peer = Peer::tls(addr(5081));
    ep.place_call(t0, call_request(), trunks);
    let out = ep.poll_transmit().expect("the INVITE");
    assert_eq!((out.transport, out.dest), (Transport::Tls, addr(5081)));
    let invite = request_of(&out);
    assert!(
        invite.uri.to_string().starts_with("sips:"),
        "{}",
        invite.uri
    );
    let text = String::from_utf8_lossy(&out.bytes).into_owned();
    assert!(
        text.contains("Via: SIP/2.0/TLS 127.0.0.1:5061;") && text.contains(";alias"),
        "the Via names the TLS listener and offers the connection for reuse: {text}"
    );
    assert!(
        text.contains("Contact: <sips:+15550000@127.0.0.1:5061>"),
        "{text}"
    );
    // The same address over UDP (an ICMP error) is another peer: nothing happens.
    ep.handle_unreachable(t0, addr(5081));
    assert!(ep.poll_transmit().is_none());
    // The certificate did not verify: the shell reports the connection failed.
    ep.handle_connection_failed(t0, Peer::tls(addr(5081)));
    assert_eq!(sent(&mut ep), [(addr(5082), Method::Invite)]);
    assert_eq!(ep.breakers.state("a"), BreakerState::Closed { failures: 1 });
}

//! Failover across trunks and the circuit breaker, driven by hand with simulated time; and the
//! endpoint's side of an outbound call (dialog, BYE both ways).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Method, Request};

use super::*;
use crate::breaker::BreakerState;
use crate::endpoint::{EndpointEvent, SipEndpoint};
use crate::peer::Outgoing;
use crate::uac::tests::{call_request, one_strike_breakers, reply, request_of, trunk, two_trunks};

fn sent(call: &mut OutboundCall) -> Vec<(SocketAddr, Request)> {
    std::iter::from_fn(|| call.poll_transmit())
        .map(|o| (o.dest, request_of(&o)))
        .collect()
}

fn events(call: &mut OutboundCall) -> Vec<OutboundEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

fn port(dest: SocketAddr) -> u16 {
    dest.port()
}

/// A call whose first trunk answered its INVITE with `code`, at the instant it started.
fn first_answered(code: u16) -> (Instant, TrunkBreakers, OutboundCall) {
    let t0 = Instant::now();
    let mut breakers = TrunkBreakers::default();
    let (mut call, invite) = start(&mut breakers, t0);
    call.handle_response(t0, reply(&invite, code, None), &mut breakers);
    (t0, breakers, call)
}

/// Where each of `out` went, and what it was.
fn port_methods(out: &[(SocketAddr, Request)]) -> Vec<(u16, Method)> {
    out.iter().map(|(d, r)| (port(*d), r.method)).collect()
}

/// The ports of the trunks `call` sent its requests to, in order.
fn sent_ports(call: &mut OutboundCall) -> Vec<u16> {
    sent(call).iter().map(|(d, _)| port(*d)).collect()
}

fn start(breakers: &mut TrunkBreakers, t0: Instant) -> (OutboundCall, Request) {
    let trunks = two_trunks();
    let mut call = OutboundCall::start(t0, call_request(), trunks, Timers::default(), breakers);
    let (dest, invite) = sent(&mut call).remove(0);
    assert_eq!(port(dest), 5081, "the first trunk by priority first");
    (call, invite)
}

#[test]
fn a_503_fails_over_to_the_next_trunk_which_answers() {
    let (t0, mut breakers, mut call) = first_answered(503);
    let out = sent(&mut call);
    assert_eq!(
        port_methods(&out),
        [(5081, Method::Ack), (5082, Method::Invite)]
    );
    assert!(events(&mut call).is_empty());
    call.handle_response(t0, reply(&out[1].1, 200, None), &mut breakers);
    match &events(&mut call)[..] {
        [OutboundEvent::Answered { trunk_id, .. }] => assert_eq!(trunk_id, "b"),
        other => panic!("{other:?}"),
    }
    assert_eq!(breakers.state("a"), BreakerState::Closed { failures: 1 });
}

#[test]
fn busy_is_final_and_no_other_trunk_is_tried() {
    let (_, _, mut call) = first_answered(486);
    let out = sent(&mut call);
    assert_eq!(
        out.iter().map(|(_, r)| r.method).collect::<Vec<_>>(),
        [Method::Ack]
    );
    assert!(matches!(
        events(&mut call)[..],
        [OutboundEvent::Failed(OutboundFailure::Busy { code: 486 })]
    ));
}

#[test]
fn a_404_is_final_too() {
    let (_, _, mut call) = first_answered(404);
    assert!(matches!(
        events(&mut call)[..],
        [OutboundEvent::Failed(OutboundFailure::Rejected {
            code: 404,
            ..
        })]
    ));
}

#[test]
fn no_answer_in_time_cancels_and_fails_over_then_reports_no_answer() {
    let (t0, mut breakers, mut call) = first_answered(180);
    assert!(matches!(events(&mut call)[..], [OutboundEvent::Ringing]));
    let t1 = t0 + Duration::from_secs(10);
    call.handle_timeout(t1, &mut breakers);
    let out = sent(&mut call);
    assert_eq!(
        port_methods(&out),
        [(5081, Method::Cancel), (5082, Method::Invite)]
    );
    call.handle_response(t1, reply(&out[1].1, 180, None), &mut breakers);
    call.handle_timeout(t1 + Duration::from_secs(10), &mut breakers);
    assert!(matches!(
        events(&mut call)[..],
        [OutboundEvent::Failed(OutboundFailure::NoAnswer)]
    ));
    assert_eq!(
        breakers.state("a"),
        BreakerState::Closed { failures: 0 },
        "ringing unanswered is not the trunk's fault"
    );
    assert!(
        !call.is_finished(),
        "the cancelled INVITEs still wait for their 487"
    );
}

#[test]
fn when_every_trunk_fails_each_attempt_is_listed() {
    let (t0, mut breakers, mut call) = first_answered(503);
    let second = sent(&mut call).remove(1).1;
    call.handle_response(t0, reply(&second, 408, None), &mut breakers);
    match &events(&mut call)[..] {
        [OutboundEvent::Failed(OutboundFailure::AllTrunksFailed { attempts })] => {
            assert_eq!(attempts.len(), 2);
            assert!(
                attempts[0].to_string().starts_with("trunk-a: 503"),
                "{attempts:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_open_breaker_skips_its_trunk_until_the_cool_down_passes() {
    let t0 = Instant::now();
    let mut breakers = one_strike_breakers();
    let (mut call, invite) = start(&mut breakers, t0);
    call.handle_response(t0, reply(&invite, 500, None), &mut breakers);
    assert!(matches!(breakers.state("a"), BreakerState::Open { .. }));
    // The next call goes straight to b.
    let trunks = two_trunks();
    let mut next = OutboundCall::start(
        t0 + Duration::from_secs(1),
        call_request(),
        trunks.clone(),
        Timers::default(),
        &mut breakers,
    );
    assert_eq!(sent_ports(&mut next), [5082]);
    // After the cool-down a is tried again.
    let mut later = OutboundCall::start(
        t0 + Duration::from_secs(31),
        call_request(),
        trunks,
        Timers::default(),
        &mut breakers,
    );
    assert_eq!(sent_ports(&mut later), [5081]);
}

#[test]
fn with_every_breaker_open_the_call_fails_at_once() {
    let t0 = Instant::now();
    let mut breakers = one_strike_breakers();
    breakers.record_failure(t0, "a");
    breakers.record_failure(t0, "b");
    let trunks = two_trunks();
    let mut call =
        OutboundCall::start(t0, call_request(), trunks, Timers::default(), &mut breakers);
    assert!(sent(&mut call).is_empty());
    assert!(matches!(
        events(&mut call)[..],
        [OutboundEvent::Failed(OutboundFailure::TrunksUnavailable)]
    ));
}

#[test]
fn giving_up_cancels_the_trunk_that_rings() {
    let (t0, _, mut call) = first_answered(183);
    events(&mut call);
    call.abandon(t0 + Duration::from_millis(500));
    assert_eq!(
        sent(&mut call)
            .iter()
            .map(|(_, r)| r.method)
            .collect::<Vec<_>>(),
        [Method::Cancel]
    );
    assert!(matches!(
        events(&mut call)[..],
        [OutboundEvent::Failed(OutboundFailure::Cancelled)]
    ));
}

fn endpoint_sent(ep: &mut SipEndpoint) -> Vec<Outgoing> {
    std::iter::from_fn(|| ep.poll_transmit()).collect()
}

#[test]
fn an_answered_outbound_call_hangs_up_by_bye_either_way() {
    let t0 = Instant::now();
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut ep = SipEndpoint::new(local, Timers::default());
    ep.place_call(t0, call_request(), vec![trunk("a", 5081)]);
    let invite = request_of(&endpoint_sent(&mut ep)[0]);
    let ok = crate::response::to_bytes(reply(&invite, 200, None));
    ep.handle_datagram(t0, "127.0.0.1:5081".parse().unwrap(), &ok);
    assert_eq!(request_of(&endpoint_sent(&mut ep)[0]).method, Method::Ack);
    assert!(
        matches!(ep.poll_event(), Some(EndpointEvent::OutboundAnswered { ref call_id, .. }) if call_id == "out-1")
    );
    assert_eq!(ep.dialog_count(), 1);

    // The trunk hangs up: its BYE (From the callee's tag, To ours) is answered and reported;
    // one that names the call with another To tag is not the trunk's.
    let our_tag = invite
        .headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::From(from) => {
                crate::message::header_param(rsip::headers::UntypedHeader::value(from), "tag")
                    .map(str::to_owned)
            }
            _ => None,
        })
        .expect("our From tag");
    let bye = |branch: &str, to_tag: &str| {
        format!(
            "BYE sip:+15550000@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5081;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+15557777@127.0.0.1:5081>;tag=callee\r\n\
             To: <sip:+15550000@127.0.0.1>;tag={to_tag}\r\n\
             Call-ID: out-1\r\n\
             CSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let forged = bye("z9hG4bKforged", "x");
    ep.handle_datagram(t0, "127.0.0.1:5081".parse().unwrap(), forged.as_bytes());
    assert!(String::from_utf8_lossy(&endpoint_sent(&mut ep)[0].bytes).starts_with("SIP/2.0 481"));
    assert_eq!(ep.poll_event(), None);
    assert_eq!(ep.dialog_count(), 1, "the call goes on");
    let bye = bye("z9hG4bKtrunkbye", &our_tag);
    ep.handle_datagram(t0, "127.0.0.1:5081".parse().unwrap(), bye.as_bytes());
    assert!(String::from_utf8_lossy(&endpoint_sent(&mut ep)[0].bytes).starts_with("SIP/2.0 200"));
    assert!(matches!(
        ep.poll_event(),
        Some(EndpointEvent::RemoteHangup {
            cancelled: false,
            ..
        })
    ));

    // Another call, which we hang up.
    let mut second = call_request();
    second.call_id = "out-2".into();
    ep.place_call(t0, second, vec![trunk("a", 5081)]);
    let invite = request_of(&endpoint_sent(&mut ep)[0]);
    ep.handle_datagram(
        t0,
        "127.0.0.1:5081".parse().unwrap(),
        &crate::response::to_bytes(reply(&invite, 200, None)),
    );
    endpoint_sent(&mut ep);
    ep.hangup(t0, "out-2");
    let bye = request_of(&endpoint_sent(&mut ep)[0]);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:callee@127.0.0.1:7000");
    assert_eq!(
        crate::message::cseq(&bye.headers).unwrap(),
        (2, Method::Bye)
    );
}

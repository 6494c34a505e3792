//! Route sets driven by hand (RFC 3261 sections 12.1.1, 12.2.1.1): a caller behind
//! record-routing proxies gets the Record-Route back on our 180 and 200, and every request we
//! send in its dialog carries the route set and goes to the first proxy — with the strict
//! routing rewrite when that proxy is no loose router, and a target refresh moving only the
//! Request-URI. Our BYE's outcome is reported whatever it is.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::in_dialog_tests::{answered, reply};
use super::tests::{addr, caller_request, events, invite, CALLER};
use super::*;

const S: Duration = Duration::from_secs(1);
/// Two Record-Route headers, three proxies: the first header carries two values.
const LOOSE: &str = "Record-Route: <sip:127.0.0.3:5070;lr;ftag=caller1>, <sip:127.0.0.4;lr>\r\n\
                     Record-Route: <sip:127.0.0.5:5090;lr>\r\n";
const ROUTES: [&str; 3] = [
    "<sip:127.0.0.3:5070;lr;ftag=caller1>",
    "<sip:127.0.0.4;lr>",
    "<sip:127.0.0.5:5090;lr>",
];

/// Every transmit as (destination, text).
fn sent_to(ep: &mut SipEndpoint) -> Vec<(SocketAddr, String)> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| (t.dest, String::from_utf8_lossy(&t.bytes).into_owned()))
        .collect()
}

/// The values of every header called `name`, in order, one per value.
fn values(message: &str, name: &str) -> Vec<String> {
    message
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(", ").map(|v| v.trim().to_owned()))
        .collect()
}

fn with_headers(bytes: Vec<u8>, extra: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes).expect("utf-8");
    text.replacen(
        "CSeq: 1 INVITE\r\n",
        &format!("CSeq: 1 INVITE\r\n{extra}"),
        1,
    )
    .into_bytes()
}

#[test]
fn ringing_and_the_answer_carry_every_record_route_in_order() {
    let t0 = Instant::now();
    let mut ep = super::tests::endpoint();
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &with_headers(invite("z9hG4bKa1", "call-1"), LOOSE),
    );
    events(&mut ep);
    ep.ring(t0, "call-1");
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let out = sent_to(&mut ep);
    let [(to_180, ringing), (to_200, ok)] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(ringing.starts_with("SIP/2.0 180") && ok.starts_with("SIP/2.0 200"));
    assert_eq!(values(ringing, "Record-Route"), ROUTES, "{ringing}");
    assert_eq!(values(ok, "Record-Route"), ROUTES, "{ok}");
    // Responses follow the Via (the source), never the route set.
    assert_eq!((*to_180, *to_200), (addr(CALLER), addr(CALLER)));
}

#[test]
fn our_bye_carries_the_route_set_goes_to_the_first_proxy_and_its_481_is_reported() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, LOOSE);
    ep.hangup(t0 + S, "call-1");
    let out = sent_to(&mut ep);
    let [(dest, bye)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        *dest,
        addr("127.0.0.3:5070"),
        "the first route, not the source"
    );
    assert!(
        bye.starts_with("BYE sip:caller@127.0.0.1:40000 SIP/2.0"),
        "{bye}"
    );
    assert_eq!(values(bye, "Route"), ROUTES, "{bye}");
    assert!(bye.contains(&format!(";tag={tag}")));
    ep.handle_datagram(t0 + S, addr("127.0.0.3:5070"), &reply(bye, "481 Gone"));
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::ByeOutcome {
            call_id: "call-1".into(),
            outcome: ByeOutcome::Answered { code: 481 },
        }]
    );
}

#[test]
fn a_bye_never_answered_is_reported_as_a_timeout() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(t0, LOOSE);
    ep.hangup(t0 + S, "call-1");
    sent_to(&mut ep);
    assert!(ep.bye_pending("call-1"));
    ep.handle_timeout(t0 + 40 * S);
    let outcome = events(&mut ep).into_iter().find_map(|e| match e {
        EndpointEvent::ByeOutcome { outcome, .. } => Some(outcome),
        _ => None,
    });
    assert_eq!(outcome, Some(ByeOutcome::Timeout));
    assert!(!ep.bye_pending("call-1"));
}

#[test]
fn a_strict_first_route_becomes_the_request_uri_and_the_target_the_last_route() {
    let t0 = Instant::now();
    let strict = "Record-Route: <sip:127.0.0.3:5070;ftag=caller1>\r\n\
                  Record-Route: <sip:127.0.0.4;lr>\r\n";
    let (mut ep, _) = answered(t0, strict);
    ep.hangup(t0 + S, "call-1");
    let out = sent_to(&mut ep);
    let [(dest, bye)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(*dest, addr("127.0.0.3:5070"));
    assert!(
        bye.starts_with("BYE sip:127.0.0.3:5070;ftag=caller1 SIP/2.0"),
        "{bye}"
    );
    assert_eq!(
        values(bye, "Route"),
        ["<sip:127.0.0.4;lr>", "<sip:caller@127.0.0.1:40000>"],
        "{bye}"
    );
}

#[test]
fn info_refer_and_our_re_invite_follow_the_route_set_and_so_does_the_ack() {
    let t0 = Instant::now();
    let headers = format!("{LOOSE}Session-Expires: 120;refresher=uas\r\nSupported: timer\r\n");
    let (mut ep, _) = answered(t0, &headers);
    ep.send_dtmf_info(t0 + S, "call-1", "5");
    ep.transfer(t0 + S, "call-1", "+15550100");
    ep.handle_timeout(t0 + 60 * S); // our session refresh: a re-INVITE (no UPDATE allowed)
    let out = sent_to(&mut ep);
    let methods: Vec<&str> = out
        .iter()
        .map(|(_, m)| &m[..m.find(' ').unwrap_or(0)])
        .collect();
    assert!(methods.contains(&"INFO") && methods.contains(&"REFER") && methods.contains(&"INVITE"));
    for (dest, request) in &out {
        if request.starts_with("SIP/2.0") {
            continue;
        }
        assert_eq!(*dest, addr("127.0.0.3:5070"), "{request}");
        assert!(
            request.contains(" sip:caller@127.0.0.1:40000 SIP/2.0"),
            "{request}"
        );
        assert_eq!(values(request, "Route"), ROUTES, "{request}");
    }
    let reinvite = &out
        .iter()
        .find(|(_, m)| m.starts_with("INVITE"))
        .expect("re-INVITE")
        .1;
    // The 2xx echoes the Record-Route (harmless) and refreshes the target; the ACK keeps the
    // dialog's route set and goes to the new target through it.
    let mut ok = String::from_utf8(reply(reinvite, "200 OK")).expect("utf-8");
    ok = ok.replacen(
        "Content-Length",
        "Record-Route: <sip:127.0.0.66;lr>\r\nContact: <sip:caller@127.0.0.1:40001>\r\nContent-Length",
        1,
    );
    ep.handle_datagram(t0 + 61 * S, addr("127.0.0.3:5070"), ok.as_bytes());
    let acks: Vec<_> = sent_to(&mut ep)
        .into_iter()
        .filter(|(_, m)| m.starts_with("ACK"))
        .collect();
    let [(dest, ack)] = &acks[..] else {
        panic!("{acks:?}")
    };
    assert_eq!(*dest, addr("127.0.0.3:5070"));
    assert!(
        ack.starts_with("ACK sip:caller@127.0.0.1:40001 SIP/2.0"),
        "{ack}"
    );
    assert_eq!(values(ack, "Route"), ROUTES, "{ack}");
}

#[test]
fn a_target_refresh_moves_the_request_uri_but_never_the_route_set() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, LOOSE);
    // The caller moves (a re-INVITE with a new Contact); a Record-Route on it changes nothing.
    let extra = "Contact: <sip:caller@127.0.0.2:40002>\r\nRecord-Route: <sip:127.0.0.66;lr>\r\n";
    let reinvite = caller_request("INVITE", "z9hG4bKre1", &tag, 2, extra);
    ep.handle_datagram(t0 + S, addr("127.0.0.3:5070"), &reinvite);
    let ok = sent_to(&mut ep).remove(0).1;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        values(&ok, "Record-Route"),
        ["<sip:127.0.0.66;lr>"],
        "echoed, not adopted"
    );
    ep.hangup(t0 + 2 * S, "call-1");
    let out = sent_to(&mut ep);
    let (dest, bye) = out.iter().find(|(_, m)| m.starts_with("BYE")).expect("BYE");
    assert_eq!(*dest, addr("127.0.0.3:5070"));
    assert!(
        bye.starts_with("BYE sip:caller@127.0.0.2:40002 SIP/2.0"),
        "{bye}"
    );
    assert_eq!(values(bye, "Route"), ROUTES, "{bye}");
}

#[test]
fn without_a_route_set_requests_go_back_to_the_source_without_route() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(t0, "");
    ep.hangup(t0 + S, "call-1");
    let out = sent_to(&mut ep);
    let [(dest, bye)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(*dest, addr(CALLER));
    assert!(values(bye, "Route").is_empty(), "{bye}");
}

#[test]
fn a_record_route_to_a_broadcast_address_does_not_take_our_bye_there() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(t0, "Record-Route: <sip:255.255.255.255:5060;lr>\r\n");
    ep.hangup(t0 + S, "call-1");
    let out = sent_to(&mut ep);
    let [(dest, bye)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(*dest, addr(CALLER), "back to the INVITE's source");
    assert!(
        bye.starts_with("BYE sip:caller@127.0.0.1:40000 SIP/2.0"),
        "{bye}"
    );
}

#[test]
fn an_update_with_a_contact_is_a_target_refresh_too() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, LOOSE);
    let extra = "Contact: <sip:caller@127.0.0.2:40003>\r\n";
    let update = caller_request("UPDATE", "z9hG4bKup1", &tag, 2, extra);
    ep.handle_datagram(t0 + S, addr("127.0.0.3:5070"), &update);
    assert!(sent_to(&mut ep)[0].1.starts_with("SIP/2.0 200"));
    ep.hangup(t0 + 2 * S, "call-1");
    let out = sent_to(&mut ep);
    let (dest, bye) = out.iter().find(|(_, m)| m.starts_with("BYE")).expect("BYE");
    assert_eq!(*dest, addr("127.0.0.3:5070"));
    assert!(
        bye.starts_with("BYE sip:caller@127.0.0.2:40003 SIP/2.0"),
        "{bye}"
    );
    assert_eq!(values(bye, "Route"), ROUTES, "{bye}");
}

//! The UAS endpoint driven by hand: datagrams in, simulated time, transmits and events out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

pub(super) const CALLER: &str = "127.0.0.1:40000";
const LOCAL: &str = "127.0.0.1:5060";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

pub(super) fn endpoint() -> SipEndpoint {
    SipEndpoint::new(addr(LOCAL), Timers::default())
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

pub(super) fn invite(branch: &str, call_id: &str) -> Vec<u8> {
    format!(
        "INVITE sip:demo@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:40000;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550001@127.0.0.1>;tag=caller1\r\n\
         To: <sip:demo@127.0.0.1:5060>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:40000>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

pub(super) fn in_dialog(
    method: &str,
    branch: &str,
    call_id: &str,
    to_tag: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "{method} sip:demo@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:40000;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550001@127.0.0.1>;tag=caller1\r\n\
         To: <sip:demo@127.0.0.1:5060>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A request of the caller's in `call-1`, with no body: `tag` is our To tag, `extra` any
/// further header lines.
pub(super) fn caller_request(
    method: &str,
    branch: &str,
    tag: &str,
    cseq: u32,
    extra: &str,
) -> Vec<u8> {
    in_dialog(method, branch, "call-1", tag, cseq, extra, "")
}

pub(super) fn sent(ep: &mut SipEndpoint) -> Vec<String> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
        .collect()
}

pub(super) fn events(ep: &mut SipEndpoint) -> Vec<EndpointEvent> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// The message of `out` that starts with `start`; the test fails when there is none.
pub(super) fn starting<'a>(out: &'a [String], start: &str) -> &'a str {
    out.iter()
        .find(|m| m.starts_with(start))
        .unwrap_or_else(|| panic!("no {start:?} in {out:?}"))
}

/// The request just handled was answered 200 OK and reported as `event` alone.
pub(super) fn assert_ok_reported(ep: &mut SipEndpoint, event: EndpointEvent) {
    assert!(sent(ep)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(events(ep), [event]);
}

/// The request just handled was a digit for `call-1` that the call took: answered 200 OK and
/// reported once as `digit`.
pub(super) fn assert_digit_taken(ep: &mut SipEndpoint, digit: char) {
    let call_id = "call-1".into();
    assert_ok_reported(ep, EndpointEvent::Dtmf { call_id, digit });
}

/// The request just handled was the caller's BYE for `call-1`: answered 200 OK, and the call
/// reported hung up by its far end.
pub(super) fn assert_caller_hung_up(ep: &mut SipEndpoint) {
    let call_id = "call-1".into();
    let cancelled = false;
    assert_ok_reported(ep, EndpointEvent::RemoteHangup { call_id, cancelled });
}

/// An endpoint that received the INVITE of `call-1` at `t0` and reported it; not yet answered.
pub(super) fn offered(t0: Instant) -> SipEndpoint {
    let mut ep = endpoint();
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa1", "call-1"));
    events(&mut ep);
    ep
}

/// As [`offered`], answered with 200 OK at `t0` but not acknowledged: the endpoint and our
/// To tag.
pub(super) fn answered_call(t0: Instant) -> (SipEndpoint, String) {
    let mut ep = offered(t0);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let tag = to_tag(&sent(&mut ep)[0]);
    (ep, tag)
}

pub(super) fn to_tag(response: &str) -> String {
    response
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .map(|t| t.trim().to_owned())
        .expect("a To tag")
}

#[test]
fn an_invite_is_reported_once_and_answered_with_sdp() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa1", "call-1"));
    let evs = events(&mut ep);
    let [EndpointEvent::IncomingCall(call)] = evs.as_slice() else {
        panic!("expected one incoming call, got {evs:?}");
    };
    assert_eq!(call.dialled, "demo");
    assert_eq!(call.caller, "+15550001");
    assert!(call.offer.starts_with(b"v=0"));
    // No decision within 200 ms: the transaction sends 100 Trying itself.
    ep.handle_timeout(t0 + Duration::from_millis(200));
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 100 Trying"));
    ep.answer(t0 + Duration::from_millis(250), "call-1", "v=0\r\n".into());
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 200 OK"), "{out:?}");
    assert!(out[0].contains("Content-Type: application/sdp") && out[0].ends_with("v=0\r\n"));
    assert!(out[0].contains("Contact: <sip:127.0.0.1:5060>"));
}

#[test]
fn retransmitted_invite_does_not_start_a_second_call() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa1", "call-1"));
    assert_eq!(events(&mut ep).len(), 1);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let first = sent(&mut ep);
    ep.handle_datagram(
        t0 + Duration::from_millis(500),
        addr(CALLER),
        &invite("z9hG4bKa1", "call-1"),
    );
    assert!(events(&mut ep).is_empty(), "no second call");
    assert_eq!(ep.dialog_count(), 1);
    let again = sent(&mut ep);
    assert!(again.iter().any(|m| m == &first[0]), "the 200 is repeated");
}

#[test]
fn the_2xx_is_retransmitted_until_the_ack_then_the_call_is_confirmed() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let ok = sent(&mut ep).remove(0);
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(
        sent(&mut ep),
        std::slice::from_ref(&ok),
        "retransmitted after T1"
    );
    ep.handle_timeout(t0 + Duration::from_millis(1500));
    assert_eq!(sent(&mut ep), std::slice::from_ref(&ok), "then after 2*T1");
    let tag = to_tag(&ok);
    ep.handle_datagram(
        t0 + Duration::from_millis(1600),
        addr(CALLER),
        &caller_request("ACK", "z9hG4bKack", &tag, 1, ""),
    );
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::Confirmed {
            call_id: "call-1".into()
        }]
    );
    ep.handle_timeout(t0 + Duration::from_secs(4));
    assert!(sent(&mut ep).is_empty(), "no retransmission after the ACK");
}

#[test]
fn a_lost_ack_fails_the_call_after_64_t1() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let mut now = t0;
    while now < t0 + Duration::from_secs(33) {
        now += Duration::from_millis(250);
        ep.handle_timeout(now);
    }
    let evs = events(&mut ep);
    assert!(
        matches!(evs.as_slice(), [EndpointEvent::Failed { call_id, .. }] if call_id == "call-1"),
        "{evs:?}"
    );
    assert_eq!(ep.dialog_count(), 0);
}

#[test]
fn cancel_before_the_answer_gets_200_and_the_invite_487() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    let cancel = String::from_utf8(invite("z9hG4bKa1", "call-1"))
        .expect("utf8")
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = cancel.split("\r\n\r\n").next().expect("head").replace(
        &format!("Content-Length: {}", SDP.len()),
        "Content-Length: 0",
    ) + "\r\n\r\n";
    ep.handle_datagram(
        t0 + Duration::from_millis(50),
        addr(CALLER),
        cancel.as_bytes(),
    );
    let out = sent(&mut ep);
    assert!(
        out.iter()
            .any(|m| m.starts_with("SIP/2.0 200 OK") && m.contains("CANCEL")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|m| m.starts_with("SIP/2.0 487") && m.contains("1 INVITE")),
        "{out:?}"
    );
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::RemoteHangup {
            call_id: "call-1".into(),
            cancelled: true
        }]
    );
}

#[test]
fn ringing_keeps_the_invite_cancellable_then_the_answer_completes_it() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.ring(t0, "call-1");
    let ringing = sent(&mut ep).remove(0);
    assert!(ringing.starts_with("SIP/2.0 180 Ringing"), "{ringing}");
    ep.answer(t0 + Duration::from_millis(300), "call-1", "v=0\r\n".into());
    let ok = sent(&mut ep).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK"));
    assert_eq!(to_tag(&ringing), to_tag(&ok), "one dialog, one tag");
}

#[test]
fn bye_ends_the_call_and_an_unknown_bye_gets_481() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered_call(t0);
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &caller_request("BYE", "z9hG4bKbye", &tag, 2, ""),
    );
    assert_caller_hung_up(&mut ep);
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &in_dialog("BYE", "z9hG4bKbye2", "call-9", "x", 2, "", ""),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 481"));
}

#[test]
fn rejecting_sends_the_code_with_retry_after() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.reject(t0, "call-1", 503, "Service Unavailable", Some(5));
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 503 Service Unavailable"));
    assert!(out[0].contains("Retry-After: 5"));
    assert_eq!(ep.dialog_count(), 0);
}

#[test]
fn redirecting_sends_302_with_the_contact_and_keeps_no_dialog() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.redirect(t0, "call-1", "sip:demo@127.0.0.2:5060;freya-redirected");
    let out = sent(&mut ep);
    assert!(
        out[0].starts_with("SIP/2.0 302 Moved Temporarily"),
        "{out:?}"
    );
    assert!(out[0].contains("Contact: <sip:demo@127.0.0.2:5060;freya-redirected>"));
    assert_eq!(ep.dialog_count(), 0);
}

#[test]
fn an_invite_marked_redirected_is_reported_as_such() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa1", "call-1"));
    let marked = String::from_utf8(invite("z9hG4bKa2", "call-2"))
        .expect("utf-8")
        .replacen(
            "sip:demo@127.0.0.1:5060 ",
            "sip:demo@127.0.0.1:5060;Freya-Redirected ",
            1,
        );
    ep.handle_datagram(t0, addr(CALLER), marked.as_bytes());
    let flags: Vec<bool> = events(&mut ep)
        .iter()
        .filter_map(|e| match e {
            EndpointEvent::IncomingCall(call) => Some(call.redirected),
            _ => None,
        })
        .collect();
    assert_eq!(flags, [false, true]);
    assert!(!inbound::was_redirected(
        "sip:demo@h;user=phone?freya-redirected=1"
    ));
    assert!(inbound::was_redirected(
        "sip:demo@h;user=phone;freya-redirected"
    ));
}

#[test]
fn options_info_and_unknown_methods_are_answered() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    // Outside any dialog (no To tag): a keep-alive, answered with what we do.
    let ping = String::from_utf8(in_dialog("OPTIONS", "z9hG4bKo", "opt-1", "x", 1, "", ""))
        .expect("utf-8")
        .replacen(";tag=x", "", 1);
    ep.handle_datagram(t0, addr(CALLER), ping.as_bytes());
    let out = sent(&mut ep);
    assert!(
        out[0].starts_with("SIP/2.0 200 OK") && out[0].contains("Allow: INVITE"),
        "{out:?}"
    );
    // Inside a dialog we do not have: 481 (RFC 3261 section 12.2.2).
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &in_dialog("OPTIONS", "z9hG4bKo2", "opt-1", "x", 2, "", ""),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 481"));

    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa1", "call-1"));
    events(&mut ep);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let tag = to_tag(&sent(&mut ep)[0]);
    let info = in_dialog(
        "INFO",
        "z9hG4bKi",
        "call-1",
        &tag,
        2,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    ep.handle_datagram(t0, addr(CALLER), &info);
    assert_digit_taken(&mut ep, '5');

    ep.handle_datagram(
        t0,
        addr(CALLER),
        &caller_request("SUBSCRIBE", "z9hG4bKs", &tag, 3, ""),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 501"));
}

#[test]
fn a_reinvite_is_answered_in_its_direction_with_a_new_version_only_on_change() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    let ours = "v=0\r\no=freya 7 7 IN IP4 127.0.0.1\r\ns=freya\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n";
    ep.answer(t0, "call-1", ours.into());
    let tag = to_tag(&sent(&mut ep)[0]);
    let hold = SDP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
    );
    let mut reinvite = |cseq: u32, body: &str| {
        let request = in_dialog(
            "INVITE",
            &format!("z9hG4bKre{cseq}"),
            "call-1",
            &tag,
            cseq,
            "Content-Type: application/sdp\r\n",
            body,
        );
        ep.handle_datagram(t0, addr(CALLER), &request);
        let out = sent(&mut ep);
        assert!(out[0].starts_with("SIP/2.0 200 OK"), "{out:?}");
        let directions: Vec<_> = events(&mut ep)
            .into_iter()
            .filter_map(|e| match e {
                EndpointEvent::MediaDirection { direction, .. } => Some(direction),
                _ => None,
            })
            .collect();
        (out[0].clone(), directions)
    };
    let (held, changes) = reinvite(2, &hold);
    assert!(
        held.contains("o=freya 7 8 ") && held.contains("a=recvonly\r\n"),
        "{held}"
    );
    assert_eq!(changes, [crate::sdp::Direction::RecvOnly]);
    let (again, changes) = reinvite(3, &hold);
    assert!(
        again.contains("o=freya 7 8 ") && again.contains("a=recvonly\r\n"),
        "{again}"
    );
    assert!(changes.is_empty(), "a refresh while held changes nothing");
    let (resumed, changes) = reinvite(4, SDP);
    assert!(
        resumed.contains("o=freya 7 9 ") && resumed.contains("a=sendrecv\r\n"),
        "{resumed}"
    );
    assert_eq!(changes, [crate::sdp::Direction::SendRecv]);
}

#[test]
fn our_hangup_sends_a_bye_that_completes_on_200() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered_call(t0);
    let ack = caller_request("ACK", "z9hG4bKack", &tag, 1, "");
    ep.handle_datagram(t0, addr(CALLER), &ack);
    events(&mut ep);
    ep.hangup(t0, "call-1");
    let bye = sent(&mut ep).remove(0);
    assert!(
        bye.starts_with("BYE sip:caller@127.0.0.1:40000 SIP/2.0"),
        "{bye}"
    );
    assert!(bye.contains("To: <sip:+15550001@127.0.0.1>;tag=caller1"));
    let branch = bye
        .split("branch=")
        .nth(1)
        .and_then(|b| b.split(';').next())
        .expect("branch")
        .trim()
        .to_owned();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: x;tag=a\r\nTo: y;tag=b\r\nCall-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_datagram(t0, addr(CALLER), ok.as_bytes());
    ep.handle_timeout(t0 + Duration::from_secs(10));
    assert!(
        sent(&mut ep).is_empty(),
        "no BYE retransmission after the 200"
    );
    // Once timers K and L have run out, nothing is left to wake up for.
    ep.handle_timeout(t0 + Duration::from_secs(40));
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn malformed_messages_get_400_or_are_dropped_never_a_panic() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let no_call_id = String::from_utf8(invite("z9hG4bKa1", "call-1"))
        .expect("utf8")
        .replace("Call-ID: call-1\r\n", "");
    ep.handle_datagram(t0, addr(CALLER), no_call_id.as_bytes());
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 400"), "{out:?}");
    assert!(events(&mut ep).is_empty());
    let valid = invite("z9hG4bKa2", "call-2");
    for cut in 0..valid.len() {
        ep.handle_datagram(t0, addr(CALLER), &valid[..cut]);
    }
    for junk in [
        &b"\x00\xff\x10garbage"[..],
        b"\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE\r\n\r\n",
    ] {
        ep.handle_datagram(t0, addr(CALLER), junk);
    }
}

#[test]
fn a_digit_by_info_for_a_call_that_cannot_take_it_is_refused_with_retry_after() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered_call(t0);
    let info = |branch: &str, cseq: u32| {
        let relay = "Content-Type: application/dtmf-relay\r\n";
        in_dialog(
            "INFO",
            branch,
            "call-1",
            &tag,
            cseq,
            relay,
            "Signal=7\r\nDuration=160\r\n",
        )
    };

    ep.set_signals_full("call-1", true);
    ep.handle_datagram(t0, addr(CALLER), &info("z9hG4bKi1", 2));
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 500"), "{out:?}");
    assert!(out[0].contains("Retry-After: 1"), "{out:?}");
    assert_eq!(events(&mut ep), [], "a refused digit is not reported");

    // An INFO without a digit is not the call's to take: still 200.
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &caller_request("INFO", "z9hG4bKi2", &tag, 3, ""),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));

    ep.set_signals_full("call-1", false);
    ep.handle_datagram(t0, addr(CALLER), &info("z9hG4bKi3", 4));
    assert_digit_taken(&mut ep, '7');
}

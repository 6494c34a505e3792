//! Transactions as real peers send them, driven by hand: the ACK of a re-INVITE's 2xx, INVITEs
//! crossing in one dialog (491, 500 with Retry-After, our retry after a 491), the To tag of the
//! 200 to a CANCEL, and the Warning of a 488.

use std::time::{Duration, Instant};

use super::in_dialog_tests::{answered, reply};
use super::tests::{
    addr, caller_request, events, in_dialog, invite, offered, sent, starting, to_tag, CALLER,
};
use super::*;

const S: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A re-INVITE without an offer (a session refresh): what matters here is its transaction, not
/// a change of media, which would be reported as an event of its own.
fn reinvite(branch: &str, tag: &str, cseq: u32) -> Vec<u8> {
    in_dialog("INVITE", branch, "call-1", tag, cseq, "", "")
}

/// Runs every timer up to `until`, returning what was sent.
fn run_until(ep: &mut SipEndpoint, until: Instant) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(at) = ep.poll_timeout().filter(|at| *at <= until) {
        ep.handle_timeout(at);
        out.extend(sent(ep));
    }
    out
}

/// A call whose session we refresh (`refresher=uas`, 120 s), at the moment our refreshing
/// re-INVITE (returned) leaves, 60 s in.
fn refreshing(t0: Instant) -> (SipEndpoint, String, String) {
    let (mut ep, tag) = answered(
        t0,
        "Session-Expires: 120;refresher=uas\r\nSupported: timer\r\n",
    );
    ep.handle_timeout(t0 + 60 * S);
    let ours = sent(&mut ep).remove(0);
    assert!(ours.starts_with("INVITE "), "{ours}");
    (ep, tag, ours)
}

#[test]
fn the_ack_of_a_reinvite_2xx_stops_its_retransmissions() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    ep.handle_datagram(t0 + S, addr(CALLER), &reinvite("z9hG4bKre2", &tag, 2));
    let ok = sent(&mut ep);
    assert!(
        ok[0].starts_with("SIP/2.0 200 OK") && ok[0].contains("CSeq: 2 INVITE"),
        "{ok:?}"
    );
    // Not yet acknowledged: the 2xx is sent again at T1.
    let again = run_until(&mut ep, t0 + S + ms(500));
    assert_eq!(again.len(), 1, "{again:?}");
    // The ACK (own branch, CSeq 2) reaches the re-INVITE's transaction, not the first INVITE's.
    let ack = caller_request("ACK", "z9hG4bKack2", &tag, 2, "");
    ep.handle_datagram(t0 + S + ms(600), addr(CALLER), &ack);
    let after = run_until(&mut ep, t0 + 40 * S);
    assert!(
        !after.iter().any(|m| m.contains("CSeq: 2 INVITE")),
        "no 2xx after its ACK: {after:?}"
    );
    // Only the first ACK confirmed the call; the call is still up, nothing failed.
    assert_eq!(events(&mut ep), []);
    assert_eq!(ep.dialog_count(), 1);
}

#[test]
fn an_ack_with_another_cseq_does_not_stop_the_reinvite_2xx() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    ep.handle_datagram(t0 + S, addr(CALLER), &reinvite("z9hG4bKre2", &tag, 2));
    sent(&mut ep);
    let stale = caller_request("ACK", "z9hG4bKack9", &tag, 1, "");
    ep.handle_datagram(t0 + S + ms(100), addr(CALLER), &stale);
    let again = run_until(&mut ep, t0 + S + ms(1600));
    assert!(
        again
            .iter()
            .filter(|m| m.contains("CSeq: 2 INVITE"))
            .count()
            >= 2,
        "still retransmitted: {again:?}"
    );
}

#[test]
fn a_reinvite_crossing_ours_gets_491_and_ours_is_retried_after_a_491() {
    let t0 = Instant::now();
    let (mut ep, tag, ours) = refreshing(t0);
    // The peer's re-INVITE crosses ours.
    ep.handle_datagram(
        t0 + 60 * S + ms(10),
        addr(CALLER),
        &reinvite("z9hG4bKx", &tag, 2),
    );
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 491 Request Pending"), "{out:?}");
    assert_eq!(to_tag(&out[0]), tag);
    // The peer answers ours 491 too: we acknowledge it and retry within 2 s (the caller owns
    // the Call-ID), with a new CSeq.
    ep.handle_datagram(
        t0 + 60 * S + ms(20),
        addr(CALLER),
        &reply(&ours, "491 Request Pending"),
    );
    let ack = sent(&mut ep);
    assert!(ack[0].starts_with("ACK "), "{ack:?}");
    let retried = run_until(&mut ep, t0 + 62 * S + ms(20));
    let retry = retried
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("our re-INVITE again");
    assert!(retry.contains("CSeq: 2 INVITE"), "{retry}");
    ep.handle_datagram(t0 + 63 * S, addr(CALLER), &reply(retry, "200 OK"));
    assert!(sent(&mut ep)[0].starts_with("ACK "));
    ep.handle_timeout(t0 + 150 * S);
    assert!(
        events(&mut ep).is_empty(),
        "refreshed at 63 s, session alive"
    );
}

#[test]
fn an_update_offer_crossing_our_reinvite_gets_491_and_one_without_an_offer_200() {
    let t0 = Instant::now();
    let (mut ep, tag, _ours) = refreshing(t0);
    let offer = in_dialog(
        "UPDATE",
        "z9hG4bKup1",
        "call-1",
        &tag,
        2,
        "Content-Type: application/sdp\r\n",
        "v=0\r\n",
    );
    ep.handle_datagram(t0 + 60 * S + ms(10), addr(CALLER), &offer);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 491 Request Pending"));
    let refresh = caller_request("UPDATE", "z9hG4bKup2", &tag, 3, "");
    ep.handle_datagram(t0 + 60 * S + ms(20), addr(CALLER), &refresh);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
}

#[test]
fn a_reinvite_before_our_answer_to_the_first_invite_gets_500_with_retry_after() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.ring(t0, "call-1");
    let tag = to_tag(&sent(&mut ep)[0]);
    // The first INVITE is unanswered: the second gets 500 and a Retry-After of 0 to 10 s.
    ep.handle_datagram(t0 + ms(100), addr(CALLER), &reinvite("z9hG4bKre", &tag, 2));
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 500 "), "{out:?}");
    let seconds: u32 = out[0]
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Retry-After");
    assert!(seconds <= 10);
    // Once answered, a re-INVITE is answered 200.
    ep.answer(t0 + ms(200), "call-1", "v=0\r\n".into());
    sent(&mut ep);
    let ack = caller_request("ACK", "z9hG4bKack1", &tag, 1, "");
    ep.handle_datagram(t0 + ms(300), addr(CALLER), &ack);
    ep.handle_datagram(t0 + ms(400), addr(CALLER), &reinvite("z9hG4bKre3", &tag, 3));
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
}

#[test]
fn glare_check_answers_500_with_retry_after_while_an_invite_of_the_dialog_is_unanswered() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    let tag = ep
        .dialogs
        .get("call-1")
        .map(|d| d.local_tag.clone())
        .expect("dialog");
    let second = reinvite("z9hG4bKre", &tag, 2);
    let Ok(rsip::SipMessage::Request(request)) = rsip::SipMessage::try_from(&second[..]) else {
        panic!("a request");
    };
    let refusal = ep
        .reinvite_glare("call-1", &request)
        .expect("the first INVITE is unanswered")
        .expect("a response");
    let text = String::from_utf8(to_bytes(refusal)).expect("utf-8");
    assert!(text.starts_with("SIP/2.0 500 "), "{text}");
    let seconds: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Retry-After");
    assert!(seconds <= 10);
    ep.answer(t0 + S, "call-1", "v=0\r\n".into());
    assert!(ep.reinvite_glare("call-1", &request).is_none(), "answered");
}

#[test]
fn the_200_to_cancel_and_the_487_carry_the_tag_of_the_180() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.ring(t0, "call-1");
    let ringing = sent(&mut ep).remove(0);
    ep.handle_datagram(t0 + ms(50), addr(CALLER), &cancel());
    let out = sent(&mut ep);
    let ok = starting(&out, "SIP/2.0 200 OK");
    let terminated = starting(&out, "SIP/2.0 487");
    assert_eq!(to_tag(ok), to_tag(&ringing), "{out:?}");
    assert_eq!(to_tag(terminated), to_tag(&ringing));
}

#[test]
fn before_any_provisional_the_200_to_cancel_and_the_487_agree_on_a_tag() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.handle_datagram(t0 + ms(50), addr(CALLER), &cancel());
    let out = sent(&mut ep);
    let ok = starting(&out, "SIP/2.0 200 OK");
    let terminated = starting(&out, "SIP/2.0 487");
    assert_eq!(to_tag(ok), to_tag(terminated), "{out:?}");
    // A retransmitted CANCEL gets the same 200.
    ep.handle_datagram(t0 + ms(60), addr(CALLER), &cancel());
    let again = sent(&mut ep);
    assert_eq!(to_tag(&again[0]), to_tag(ok));
}

#[test]
fn a_cancel_after_a_refusal_gets_the_refusal_tag() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.reject(t0, "call-1", 486, "Busy Here", None);
    let busy = sent(&mut ep).remove(0);
    ep.handle_datagram(t0 + ms(50), addr(CALLER), &cancel());
    let ok = sent(&mut ep).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(to_tag(&ok), to_tag(&busy));
}

#[test]
fn a_488_says_warning_305_incompatible_media_format() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.reject(t0, "call-1", 488, "Not Acceptable Here", None);
    let refusal = sent(&mut ep).remove(0);
    assert!(refusal.starts_with("SIP/2.0 488"), "{refusal}");
    assert!(
        refusal.contains("Warning: 305 127.0.0.1:5060 \"Incompatible media format\"\r\n"),
        "{refusal}"
    );
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa2", "call-2"));
    events(&mut ep);
    ep.reject(t0, "call-2", 486, "Busy Here", None);
    assert!(!sent(&mut ep)[0].contains("Warning:"), "only on 488");
}

fn cancel() -> Vec<u8> {
    "CANCEL sip:demo@127.0.0.1:5060 SIP/2.0\r\n\
     Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKa1;rport\r\n\
     Max-Forwards: 70\r\n\
     From: <sip:+15550001@127.0.0.1>;tag=caller1\r\n\
     To: <sip:demo@127.0.0.1:5060>\r\n\
     Call-ID: call-1\r\n\
     CSeq: 1 CANCEL\r\n\
     Content-Length: 0\r\n\r\n"
        .as_bytes()
        .to_vec()
}

#[test]
fn a_reinvite_2xx_never_acknowledged_ends_the_session_with_our_bye() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    ep.handle_datagram(t0 + S, addr(CALLER), &reinvite("z9hG4bKre9", &tag, 2));
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    // No ACK, ever: after 64×T1 the re-INVITE's transaction gives up on it.
    run_until(&mut ep, t0 + 40 * S);
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::ReinviteUnacknowledged {
            call_id: "call-1".into()
        }]
    );
    // The dialog still stands, so the owner's hang-up is a BYE in it (RFC 3261 section 13.3.1.4).
    assert_eq!(ep.dialog_count(), 1);
    ep.hangup(t0 + 41 * S, "call-1");
    let bye = sent(&mut ep);
    assert!(
        bye.iter()
            .any(|m| m.starts_with("BYE ") && m.contains(&tag)),
        "{bye:?}"
    );
}

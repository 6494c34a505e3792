//! Requests inside an answered call, driven by hand with simulated time: blind transfer (REFER,
//! NOTIFY progress), a REFER sent to us, digits by SIP INFO, and RFC 4028 session timers.

use std::time::{Duration, Instant};

use super::tests::{
    addr, caller_request, endpoint, events, in_dialog, invite, sent, to_tag, CALLER,
};
use super::*;

const S: Duration = Duration::from_secs(1);

/// An answered call `call-1`; returns the endpoint and our To tag.
pub(super) fn answered(t0: Instant, extra_invite_headers: &str) -> (SipEndpoint, String) {
    let mut ep = endpoint();
    let mut bytes = invite("z9hG4bKa1", "call-1");
    if !extra_invite_headers.is_empty() {
        let text = String::from_utf8(bytes).expect("utf-8");
        bytes = text
            .replacen(
                "CSeq: 1 INVITE\r\n",
                &format!("CSeq: 1 INVITE\r\n{extra_invite_headers}"),
                1,
            )
            .into_bytes();
    }
    ep.handle_datagram(t0, addr(CALLER), &bytes);
    assert!(matches!(
        events(&mut ep)[..],
        [EndpointEvent::IncomingCall(_)]
    ));
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let ok = sent(&mut ep);
    let tag = to_tag(&ok[0]);
    let ack = caller_request("ACK", "z9hG4bKack1", &tag, 1, "");
    ep.handle_datagram(t0, addr(CALLER), &ack);
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::Confirmed {
            call_id: "call-1".into()
        }]
    );
    (ep, tag)
}

/// A response to `request` (a message we sent) with `status`, copying its dialog headers.
pub(super) fn reply(request: &str, status: &str) -> Vec<u8> {
    let mut text = format!("SIP/2.0 {status}\r\n");
    for line in request.lines() {
        if ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| line.starts_with(h))
        {
            text.push_str(line);
            text.push_str("\r\n");
        }
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

fn notify(branch: &str, tag: &str, cseq: u32, state: &str, frag: &str) -> Vec<u8> {
    let extra =
        format!("Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\n");
    in_dialog("NOTIFY", branch, "call-1", tag, cseq, &extra, frag)
}

fn transfers(ep: &mut SipEndpoint) -> Vec<TransferProgress> {
    events(ep)
        .into_iter()
        .filter_map(|e| match e {
            EndpointEvent::Transfer { call_id, progress } if call_id == "call-1" => Some(progress),
            _ => None,
        })
        .collect()
}

#[test]
fn a_transfer_sends_refer_and_follows_notify_to_success() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    ep.transfer(t0 + S, "call-1", "+1 555 0100");
    let refer = sent(&mut ep);
    assert_eq!(refer.len(), 1);
    let refer = &refer[0];
    assert!(
        refer.starts_with("REFER sip:caller@127.0.0.1:40000 SIP/2.0"),
        "{refer}"
    );
    assert!(
        refer.contains("Refer-To: <sip:+15550100@127.0.0.1:40000>"),
        "{refer}"
    );
    assert!(
        refer.contains("Referred-By: <sip:demo@127.0.0.1:5060>"),
        "{refer}"
    );
    assert!(refer.contains(&format!(";tag={tag}")) && refer.contains("tag=caller1"));
    assert!(refer.contains("CSeq: 1 REFER"));
    ep.handle_datagram(t0 + S, addr(CALLER), &reply(refer, "202 Accepted"));
    assert_eq!(transfers(&mut ep), [TransferProgress::Accepted]);

    ep.handle_datagram(
        t0 + 2 * S,
        addr(CALLER),
        &notify(
            "z9hG4bKn1",
            &tag,
            2,
            "active;expires=60",
            "SIP/2.0 100 Trying\r\n",
        ),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(transfers(&mut ep), [TransferProgress::Trying { code: 100 }]);
    ep.handle_datagram(
        t0 + 3 * S,
        addr(CALLER),
        &notify(
            "z9hG4bKn2",
            &tag,
            3,
            "terminated;reason=noresource",
            "SIP/2.0 200 OK\r\n",
        ),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        transfers(&mut ep),
        [TransferProgress::Succeeded { code: 200 }]
    );
    // The owner then hangs up: our BYE follows the REFER's CSeq.
    ep.hangup(t0 + 3 * S, "call-1");
    assert!(sent(&mut ep)[0].contains("CSeq: 2 BYE"));
}

#[test]
fn a_refused_or_failed_transfer_is_reported_and_the_call_stays_up() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    ep.transfer(t0, "call-1", "sip:sales@pbx.example");
    let refer = sent(&mut ep).remove(0);
    assert!(refer.contains("Refer-To: <sip:sales@pbx.example>"));
    ep.handle_datagram(t0, addr(CALLER), &reply(&refer, "603 Decline"));
    let [TransferProgress::Failed { reason }] = &transfers(&mut ep)[..] else {
        panic!("expected a failure");
    };
    assert!(reason.contains("603"), "{reason}");
    assert_eq!(ep.dialog_count(), 1, "the call goes on");

    // Accepted, then the new call is busy.
    ep.transfer(t0 + S, "call-1", "+15550100");
    let refer = sent(&mut ep).remove(0);
    ep.transfer(t0 + S, "call-1", "+15550100");
    assert!(sent(&mut ep).is_empty());
    let [TransferProgress::Failed { reason }] = &transfers(&mut ep)[..] else {
        panic!("a second transfer at once is refused");
    };
    assert!(reason.contains("already in progress"));
    ep.handle_datagram(t0 + S, addr(CALLER), &reply(&refer, "202 Accepted"));
    assert_eq!(transfers(&mut ep), [TransferProgress::Accepted]);
    ep.handle_datagram(
        t0 + 2 * S,
        addr(CALLER),
        &notify(
            "z9hG4bKn3",
            &tag,
            2,
            "terminated",
            "SIP/2.0 486 Busy Here\r\n",
        ),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    let [TransferProgress::Failed { reason }] = &transfers(&mut ep)[..] else {
        panic!("expected a failure");
    };
    assert!(reason.contains("486 Busy Here"), "{reason}");

    // Accepted, and then nothing: the transfer fails after its timeout, not before.
    ep.transfer(t0 + 3 * S, "call-1", "+15550100");
    let refer = sent(&mut ep).remove(0);
    ep.handle_datagram(t0 + 3 * S, addr(CALLER), &reply(&refer, "202 Accepted"));
    assert_eq!(transfers(&mut ep), [TransferProgress::Accepted]);
    let deadline = t0 + 3 * S + in_dialog::TRANSFER_TIMEOUT;
    assert!(ep.poll_timeout().is_some_and(|t| t <= deadline));
    ep.handle_timeout(deadline - Duration::from_millis(1));
    assert!(transfers(&mut ep).is_empty());
    ep.handle_timeout(deadline);
    assert!(matches!(
        &transfers(&mut ep)[..],
        [TransferProgress::Failed { .. }]
    ));
    assert_eq!(ep.dialog_count(), 1);
}

#[test]
fn an_unanswered_refer_fails_the_transfer_after_timer_f() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(t0, "");
    ep.transfer(t0, "call-1", "+15550100");
    assert_eq!(sent(&mut ep).len(), 1);
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert!(sent(&mut ep)[0].starts_with("REFER"), "retransmitted");
    ep.handle_timeout(t0 + 32 * S);
    let [TransferProgress::Failed { reason }] = &transfers(&mut ep)[..] else {
        panic!("expected a failure");
    };
    assert!(reason.contains("never answered"), "{reason}");
}

#[test]
fn a_transfer_that_cannot_be_written_fails_at_once() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(t0, "");
    ep.transfer(t0, "call-1", "the sales team");
    assert!(sent(&mut ep).is_empty());
    assert!(matches!(
        &transfers(&mut ep)[..],
        [TransferProgress::Failed { .. }]
    ));
    ep.transfer(t0, "no-such-call", "+15550100");
    assert!(sent(&mut ep).is_empty());
}

#[test]
fn a_refer_from_the_peer_is_refused_with_405_and_our_allow_list() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    let refer = caller_request(
        "REFER",
        "z9hG4bKr1",
        &tag,
        2,
        "Refer-To: <sip:+19005550000@evil.example>\r\n",
    );
    ep.handle_datagram(t0, addr(CALLER), &refer);
    let out = sent(&mut ep);
    assert!(
        out[0].starts_with("SIP/2.0 405 Method Not Allowed"),
        "{out:?}"
    );
    assert!(out[0].contains(&format!("Allow: {ALLOW}")));
    assert!(!ALLOW.contains("REFER"));
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.dialog_count(), 1);
}

#[test]
fn notify_for_another_event_or_no_dialog_is_refused() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    let presence = caller_request("NOTIFY", "z9hG4bKp1", &tag, 2, "Event: presence\r\n");
    ep.handle_datagram(t0, addr(CALLER), &presence);
    let out = sent(&mut ep);
    assert!(out[0].starts_with("SIP/2.0 489 Bad Event"), "{out:?}");
    let stray = in_dialog(
        "NOTIFY",
        "z9hG4bKp2",
        "other",
        "x",
        2,
        "Event: refer\r\n",
        "",
    );
    ep.handle_datagram(t0, addr(CALLER), &stray);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 481"));
    // A NOTIFY for a transfer we never asked for is answered and changes nothing.
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &notify("z9hG4bKp3", &tag, 3, "active", "SIP/2.0 200 OK\r\n"),
    );
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    assert!(transfers(&mut ep).is_empty());
}

#[test]
fn digits_by_info_go_one_request_at_a_time() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(t0, "");
    ep.send_dtmf_info(t0, "call-1", "1#");
    let first = sent(&mut ep);
    assert_eq!(first.len(), 1, "one INFO at a time");
    assert!(first[0].starts_with("INFO sip:caller@127.0.0.1:40000"));
    assert!(first[0].contains("Content-Type: application/dtmf-relay"));
    assert!(
        first[0].ends_with("Signal=1\r\nDuration=160\r\n"),
        "{}",
        first[0]
    );
    ep.handle_datagram(t0, addr(CALLER), &reply(&first[0], "200 OK"));
    let second = sent(&mut ep);
    assert!(second[0].ends_with("Signal=#\r\nDuration=160\r\n"));
    assert!(second[0].contains("CSeq: 2 INFO"));
    ep.handle_datagram(t0, addr(CALLER), &reply(&second[0], "200 OK"));
    assert!(sent(&mut ep).is_empty());
}

#[test]
fn a_session_interval_below_90_s_gets_422_with_min_se() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let text = String::from_utf8(invite("z9hG4bKs1", "call-2")).expect("utf-8");
    let bytes = text.replacen(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nSession-Expires: 60\r\nSupported: timer\r\n",
        1,
    );
    ep.handle_datagram(t0, addr(CALLER), bytes.as_bytes());
    assert!(events(&mut ep).is_empty(), "no call starts");
    let out = sent(&mut ep);
    assert!(
        out[0].starts_with("SIP/2.0 422 Session Interval Too Small"),
        "{out:?}"
    );
    assert!(out[0].contains("Min-SE: 90"));
}

#[test]
fn when_the_caller_refreshes_and_stops_the_session_expires() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let text = String::from_utf8(invite("z9hG4bKs1", "call-1")).expect("utf-8");
    let bytes = text.replacen(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nSession-Expires: 90\r\nSupported: timer\r\n",
        1,
    );
    ep.handle_datagram(t0, addr(CALLER), bytes.as_bytes());
    events(&mut ep);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let ok = sent(&mut ep).remove(0);
    assert!(ok.contains("Session-Expires: 90;refresher=uac"), "{ok}");
    assert!(ok.contains("Require: timer"));
    let tag = to_tag(&ok);
    let ack = caller_request("ACK", "z9hG4bKack1", &tag, 1, "");
    ep.handle_datagram(t0, addr(CALLER), &ack);
    events(&mut ep);
    // A refresh (re-INVITE) at 50 s moves the deadline: 50 + 90 - 30 = 110 s.
    let refresh = caller_request(
        "INVITE",
        "z9hG4bKs2",
        &tag,
        2,
        "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
    );
    ep.handle_datagram(t0 + 50 * S, addr(CALLER), &refresh);
    let ok = sent(&mut ep);
    assert!(ok[0].starts_with("SIP/2.0 200 OK") && ok[0].contains("Session-Expires: 90"));
    let ack = caller_request("ACK", "z9hG4bKack2", &tag, 2, "");
    ep.handle_datagram(t0 + 50 * S, addr(CALLER), &ack);
    ep.handle_timeout(t0 + 60 * S);
    assert!(events(&mut ep).is_empty());
    ep.handle_timeout(t0 + 110 * S);
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::SessionExpired {
            call_id: "call-1".into()
        }]
    );
}

#[test]
fn when_we_refresh_an_update_goes_out_at_half_the_interval() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(
        t0,
        "Session-Expires: 120;refresher=uas\r\nSupported: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    );
    ep.handle_timeout(t0 + 59 * S);
    assert!(sent(&mut ep).is_empty(), "not before half the interval");
    ep.handle_timeout(t0 + 60 * S);
    let update = sent(&mut ep).remove(0);
    assert!(
        update.starts_with("UPDATE sip:caller@127.0.0.1:40000"),
        "{update}"
    );
    assert!(update.contains("Session-Expires: 120;refresher=uac"));
    assert!(update.contains(&format!("tag={tag}")));
    ep.handle_datagram(t0 + 61 * S, addr(CALLER), &reply(&update, "200 OK"));
    ep.handle_timeout(t0 + 120 * S);
    assert!(events(&mut ep).is_empty(), "refreshed at 61 s");
    // The next refresh finds no dialog at the peer: the session is over.
    ep.handle_timeout(t0 + 121 * S);
    let update = sent(&mut ep).remove(0);
    ep.handle_datagram(
        t0 + 121 * S,
        addr(CALLER),
        &reply(&update, "481 Call Does Not Exist"),
    );
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::SessionExpired {
            call_id: "call-1".into()
        }]
    );
}

#[test]
fn an_update_from_the_peer_refreshes_the_session_and_is_answered() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "Session-Expires: 90\r\nSupported: timer\r\n");
    let update = caller_request(
        "UPDATE",
        "z9hG4bKu1",
        &tag,
        2,
        "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
    );
    ep.handle_datagram(t0 + 55 * S, addr(CALLER), &update);
    let ok = sent(&mut ep);
    assert!(ok[0].starts_with("SIP/2.0 200 OK"), "{ok:?}");
    assert!(ok[0].contains("Session-Expires: 90;refresher=uac"));
    ep.handle_timeout(t0 + 60 * S);
    assert!(events(&mut ep).is_empty(), "refreshed at 55 s");
    let stray = in_dialog("UPDATE", "z9hG4bKu2", "nope", &tag, 2, "", "");
    ep.handle_datagram(t0 + 56 * S, addr(CALLER), &stray);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 481"));
}

#[test]
fn a_peer_that_refuses_update_keeps_its_call_without_a_timer() {
    let t0 = Instant::now();
    let (mut ep, _) = answered(
        t0,
        "Session-Expires: 120;refresher=uas\r\nSupported: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    );
    ep.handle_timeout(t0 + 60 * S);
    let update = sent(&mut ep).remove(0);
    ep.handle_datagram(
        t0 + 60 * S,
        addr(CALLER),
        &reply(&update, "501 Not Implemented"),
    );
    ep.handle_timeout(t0 + 600 * S);
    assert!(events(&mut ep).is_empty(), "no expiry");
    assert_eq!(ep.dialog_count(), 1);
    assert!(sent(&mut ep).is_empty(), "no more refreshes");
}

#[test]
fn a_peer_without_update_is_refreshed_by_re_invite_and_we_acknowledge_its_2xx() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(
        t0,
        "Session-Expires: 120;refresher=uas\r\nSupported: timer\r\n",
    );
    ep.handle_timeout(t0 + 60 * S);
    let reinvite = sent(&mut ep).remove(0);
    assert!(
        reinvite.starts_with("INVITE sip:caller@127.0.0.1:40000"),
        "{reinvite}"
    );
    assert!(reinvite.contains("Session-Expires: 120;refresher=uac"));
    assert!(reinvite.contains(&format!("tag={tag}")) && reinvite.contains("CSeq: 1 INVITE"));
    assert!(reinvite.ends_with("v=0\r\n"), "our SDP again: {reinvite}");
    let ok = reply(&reinvite, "200 OK");
    ep.handle_datagram(t0 + 61 * S, addr(CALLER), &ok);
    let ack = sent(&mut ep);
    assert_eq!(ack.len(), 1, "{ack:?}");
    assert!(
        ack[0].starts_with("ACK sip:caller@127.0.0.1:40000"),
        "{}",
        ack[0]
    );
    assert!(ack[0].contains("CSeq: 1 ACK"));
    // The 2xx again (our ACK was lost): acknowledged again.
    ep.handle_datagram(t0 + 62 * S, addr(CALLER), &ok);
    assert!(sent(&mut ep)[0].starts_with("ACK "));
    ep.handle_timeout(t0 + 120 * S);
    assert!(events(&mut ep).is_empty(), "refreshed at 61 s");
    assert_eq!(ep.dialog_count(), 1);
}

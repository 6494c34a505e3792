//! Requests that name an answered call's Call-ID without being in its dialog — forged by a
//! stranger who learnt the Call-ID — driven by hand: each gets 481 and changes nothing, whatever
//! the method; the peer's own requests, with both tags right, still work (RFC 3261 §12.2.2).

use std::time::{Duration, Instant};

use super::in_dialog_tests::answered;
use super::tests::{
    addr, assert_caller_hung_up, assert_digit_taken, caller_request, events, in_dialog, sent,
    CALLER,
};
use super::*;

/// Where the forgeries come from.
const STRANGER: &str = "198.51.100.66:5060";

/// `method` in `call-1` with From tag `from_tag` and To tag `to_tag` (`None`: no To tag).
fn request(
    method: &str,
    branch: &str,
    from_tag: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let text = String::from_utf8(in_dialog(
        method, branch, "call-1", "TO-TAG", 2, extra, body,
    ))
    .expect("utf-8");
    let to = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    text.replacen(";tag=caller1", &format!(";tag={from_tag}"), 1)
        .replacen(";tag=TO-TAG", &to, 1)
        .into_bytes()
}

/// The ways to name `call-1` without its dialog, given our tag: (what is wrong, From tag, To tag).
fn forgeries(our_tag: &str) -> [(&'static str, &'static str, Option<String>); 3] {
    [
        ("a wrong To tag", "caller1", Some("not-yours".to_owned())),
        ("a wrong From tag", "stranger", Some(our_tag.to_owned())),
        ("no To tag", "caller1", None),
    ]
}

#[test]
fn a_bye_that_matches_the_call_id_but_not_both_tags_gets_481_and_the_call_goes_on() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    for (n, (wrong, from_tag, to_tag)) in forgeries(&tag).into_iter().enumerate() {
        let bye = request(
            "BYE",
            &format!("z9hG4bKforged{n}"),
            from_tag,
            to_tag.as_deref(),
            "",
            "",
        );
        ep.handle_datagram(t0, addr(STRANGER), &bye);
        let out = sent(&mut ep);
        assert!(
            out[0].starts_with("SIP/2.0 481 Call/Transaction Does Not Exist"),
            "{wrong}: {out:?}"
        );
        assert!(events(&mut ep).is_empty(), "{wrong}: no hang-up");
        assert_eq!(ep.dialog_count(), 1, "{wrong}: the call goes on");
    }
    // The caller's own BYE, with both tags right, still ends the call.
    let bye = request("BYE", "z9hG4bKbye", "caller1", Some(&tag), "", "");
    ep.handle_datagram(t0, addr(CALLER), &bye);
    assert_caller_hung_up(&mut ep);
}

#[test]
fn an_info_digit_that_matches_the_call_id_but_not_both_tags_gets_481_and_presses_nothing() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    let relay = "Content-Type: application/dtmf-relay\r\n";
    for (n, (wrong, from_tag, to_tag)) in forgeries(&tag).into_iter().enumerate() {
        let info = request(
            "INFO",
            &format!("z9hG4bKforged{n}"),
            from_tag,
            to_tag.as_deref(),
            relay,
            "Signal=9\r\nDuration=160\r\n",
        );
        ep.handle_datagram(t0, addr(STRANGER), &info);
        let out = sent(&mut ep);
        assert!(out[0].starts_with("SIP/2.0 481"), "{wrong}: {out:?}");
        assert!(events(&mut ep).is_empty(), "{wrong}: no digit");
    }
    let info = request(
        "INFO",
        "z9hG4bKinfo",
        "caller1",
        Some(&tag),
        relay,
        "Signal=5\r\nDuration=160\r\n",
    );
    ep.handle_datagram(t0, addr(CALLER), &info);
    assert_digit_taken(&mut ep, '5');
    assert_eq!(ep.dialog_count(), 1);
}

#[test]
fn re_invite_update_refer_and_options_with_forged_tags_get_481() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "Session-Expires: 90\r\nSupported: timer\r\n");
    let refresh = "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n";
    for (method, extra) in [
        ("INVITE", refresh),
        ("UPDATE", refresh),
        ("REFER", "Refer-To: <sip:+19005550000@evil.example>\r\n"),
        ("OPTIONS", ""),
    ] {
        for (n, (wrong, from_tag, to_tag)) in forgeries(&tag).into_iter().take(2).enumerate() {
            let forged = request(
                method,
                &format!("z9hG4bK{method}{n}"),
                from_tag,
                to_tag.as_deref(),
                extra,
                "",
            );
            ep.handle_datagram(t0, addr(STRANGER), &forged);
            let out = sent(&mut ep);
            assert!(
                out[0].starts_with("SIP/2.0 481"),
                "{method} with {wrong}: {out:?}"
            );
            assert!(events(&mut ep).is_empty(), "{method} with {wrong}");
        }
    }
    // Without a To tag an INVITE is a new request (a merged one, with this Call-ID) and an
    // OPTIONS is outside any dialog: neither touches the call.
    let merged = request("INVITE", "z9hG4bKmerged", "caller1", None, "", "");
    ep.handle_datagram(t0, addr(STRANGER), &merged);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 482"));
    let ping = request("OPTIONS", "z9hG4bKping", "stranger", None, "", "");
    ep.handle_datagram(t0, addr(STRANGER), &ping);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    // The forged refreshes refreshed nothing: the session lapses at 90 - 30 s.
    let later = t0 + Duration::from_secs(60);
    ep.handle_timeout(later);
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::SessionExpired {
            call_id: "call-1".into()
        }]
    );
    sent(&mut ep);
    // The caller's own requests are answered as before.
    let reinvite = request("INVITE", "z9hG4bKre", "caller1", Some(&tag), "", "");
    ep.handle_datagram(later, addr(CALLER), &reinvite);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    let options = request("OPTIONS", "z9hG4bKo", "caller1", Some(&tag), "", "");
    ep.handle_datagram(later, addr(CALLER), &options);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    let refer = request("REFER", "z9hG4bKr", "caller1", Some(&tag), "", "");
    ep.handle_datagram(later, addr(CALLER), &refer);
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 405"));
    assert_eq!(ep.dialog_count(), 1);
}

#[test]
fn a_forged_notify_cannot_complete_our_transfer() {
    let t0 = Instant::now();
    let (mut ep, tag) = answered(t0, "");
    ep.transfer(t0, "call-1", "+15550100");
    sent(&mut ep);
    let notify = |branch: &str, from_tag: &str, to_tag: Option<&str>| {
        request(
            "NOTIFY",
            branch,
            from_tag,
            to_tag,
            "Event: refer\r\nSubscription-State: terminated\r\nContent-Type: message/sipfrag\r\n",
            "SIP/2.0 200 OK\r\n",
        )
    };
    for (n, (wrong, from_tag, to_tag)) in forgeries(&tag).into_iter().enumerate() {
        let forged = notify(&format!("z9hG4bKforged{n}"), from_tag, to_tag.as_deref());
        ep.handle_datagram(t0, addr(STRANGER), &forged);
        let out = sent(&mut ep);
        assert!(out[0].starts_with("SIP/2.0 481"), "{wrong}: {out:?}");
        assert!(
            events(&mut ep).is_empty(),
            "{wrong}: the transfer is not reported done (which would hang up)"
        );
    }
    ep.handle_datagram(t0, addr(CALLER), &notify("z9hG4bKn", "caller1", Some(&tag)));
    assert!(sent(&mut ep)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::Transfer {
            call_id: "call-1".into(),
            progress: TransferProgress::Succeeded { code: 200 }
        }]
    );
}

#[test]
fn a_forged_ack_does_not_confirm_our_answer() {
    let t0 = Instant::now();
    let mut ep = super::tests::endpoint();
    ep.handle_datagram(
        t0,
        addr(CALLER),
        &super::tests::invite("z9hG4bKa1", "call-1"),
    );
    events(&mut ep);
    ep.answer(t0, "call-1", "v=0\r\n".into());
    let ok = sent(&mut ep).remove(0);
    let tag = super::tests::to_tag(&ok);
    for (n, (wrong, from_tag, to_tag)) in forgeries(&tag).into_iter().enumerate() {
        // The INVITE's CSeq, as the real ACK has.
        let ack = String::from_utf8(request(
            "ACK",
            &format!("z9hG4bKforged{n}"),
            from_tag,
            to_tag.as_deref(),
            "",
            "",
        ))
        .expect("utf-8")
        .replacen("CSeq: 2 ACK", "CSeq: 1 ACK", 1);
        ep.handle_datagram(t0, addr(STRANGER), ack.as_bytes());
        assert!(
            sent(&mut ep).is_empty(),
            "{wrong}: an ACK is never answered"
        );
        assert!(events(&mut ep).is_empty(), "{wrong}: not confirmed");
    }
    // Our 2xx is still retransmitted, until the caller's own ACK.
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(sent(&mut ep), [ok]);
    let ack = caller_request("ACK", "z9hG4bKack", &tag, 1, "");
    ep.handle_datagram(t0, addr(CALLER), &ack);
    assert_eq!(
        events(&mut ep),
        [EndpointEvent::Confirmed {
            call_id: "call-1".into()
        }]
    );
}

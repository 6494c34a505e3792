//! The torture messages RFC 4475 aims at the transaction user, fed to the endpoint: each must
//! get the answer the RFC names, not silence and not a call.

use std::net::SocketAddr;
use std::time::Instant;

use super::messages::*;
use crate::endpoint::SipEndpoint;
use crate::Timers;

/// What the endpoint sends back for `bytes`, and whether it started anything.
fn answer(bytes: &[u8]) -> (Vec<String>, usize) {
    let source: SocketAddr = "192.0.2.9:5060".parse().expect("addr");
    let mut ep = SipEndpoint::new("127.0.0.1:5060".parse().expect("addr"), Timers::default());
    ep.handle_datagram(Instant::now(), source, bytes);
    let sent = std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
        .collect();
    let events = std::iter::from_fn(|| ep.poll_event()).count();
    (sent, events)
}

#[test]
fn unknown_methods_are_answered_501_even_when_rsip_cannot_parse_them() {
    for (name, bytes, cseq) in [
        (
            "intmeth",
            INTMETH,
            "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~",
        ),
        ("esc02", ESC02, "CSeq: 29344 RE%47IST%45R"),
    ] {
        let (sent, events) = answer(bytes);
        assert_eq!(events, 0, "{name}");
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        let response = &sent[0];
        assert!(
            response.starts_with("SIP/2.0 501 Not Implemented\r\n"),
            "{name}: {response}"
        );
        assert!(response.contains(cseq), "{name}: {response}");
        assert!(response.contains("Allow: INVITE"), "{name}");
        assert!(
            response
                .lines()
                .any(|l| l.starts_with("To:") && l.contains(";tag=")),
            "{name}: our To tag"
        );
    }
    // Garbage that is not a request line stays unanswered.
    assert_eq!(answer(b"HELLO\r\n\r\n"), (Vec::new(), 0));
}

#[test]
fn a_uri_scheme_we_do_not_serve_gets_416() {
    let (sent, _) = answer(NOVELSC);
    assert!(
        sent[0].starts_with("SIP/2.0 416 Unsupported URI Scheme"),
        "{sent:?}"
    );
}

#[test]
fn a_required_extension_we_lack_gets_420_listing_it() {
    let (sent, _) = answer(BEXT01);
    assert!(sent[0].starts_with("SIP/2.0 420 Bad Extension"), "{sent:?}");
    assert!(
        sent[0].contains("Unsupported: nothingSupportsThis, nothingSupportsThisEither"),
        "{}",
        sent[0]
    );
    assert!(
        !sent[0].contains("noProxiesSupportThis"),
        "Proxy-Require is for proxies"
    );
}

#[test]
fn an_invite_with_a_body_we_cannot_read_gets_415_and_no_call() {
    let (sent, events) = answer(INVUT);
    assert_eq!(events, 0, "no call starts");
    assert!(
        sent[0].starts_with("SIP/2.0 415 Unsupported Media Type"),
        "{sent:?}"
    );
    assert!(sent[0].contains("Accept: application/sdp"));
}

//! One INVITE attempt driven by hand: responses in, simulated time, transmits and events out.

use std::time::Duration;

use rsip::headers::UntypedHeader;

use super::*;
use crate::digest::Algorithm;
use crate::message::header_param;
use crate::message::parse_message;
use crate::response::{build_response, set_body, status};
use crate::via::TopVia;
use rsip::{Method, SipMessage};

pub(crate) const ANSWER_SDP: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

pub(crate) fn trunk(id: &str, port: u16) -> Trunk {
    Trunk {
        id: id.into(),
        name: format!("trunk-{id}"),
        host: "127.0.0.1".into(),
        port,
        peer: Peer::udp(SocketAddr::from(([127, 0, 0, 1], port))),
        credentials: None,
        caller_id: None,
        invite_timeout: Duration::from_secs(10),
        outbound_proxy: None,
        srtp: crate::sdp::SrtpPolicy::Disabled,
        srtp_without_tls: false,
    }
}

/// Trunk `a` (port 5081), then trunk `b` (port 5082).
pub(crate) fn two_trunks() -> Vec<Trunk> {
    vec![trunk("a", 5081), trunk("b", 5082)]
}

/// Breakers that open on a trunk's first failure and keep it closed to calls for 30 s.
pub(crate) fn one_strike_breakers() -> crate::breaker::TrunkBreakers {
    crate::breaker::TrunkBreakers::new(crate::breaker::BreakerPolicy {
        failures: 1,
        cool_down: Duration::from_secs(30),
    })
}

pub(crate) fn call_request() -> CallRequest {
    CallRequest {
        call_id: "out-1".into(),
        to: "+15557777".into(),
        from: "+15550000".into(),
        offer: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n".into(),
        local: SocketAddr::from(([127, 0, 0, 1], 5060)),
        tls_local: None,
        srtp_media: true,
    }
}

pub(crate) fn request_of(out: &Outgoing) -> Request {
    match parse_message(&out.bytes) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

/// A response from the trunk to `invite`, with the callee's tag, a Contact and, for a 2xx,
/// an SDP answer.
pub(crate) fn reply(invite: &Request, code: u16, extra: Option<Header>) -> Response {
    let mut r = build_response(invite, status(code, "Test"), Some("callee")).unwrap();
    r.headers.push(Header::Contact(
        "<sip:callee@127.0.0.1:7000>".to_owned().into(),
    ));
    if let Some(h) = extra {
        r.headers.push(h);
    }
    if (200..300).contains(&code) {
        set_body(&mut r, "application/sdp", ANSWER_SDP.as_bytes().to_vec());
    }
    r
}

pub(crate) fn sent(attempt: &mut InviteAttempt) -> Vec<Request> {
    std::iter::from_fn(|| attempt.poll_transmit())
        .map(|o| request_of(&o))
        .collect()
}

pub(crate) fn events(attempt: &mut InviteAttempt) -> Vec<AttemptEvent> {
    std::iter::from_fn(|| attempt.poll_event()).collect()
}

fn start(trunk: Trunk) -> (Instant, InviteAttempt, Request) {
    let t0 = Instant::now();
    let mut attempt = InviteAttempt::start(
        t0,
        trunk,
        call_request(),
        "fromtag".into(),
        1,
        Timers::default(),
    )
    .unwrap();
    let invite = sent(&mut attempt).remove(0);
    (t0, attempt, invite)
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, _) = text.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| match h {
            Header::Via(v) => v.value(),
            Header::From(v) => v.value(),
            Header::To(v) => v.value(),
            Header::CSeq(v) => v.value(),
            Header::Authorization(v) => v.value(),
            Header::ProxyAuthorization(v) => v.value(),
            _ => "",
        })
    })
}

#[path = "uac_srtp_tests.rs"]
mod srtp;

#[test]
fn the_invite_goes_to_the_trunk_with_our_offer_and_caller_id() {
    let mut with_caller_id = trunk("a", 5080);
    with_caller_id.caller_id = Some("+4420".into());
    let (_, _, invite) = start(with_caller_id);
    assert_eq!(invite.uri.to_string(), "sip:+15557777@127.0.0.1:5080");
    assert!(header(&invite, "From")
        .unwrap()
        .contains("sip:+4420@127.0.0.1"));
    assert_eq!(
        header_param(header(&invite, "From").unwrap(), "tag"),
        Some("fromtag")
    );
    assert!(header(&invite, "Via")
        .unwrap()
        .starts_with("SIP/2.0/UDP 127.0.0.1:5060"));
    assert!(String::from_utf8_lossy(&invite.body).contains("m=audio 20000"));
}

#[test]
fn a_2xx_is_acked_outside_the_transaction_and_reacked_when_retransmitted() {
    let (t0, mut attempt, invite) = start(trunk("a", 5080));
    attempt.handle_response(t0 + Duration::from_millis(50), reply(&invite, 180, None));
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::Progress { code: 180 }]
    ));
    attempt.handle_response(t0 + Duration::from_millis(900), reply(&invite, 200, None));
    let acks = sent(&mut attempt);
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.uri.to_string(),
        "sip:callee@127.0.0.1:7000",
        "to the remote target"
    );
    assert_ne!(
        TopVia::of(&ack.headers).unwrap().branch(),
        TopVia::of(&invite.headers).unwrap().branch(),
        "an ACK for a 2xx is a transaction of its own"
    );
    assert_eq!(
        header_param(header(ack, "To").unwrap(), "tag"),
        Some("callee")
    );
    assert_eq!(header(ack, "CSeq"), Some("1 ACK"));
    match &events(&mut attempt)[..] {
        [AttemptEvent::Answered {
            answer,
            dialog,
            srtp: None,
        }] => {
            assert_eq!(answer, ANSWER_SDP.as_bytes());
            assert_eq!(dialog.remote_target, "sip:callee@127.0.0.1:7000");
            assert_eq!(dialog.local_cseq, 2);
        }
        other => panic!("{other:?}"),
    }
    attempt.handle_response(t0 + Duration::from_millis(1400), reply(&invite, 200, None));
    let again = sent(&mut attempt);
    assert_eq!(
        again.len(),
        1,
        "a retransmitted 2xx gets the same ACK again"
    );
    assert_eq!(again[0].to_string(), ack.to_string());
    assert!(
        events(&mut attempt).is_empty(),
        "and is not a second answer"
    );
    attempt.handle_timeout(t0 + Duration::from_millis(900) + Timers::default().timeout());
    assert!(attempt.is_finished());
}

fn challenged(code: u16, algorithm: &str) -> (Instant, InviteAttempt, Request, Request) {
    let mut t = trunk("a", 5080);
    t.credentials = Some(Credentials {
        username: "freya".into(),
        password: "secret".into(),
    });
    let (t0, mut attempt, invite) = start(t);
    let value =
        format!("Digest realm=\"trunk\", nonce=\"n0nce\", qop=\"auth\", algorithm={algorithm}");
    let challenge = if code == 401 {
        Header::WwwAuthenticate(value.into())
    } else {
        Header::ProxyAuthenticate(value.into())
    };
    attempt.handle_response(
        t0 + Duration::from_millis(40),
        reply(&invite, code, Some(challenge)),
    );
    let mut out = sent(&mut attempt);
    assert_eq!(
        out.len(),
        2,
        "the ACK of the challenge, then the new INVITE"
    );
    assert_eq!(out[0].method, Method::Ack);
    let retry = out.remove(1);
    (t0, attempt, invite, retry)
}

#[test]
fn a_401_is_answered_once_with_md5_digest_credentials() {
    let (t0, mut attempt, invite, retry) = challenged(401, "MD5");
    assert_eq!(retry.method, Method::Invite);
    assert_eq!(header(&retry, "CSeq"), Some("2 INVITE"));
    assert_eq!(
        header_param(header(&retry, "From").unwrap(), "tag"),
        header_param(header(&invite, "From").unwrap(), "tag"),
        "same dialog identifiers"
    );
    let auth = header(&retry, "Authorization").expect("Authorization");
    let cnonce = auth
        .split("cnonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let challenge =
        Challenge::parse("Digest realm=\"trunk\", nonce=\"n0nce\", qop=\"auth\"").unwrap();
    let creds = Credentials {
        username: "freya".into(),
        password: "secret".into(),
    };
    let expected = challenge.response(&creds, "INVITE", "sip:+15557777@127.0.0.1:5080", 1, cnonce);
    assert!(auth.contains(&format!("response=\"{expected}\"")), "{auth}");
    assert!(
        events(&mut attempt).is_empty(),
        "a challenge is not an outcome"
    );
    // A second challenge means the credentials are wrong.
    attempt.handle_response(
        t0 + Duration::from_millis(90),
        reply(
            &retry,
            401,
            Some(Header::WwwAuthenticate(
                "Digest realm=\"trunk\", nonce=\"x\"".to_owned().into(),
            )),
        ),
    );
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::Failed(AttemptFailure::AuthFailed {
            code: 401
        })]
    ));
}

#[test]
fn a_407_is_answered_with_sha_256_proxy_authorization() {
    let (t0, mut attempt, _, retry) = challenged(407, "SHA-256");
    let auth = header(&retry, "Proxy-Authorization").expect("Proxy-Authorization");
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    let response = auth
        .split("response=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(response.len(), 64, "a SHA-256 digest");
    assert_eq!(
        Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-256")
            .unwrap()
            .algorithm,
        Algorithm::Sha256
    );
    attempt.handle_response(t0 + Duration::from_millis(80), reply(&retry, 200, None));
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::Answered { .. }]
    ));
}

#[test]
fn a_challenge_without_credentials_fails_the_attempt() {
    let (t0, mut attempt, invite) = start(trunk("a", 5080));
    attempt.handle_response(t0, reply(&invite, 401, None));
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::Failed(AttemptFailure::AuthFailed {
            code: 401
        })]
    ));
}

#[test]
fn no_answer_in_time_after_ringing_sends_cancel_and_acks_the_487() {
    let (t0, mut attempt, invite) = start(trunk("a", 5080));
    attempt.handle_response(t0 + Duration::from_millis(100), reply(&invite, 180, None));
    events(&mut attempt);
    assert_eq!(attempt.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    attempt.handle_timeout(t0 + Duration::from_secs(10));
    let cancel = sent(&mut attempt);
    assert_eq!(cancel.len(), 1);
    assert_eq!(cancel[0].method, Method::Cancel);
    assert_eq!(
        TopVia::of(&cancel[0].headers).unwrap().branch(),
        TopVia::of(&invite.headers).unwrap().branch()
    );
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::Failed(AttemptFailure::NoAnswer {
            rang: true
        })]
    ));
    attempt.handle_response(
        t0 + Duration::from_millis(10_050),
        reply(&cancel[0], 200, None),
    );
    attempt.handle_response(
        t0 + Duration::from_millis(10_060),
        reply(&invite, 487, None),
    );
    let ack = sent(&mut attempt);
    assert_eq!(
        ack.iter().map(|r| r.method).collect::<Vec<_>>(),
        [Method::Ack]
    );
    assert!(events(&mut attempt).is_empty());
}

#[test]
fn giving_up_before_any_provisional_waits_for_one_before_cancelling() {
    let (t0, mut attempt, invite) = start(trunk("a", 5080));
    attempt.abandon(t0 + Duration::from_millis(200));
    assert!(
        sent(&mut attempt).is_empty(),
        "no CANCEL before a provisional response"
    );
    attempt.handle_response(t0 + Duration::from_millis(300), reply(&invite, 100, None));
    assert_eq!(sent(&mut attempt)[0].method, Method::Cancel);
}

#[test]
fn a_2xx_that_crosses_our_cancel_is_acked_and_reported_late() {
    let (t0, mut attempt, invite) = start(trunk("a", 5080));
    attempt.handle_response(t0, reply(&invite, 180, None));
    attempt.abandon(t0 + Duration::from_millis(100));
    events(&mut attempt);
    sent(&mut attempt);
    attempt.handle_response(t0 + Duration::from_millis(120), reply(&invite, 200, None));
    assert_eq!(sent(&mut attempt)[0].method, Method::Ack);
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::LateAnswer { .. }]
    ));
}

#[test]
fn a_silent_trunk_is_no_response_after_timer_b() {
    let mut t = trunk("a", 5080);
    t.invite_timeout = Duration::from_secs(120);
    let (t0, mut attempt, _) = start(t);
    let mut retransmits = 0;
    while let Some(at) = attempt.poll_timeout() {
        attempt.handle_timeout(at);
        retransmits += sent(&mut attempt).len();
        if at >= t0 + Timers::default().timeout() {
            break;
        }
    }
    assert_eq!(retransmits, 6, "timer A over UDP");
    assert!(matches!(
        events(&mut attempt)[..],
        [AttemptEvent::Failed(AttemptFailure::NoResponse)]
    ));
}

#[test]
fn over_tcp_the_invite_says_tcp_and_is_never_retransmitted() {
    let mut t = trunk("a", 5080);
    t.peer = Peer::tcp(t.peer.addr);
    t.invite_timeout = Duration::from_secs(120);
    let (t0, attempt, invite) = start(t);
    assert!(header(&invite, "Via").unwrap().starts_with("SIP/2.0/TCP"));
    assert_eq!(
        attempt.poll_timeout(),
        Some(t0 + Timers::default().timeout()),
        "timer B only"
    );
}

#[test]
fn failures_are_classified_for_failover_and_the_breaker() {
    let rejected = |code| AttemptFailure::Rejected {
        code,
        reason: "x".into(),
    };
    assert!(rejected(503).fails_over() && rejected(503).is_trunk_fault());
    assert!(rejected(408).fails_over() && rejected(408).is_trunk_fault());
    assert!(rejected(603).fails_over() && !rejected(603).is_trunk_fault());
    assert!(!rejected(486).fails_over() && rejected(486).is_busy());
    assert!(!rejected(600).fails_over() && rejected(600).is_busy());
    assert!(!rejected(404).fails_over());
    assert!(AttemptFailure::NoAnswer { rang: true }.fails_over());
    assert!(!AttemptFailure::NoAnswer { rang: true }.is_trunk_fault());
    assert!(AttemptFailure::NoResponse.is_trunk_fault());
}

#[test]
fn a_from_or_to_user_outside_the_sip_grammar_is_never_sent() {
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("a@evil.example", None, "From"),
        ("a>", None, "From"),
        ("+15550000", Some("x>\r\nVia: SIP/2.0/UDP evil"), "From"),
        ("+15550000", Some("bob@evil.example"), "From"),
        ("+15550000", None, "To"),
    ];
    for (from, caller_id, header) in cases {
        let mut request = call_request();
        request.from = from.into();
        if header == "To" {
            request.to = "1@evil.example>".into();
        }
        let mut carrier = trunk("t", 5070);
        carrier.caller_id = caller_id.map(str::to_owned);
        let refused = InviteAttempt::start(
            Instant::now(),
            carrier,
            request,
            "fromtag".into(),
            1,
            Timers::default(),
        );
        match refused {
            Err(AttemptFailure::Unsendable(why)) => {
                assert!(why.contains(header), "{from}/{caller_id:?}: {why}")
            }
            Err(other) => panic!("{from}/{caller_id:?}: {other:?}"),
            Ok(_) => panic!("{from}/{caller_id:?}: an INVITE was built"),
        }
    }
}

/// The values of every header called `name`, in order.
fn route_values(request: &Request, name: &str) -> Vec<String> {
    crate::dialog::route::header_values(&request.headers, name)
}

fn transmits(attempt: &mut InviteAttempt) -> Vec<(SocketAddr, Request)> {
    std::iter::from_fn(|| attempt.poll_transmit())
        .map(|o| (o.dest, request_of(&o)))
        .collect()
}

#[test]
fn the_route_set_is_the_2xx_record_route_reversed_and_the_ack_follows_it() {
    let (t0, mut attempt, invite) = start(trunk("a", 5080));
    let record_route = Header::RecordRoute(
        "<sip:127.0.0.8:5090;lr>, <sip:127.0.0.9:5091;lr>"
            .to_owned()
            .into(),
    );
    attempt.handle_response(t0, reply(&invite, 200, Some(record_route)));
    let acks = transmits(&mut attempt);
    let [(dest, ack)] = &acks[..] else {
        panic!("{acks:?}")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        *dest,
        SocketAddr::from(([127, 0, 0, 9], 5091)),
        "the proxy nearest us"
    );
    assert_eq!(ack.uri.to_string(), "sip:callee@127.0.0.1:7000");
    assert_eq!(
        route_values(ack, "Route"),
        ["<sip:127.0.0.9:5091;lr>", "<sip:127.0.0.8:5090;lr>"]
    );
    let dialog = events(&mut attempt)
        .into_iter()
        .find_map(|e| match e {
            AttemptEvent::Answered { dialog, .. } => Some(dialog),
            _ => None,
        })
        .expect("answered");
    assert_eq!(
        dialog.route_set,
        ["<sip:127.0.0.9:5091;lr>", "<sip:127.0.0.8:5090;lr>"]
    );
    assert_eq!(
        dialog.next_hop().addr,
        SocketAddr::from(([127, 0, 0, 9], 5091))
    );
}

#[test]
fn an_outbound_proxy_is_a_preloaded_route_on_the_invite_and_its_cancel() {
    let mut via_proxy = trunk("a", 5080);
    via_proxy.outbound_proxy = Some("sip:127.0.0.7:5070;lr".into());
    via_proxy.peer = Peer::udp(SocketAddr::from(([127, 0, 0, 7], 5070)));
    let t0 = Instant::now();
    let mut attempt = InviteAttempt::start(
        t0,
        via_proxy,
        call_request(),
        "fromtag".into(),
        1,
        Timers::default(),
    )
    .unwrap();
    let out = transmits(&mut attempt);
    let [(dest, invite)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(*dest, SocketAddr::from(([127, 0, 0, 7], 5070)));
    assert_eq!(
        invite.uri.to_string(),
        "sip:+15557777@127.0.0.1:5080",
        "loose: unchanged"
    );
    assert_eq!(route_values(invite, "Route"), ["<sip:127.0.0.7:5070;lr>"]);
    attempt.handle_response(t0, reply(invite, 180, None));
    attempt.abandon(t0 + Duration::from_secs(1));
    let cancels = transmits(&mut attempt);
    let (dest, cancel) = cancels
        .iter()
        .find(|(_, r)| r.method == Method::Cancel)
        .expect("CANCEL");
    assert_eq!(*dest, SocketAddr::from(([127, 0, 0, 7], 5070)));
    assert_eq!(route_values(cancel, "Route"), ["<sip:127.0.0.7:5070;lr>"]);
}

#[test]
fn a_strict_outbound_proxy_takes_the_request_uri() {
    let mut via_proxy = trunk("a", 5080);
    via_proxy.outbound_proxy = Some("sip:127.0.0.7:5070".into());
    let (_, _, invite) = start(via_proxy);
    assert_eq!(invite.uri.to_string(), "sip:127.0.0.7:5070");
    assert_eq!(
        route_values(&invite, "Route"),
        ["<sip:+15557777@127.0.0.1:5080>"]
    );
}

//! A registration driven by hand: the registrar's answers in, simulated time, REGISTERs and
//! status changes out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response};

use super::*;
use crate::digest::Credentials;
use crate::message::header_named;
use crate::peer::{Peer, Transport};
use crate::response::{build_response, status};
use crate::transaction::Timers;
use crate::uac::tests::request_of;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn settings() -> RegistrationSettings {
    RegistrationSettings {
        id: "pbx".into(),
        registrar: Peer::udp(addr(5070)),
        domain: "pbx.example".into(),
        user: "1001".into(),
        number: None,
        credentials: Some(Credentials {
            username: "1001".into(),
            password: "secret".into(),
        }),
        expires: Duration::from_secs(300),
        local: addr(5060),
        retry_base: Duration::from_secs(30),
        retry_max: Duration::from_secs(1800),
    }
}

fn sent(r: &mut Registration) -> Vec<Request> {
    std::iter::from_fn(|| r.poll_transmit())
        .map(|o| request_of(&o))
        .collect()
}

fn statuses(r: &mut Registration) -> Vec<RegistrationStatus> {
    std::iter::from_fn(|| r.poll_event())
        .map(|RegistrationEvent::Changed(s)| s)
        .collect()
}

fn answer(request: &Request, code: u16, extra: Vec<Header>) -> Response {
    let mut response = build_response(request, status(code, "Test"), Some("reg")).unwrap();
    response.headers.extend(extra);
    response
}

fn challenge(algorithm: &str, nonce: &str) -> Header {
    Header::WwwAuthenticate(
        format!(
            "Digest realm=\"pbx.example\", nonce=\"{nonce}\", qop=\"auth\", algorithm={algorithm}"
        )
        .into(),
    )
}

fn authorization(request: &Request) -> Option<String> {
    request.headers.iter().find_map(|h| match h {
        Header::Authorization(a) => Some(a.value().to_owned()),
        _ => None,
    })
}

fn cseq(request: &Request) -> String {
    header_named(&request.headers, "CSeq").unwrap_or_default()
}

#[test]
fn a_challenge_is_answered_with_sha256_when_offered_and_the_binding_is_refreshed_before_expiry() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    assert_eq!(first.uri.to_string(), "sip:pbx.example");
    assert_eq!(authorization(&first), None);
    let text = first.to_string();
    assert!(
        text.contains("Contact: <sip:1001@127.0.0.1:5060>;expires=300"),
        "{text}"
    );
    assert!(text.contains(";rport"), "{text}");
    // RFC 8760: both offered, SHA-256 first or not, SHA-256 is used.
    r.handle_response(
        t0,
        answer(
            &first,
            401,
            vec![challenge("MD5", "n1"), challenge("SHA-256", "n1")],
        ),
    );
    let second = sent(&mut r).remove(0);
    let auth = authorization(&second).expect("credentials");
    assert!(
        auth.contains("algorithm=SHA-256") && auth.contains("nc=00000001"),
        "{auth}"
    );
    assert_eq!(cseq(&second), "2 REGISTER");
    assert_eq!(
        header_named(&second.headers, "Call-ID"),
        header_named(&first.headers, "Call-ID")
    );
    let t1 = t0 + Duration::from_millis(20);
    r.handle_response(t1, answer(&second, 200, vec![Header::Expires(120.into())]));
    let status = statuses(&mut r).pop().expect("a status");
    assert_eq!(status.state, RegistrationState::Registered);
    assert_eq!(status.expires_at, Some(t1 + Duration::from_secs(120)));
    // Refreshed a minute before the 120 s expiry, with the last challenge's next nonce count.
    assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(60)));
    r.handle_timeout(t1 + Duration::from_secs(60));
    let refresh = sent(&mut r).remove(0);
    let auth = authorization(&refresh).expect("pre-emptive credentials");
    assert!(auth.contains("nc=00000002"), "{auth}");
    assert_eq!(cseq(&refresh), "3 REGISTER");
}

#[test]
fn a_second_401_after_our_answer_is_not_answered_again_and_backs_off() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    r.handle_response(t0, answer(&first, 401, vec![challenge("MD5", "n1")]));
    let second = sent(&mut r).remove(0);
    r.handle_response(t0, answer(&second, 401, vec![challenge("MD5", "n2")]));
    assert!(
        sent(&mut r).is_empty(),
        "the 401 loop guard: no third REGISTER now"
    );
    let status = r.status().clone();
    assert_eq!(status.state, RegistrationState::Failed);
    assert!(status
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("refused our credentials"));
    // Back-off: 30 s, then 60 s after the next failure.
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    let t1 = t0 + Duration::from_secs(30);
    r.handle_timeout(t1);
    let retry = sent(&mut r).remove(0);
    r.handle_response(t1, answer(&retry, 500, vec![]));
    assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(60)));
}

#[test]
fn a_stale_nonce_is_answered_again_without_counting_as_a_failure() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    r.handle_response(t0, answer(&first, 401, vec![challenge("MD5", "n1")]));
    let second = sent(&mut r).remove(0);
    let stale = Header::WwwAuthenticate(
        "Digest realm=\"pbx.example\", nonce=\"n2\", stale=true, algorithm=MD5"
            .to_owned()
            .into(),
    );
    r.handle_response(t0, answer(&second, 401, vec![stale]));
    let third = sent(&mut r).remove(0);
    assert!(authorization(&third)
        .expect("credentials")
        .contains("nonce=\"n2\""));
}

#[test]
fn a_403_stops_with_a_clear_error_and_nothing_is_retried() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    r.handle_response(t0, answer(&first, 403, vec![]));
    let status = r.status().clone();
    assert_eq!(status.state, RegistrationState::Stopped);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("403"),
        "{status:?}"
    );
    assert_eq!(r.poll_timeout(), None);
    r.handle_timeout(t0 + Duration::from_secs(3600));
    assert!(sent(&mut r).is_empty());
}

#[test]
fn a_silent_registrar_fails_after_timer_f_and_is_tried_again_after_the_backoff() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let mut now = t0;
    let mut registers = sent(&mut r).len();
    while r.status().state != RegistrationState::Failed {
        now = r.poll_timeout().expect("a timer");
        r.handle_timeout(now);
        registers += sent(&mut r).len();
        assert!(now < t0 + Duration::from_secs(60), "timer F ends it");
    }
    assert!(registers > 5, "retransmitted over UDP: {registers}");
    assert_eq!(
        now.duration_since(t0),
        Duration::from_secs(32),
        "timer F = 64*T1"
    );
    assert!(r
        .status()
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("no response"));
    assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(30)));
    r.handle_timeout(now + Duration::from_secs(30));
    let again = sent(&mut r).remove(0);
    r.handle_response(now, answer(&again, 200, vec![]));
    assert_eq!(r.status().state, RegistrationState::Registered);
}

#[test]
fn interval_too_brief_takes_min_expires_and_retry_after_lengthens_the_wait() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    let min = Header::Other("Min-Expires".into(), "600".into());
    r.handle_response(t0, answer(&first, 423, vec![min]));
    let second = sent(&mut r).remove(0);
    assert!(second.to_string().contains("Expires: 600"));
    let retry = Header::Other("Retry-After".into(), "120".into());
    r.handle_response(t0, answer(&second, 503, vec![retry]));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
}

#[test]
fn the_address_the_registrar_saw_becomes_the_contact() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    let mut ok = answer(&first, 200, vec![]);
    // The registrar stamps what it saw (RFC 3581): a NAT mapped us to 198.51.100.7:40000.
    for h in ok.headers.iter_mut() {
        if let Header::Via(via) = h {
            let value = via
                .value()
                .replace(";rport", ";rport=40000;received=198.51.100.7");
            *h = Header::Via(value.into());
        }
    }
    r.handle_response(t0, ok);
    let second = sent(&mut r).remove(0);
    assert!(
        second
            .to_string()
            .contains("Contact: <sip:1001@198.51.100.7:40000>"),
        "{second}"
    );
}

#[test]
fn over_tls_the_register_uses_sips_and_is_not_retransmitted() {
    let t0 = Instant::now();
    let mut s = settings();
    s.registrar = Peer::tls(addr(5071));
    let mut r = Registration::start(t0, s, Timers::default());
    let out = r.poll_transmit().expect("REGISTER");
    assert_eq!(out.transport, Transport::Tls);
    let text = String::from_utf8_lossy(&out.bytes).into_owned();
    assert!(
        text.starts_with("REGISTER sips:pbx.example SIP/2.0"),
        "{text}"
    );
    assert!(
        text.contains("Via: SIP/2.0/TLS") && text.contains(";alias"),
        "{text}"
    );
    r.handle_timeout(t0 + Duration::from_secs(4));
    assert!(r.poll_transmit().is_none(), "reliable: no retransmission");
    r.handle_transport_error(t0 + Duration::from_secs(5));
    assert_eq!(r.status().state, RegistrationState::Failed);
}

#[test]
fn unregistering_sends_expires_zero_and_stops() {
    let t0 = Instant::now();
    let mut r = Registration::start(t0, settings(), Timers::default());
    let first = sent(&mut r).remove(0);
    r.handle_response(t0, answer(&first, 200, vec![]));
    r.unregister(t0);
    let bye = sent(&mut r).remove(0);
    assert!(bye.to_string().contains("Expires: 0"));
    r.handle_response(t0, answer(&bye, 200, vec![]));
    assert_eq!(r.status().state, RegistrationState::Stopped);
    assert_eq!(
        r.poll_timeout()
            .filter(|at| *at > t0 + Duration::from_secs(10)),
        None
    );
}

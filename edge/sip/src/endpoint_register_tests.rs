//! Registrations inside the endpoint: REGISTERs leave through its transmits from our address
//! on the registrar's transport, responses reach them by Call-ID, status changes come out as
//! events, and a failed connection to a TLS registrar fails the REGISTER in flight.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::digest::Credentials;
use crate::register::{RegistrationSettings, RegistrationState};
use crate::response::{build_response, status};
use crate::uac::tests::request_of;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn settings(registrar: Peer) -> RegistrationSettings {
    RegistrationSettings {
        id: "pbx".into(),
        registrar,
        domain: "127.0.0.1".into(),
        user: "1001".into(),
        number: None,
        credentials: Some(Credentials {
            username: "1001".into(),
            password: "pw".into(),
        }),
        expires: Duration::from_secs(300),
        local: SocketAddr::from(([0, 0, 0, 0], 0)),
        retry_base: Duration::from_secs(30),
        retry_max: Duration::from_secs(600),
    }
}

fn states(ep: &mut SipEndpoint) -> Vec<RegistrationState> {
    std::iter::from_fn(|| ep.poll_event())
        .filter_map(|e| match e {
            EndpointEvent::Registration { status, .. } => Some(status.state),
            _ => None,
        })
        .collect()
}

#[test]
fn a_registration_is_challenged_answered_and_registered_through_the_endpoint() {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.register(t0, settings(Peer::udp(addr(5070))));
    let out = ep.poll_transmit().expect("REGISTER");
    assert_eq!((out.transport, out.dest), (Transport::Udp, addr(5070)));
    let register = request_of(&out);
    assert!(register
        .to_string()
        .contains("Contact: <sip:1001@127.0.0.1:5060>"));
    let mut challenge = build_response(&register, status(401, "Unauthorized"), Some("r")).unwrap();
    challenge.headers.push(Header::WwwAuthenticate(
        "Digest realm=\"x\", nonce=\"n\", algorithm=MD5"
            .to_owned()
            .into(),
    ));
    ep.handle_datagram(t0, addr(5070), challenge.to_string().as_bytes());
    let again = request_of(&ep.poll_transmit().expect("REGISTER with credentials"));
    let ok = build_response(&again, status(200, "OK"), Some("r")).unwrap();
    ep.handle_datagram(t0, addr(5070), ok.to_string().as_bytes());
    assert_eq!(states(&mut ep).last(), Some(&RegistrationState::Registered));
    let status = ep.registration_status("pbx").expect("status");
    assert_eq!(status.expires_at, Some(t0 + Duration::from_secs(300)));
    // The refresh is the endpoint's next deadline.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(240)));
    ep.handle_timeout(t0 + Duration::from_secs(240));
    assert!(ep.poll_transmit().is_some(), "the refresh goes out");
}

#[test]
fn a_tls_registrar_that_cannot_be_reached_fails_at_once_and_the_same_settings_do_not_restart() {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.set_tls_address(addr(5061));
    ep.register(t0, settings(Peer::tls(addr(5071))));
    let out = ep.poll_transmit().expect("REGISTER");
    assert_eq!(out.transport, Transport::Tls);
    assert!(String::from_utf8_lossy(&out.bytes).contains("Contact: <sips:1001@127.0.0.1:5061>"));
    ep.register(t0, settings(Peer::tls(addr(5071))));
    assert!(
        ep.poll_transmit().is_none(),
        "unchanged settings keep the registration"
    );
    ep.handle_connection_failed(t0, Peer::tls(addr(5071)));
    assert_eq!(states(&mut ep).last(), Some(&RegistrationState::Failed));
    ep.stop_registration(t0, "pbx");
    assert!(ep.registration_ids().is_empty());
}

#[test]
fn an_invite_to_the_registered_contact_is_routed_by_its_to_or_the_registrations_number() {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr(5060), Timers::default());
    ep.register(t0, settings(Peer::udp(addr(5070))));
    while ep.poll_transmit().is_some() {}
    let invite = |to: &str| {
        format!(
            "INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{to}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15551234@pbx>;tag=a\r\nTo: <sip:{to}@pbx>\r\n\
             Call-ID: reg-call-{to}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@127.0.0.1:5070>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let dialled = |ep: &mut SipEndpoint| {
        std::iter::from_fn(|| ep.poll_event()).find_map(|e| match e {
            EndpointEvent::IncomingCall(call) => Some(call.dialled),
            _ => None,
        })
    };
    ep.handle_datagram(t0, addr(5070), invite("4420").as_bytes());
    assert_eq!(dialled(&mut ep).as_deref(), Some("4420"));
    let mut with_number = settings(Peer::udp(addr(5070)));
    with_number.number = Some("support".into());
    ep.register(t0, with_number);
    ep.handle_datagram(t0, addr(5070), invite("4421").as_bytes());
    assert_eq!(dialled(&mut ep).as_deref(), Some("support"));
}

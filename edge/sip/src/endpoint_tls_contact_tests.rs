//! Our Contact in a dialog that arrived over TLS (RFC 3261 section 12.1.1, RFC 5630): `sips:`
//! only when the INVITE's Request-URI was `sips:`; a `sip:` INVITE that merely travelled over
//! TLS gets `sip:...;transport=tls`, which phones that cannot dial `sips:` (baresip) reach.

use std::time::Instant;

use super::tests::{addr, events, sent};
use super::*;

const TLS_LOCAL: &str = "127.0.0.1:5061";
const CALLER: &str = "127.0.0.1:40010";

fn invite_over_tls(scheme: &str, call_id: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\n";
    format!(
        "INVITE {scheme}:demo@{TLS_LOCAL} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {CALLER};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <{scheme}:+15550001@127.0.0.1>;tag=caller1\r\n\
         To: <{scheme}:demo@{TLS_LOCAL}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <{scheme}:caller@{CALLER};transport=tls>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn contact_of_answer(scheme: &str) -> String {
    let t0 = Instant::now();
    let mut ep = SipEndpoint::new(addr("127.0.0.1:5060"), Timers::default());
    ep.set_tls_address(addr(TLS_LOCAL));
    let peer = Peer {
        transport: Transport::Tls,
        addr: addr(CALLER),
    };
    ep.handle_message(t0, peer, &invite_over_tls(scheme, "tls-1"));
    events(&mut ep);
    ep.ring(t0, "tls-1");
    ep.answer(t0, "tls-1", "v=0\r\n".into());
    let out = sent(&mut ep);
    let ringing = out
        .iter()
        .find(|m| m.starts_with("SIP/2.0 180"))
        .expect("a 180");
    let ok = out
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .expect("a 200");
    let contact = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Contact:"))
            .map(str::to_owned)
            .expect("a Contact")
    };
    assert_eq!(contact(ringing), contact(ok), "180 and 200 agree");
    contact(ok)
}

#[test]
fn a_sip_invite_over_tls_is_answered_with_a_sip_contact_naming_tls() {
    assert_eq!(
        contact_of_answer("sip"),
        "Contact: <sip:127.0.0.1:5061;transport=tls>"
    );
}

#[test]
fn a_sips_invite_is_answered_with_a_sips_contact() {
    assert_eq!(contact_of_answer("sips"), "Contact: <sips:127.0.0.1:5061>");
}

//! IPv6 references (`[2001:db8::1]:5060`, RFC 3261 section 25.1) in SIP text, around rsip 0.4,
//! whose URI parser splits host from port at the first colon and so cannot read one.
//!
//! A message's start line and headers are handed to rsip with each reference's colons written
//! as `-` (`[2001-db8--1]:5060`: rsip keeps it as a domain name, and it is no valid SIP host,
//! so nothing a peer could send means the same), and every message we serialize
//! (`response::to_bytes`) gets its colons back. Code that reads an address out of a parsed
//! header (`via.rs`) calls [`decode`] first. Bodies are left alone: SDP writes IPv6 without
//! brackets.

use std::borrow::Cow;
use std::net::Ipv6Addr;

/// `text` with the colons of every bracketed IPv6 address written as `-`.
pub fn encode(text: &str) -> Cow<'_, str> {
    rewrite(text, ':', '-')
}

/// `text` with every reference [`encode`] rewrote given its colons back.
pub fn decode(text: &str) -> Cow<'_, str> {
    rewrite(text, '-', ':')
}

/// Replaces `from` with `to` inside each `[...]` whose content, written with colons, is an
/// IPv6 address; borrowed when there is none.
fn rewrite(text: &str, from: char, to: char) -> Cow<'_, str> {
    if !text.contains('[') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let (before, tail) = rest.split_at(open + 1);
        out.push_str(before);
        let Some(close) = tail.find(']') else {
            rest = tail;
            break;
        };
        let inner = tail.get(..close).unwrap_or_default();
        let rewritten = inner.replace(from, &to.to_string());
        let with_colons = if from == ':' {
            inner
        } else {
            rewritten.as_str()
        };
        if inner.contains(from) && with_colons.parse::<Ipv6Addr>().is_ok() {
            out.push_str(&rewritten);
            changed = true;
        } else {
            out.push_str(inner);
        }
        rest = tail.get(close..).unwrap_or_default();
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// The head (start line and headers) and the rest from its blank line on.
pub fn split_head(message: &str) -> (&str, &str) {
    match message.find("\r\n\r\n") {
        Some(end) => message.split_at(end),
        None => (message, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_everything_else_is_untouched() {
        let line = "INVITE sip:demo@[2001:db8::1]:5060 SIP/2.0";
        let encoded = encode(line);
        assert_eq!(encoded, "INVITE sip:demo@[2001-db8--1]:5060 SIP/2.0");
        assert_eq!(decode(&encoded), line);
        for plain in [
            "sip:demo@192.0.2.1:5060",
            "Warning: 305 [not-an-address] \"x\"",
            "[1-2] [::1",
            "[v6:not:an:address]",
        ] {
            assert!(matches!(encode(plain), Cow::Borrowed(_)), "{plain}");
            assert!(matches!(decode(plain), Cow::Borrowed(_)), "{plain}");
        }
        assert_eq!(
            encode("Via: SIP/2.0/UDP [::1]:5062;received=::1, SIP/2.0/UDP [fe80::1]"),
            "Via: SIP/2.0/UDP [--1]:5062;received=::1, SIP/2.0/UDP [fe80--1]"
        );
    }

    #[test]
    fn an_invite_over_ipv6_reaches_the_endpoint_and_its_answer_keeps_the_brackets() {
        use crate::endpoint::{EndpointEvent, SipEndpoint};
        use crate::Timers;
        use std::net::SocketAddr;
        use std::time::Instant;
        let edge: SocketAddr = "[::1]:5060".parse().expect("addr");
        let caller: SocketAddr = "[::1]:5062".parse().expect("addr");
        let sdp = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let invite = format!(
            "INVITE sip:demo@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {caller};branch=z9hG4bKv6;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{caller}>;tag=a\r\nTo: <sip:demo@{edge}>\r\n\
             Call-ID: v6call\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{caller}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let mut ep = SipEndpoint::new(edge, Timers::default());
        let t0 = Instant::now();
        ep.handle_datagram(t0, caller, invite.as_bytes());
        let call = match ep.poll_event() {
            Some(EndpointEvent::IncomingCall(call)) => call,
            other => panic!("{other:?}"),
        };
        assert_eq!(call.dialled, "demo");
        ep.answer(t0, &call.call_id, sdp.to_owned());
        let ok = std::iter::from_fn(|| ep.poll_transmit())
            .find(|t| t.bytes.starts_with(b"SIP/2.0 200"))
            .expect("200 OK");
        assert_eq!(ok.dest, caller);
        let text = String::from_utf8_lossy(&ok.bytes);
        assert!(
            text.contains("Via: SIP/2.0/UDP [::1]:5062;branch=z9hG4bKv6;rport=5062;received=::1"),
            "{text}"
        );
        assert!(text.contains("<sip:[::1]:5060>"), "{text}");
        assert!(text.contains("To: <sip:demo@[::1]:5060>;tag="), "{text}");
    }
}

//! Building a response to a request, as RFC 3261 section 8.2.6 describes.
//!
//! A response copies the request's Via headers (in order, so it retraces the request's path),
//! From, To, Call-ID and CSeq, and adds a To-tag unless the request already had one or the
//! response is a 100 Trying. Call [`crate::via::stamp_received`] on the request as it
//! arrives so that the copied top Via carries `received` / `rport`.
//!
//! A response that creates or confirms a dialog (a 101-299 to an INVITE, re-INVITEs included)
//! also copies the request's Record-Route headers in order (RFC 3261 section 12.1.1): that is
//! how the caller learns the route set the proxies asked for, and sends its ACK and BYE
//! through them.

use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response, StatusCode};

use crate::message::{header_param, SipError};

/// A status code with our own reason phrase (rsip's default phrases are Rust identifiers).
pub fn status(code: u16, reason: &str) -> StatusCode {
    StatusCode::Other(code, reason.to_owned())
}

/// A fresh random tag for a To or From header.
pub fn new_tag() -> String {
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// Builds a response to `request`: copies Via, From, To, Call-ID and CSeq, and puts `to_tag` on
/// the To header if it has no tag yet (never on a 100); a 101-299 to an INVITE copies its
/// Record-Route headers too. Fails only if the request has no Via,
/// since a response without one cannot be routed.
pub fn build_response(
    request: &Request,
    status: StatusCode,
    to_tag: Option<&str>,
) -> Result<Response, SipError> {
    let mut headers = rsip::Headers::default();
    let dialog_creating =
        request.method == rsip::Method::Invite && (101..300).contains(&status.code());
    for header in request.headers.iter() {
        match header {
            Header::RecordRoute(_) if dialog_creating => headers.push(header.clone()),
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) => {
                let value = to.value();
                let tagged = match to_tag {
                    Some(tag) if status.code() != 100 && header_param(value, "tag").is_none() => {
                        rsip::headers::To::new(format!("{value};tag={tag}"))
                    }
                    _ => to.clone(),
                };
                headers.push(Header::To(tagged));
            }
            _ => {}
        }
    }
    if !headers.iter().any(|h| matches!(h, Header::Via(_))) {
        return Err(SipError::MissingHeader("Via"));
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Ok(Response {
        status_code: status,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    })
}

/// Builds the 400 that answers a request refused by [`crate::message::validate`]; the
/// reason phrase names the fault (e.g. `400 Missing Call-ID header`).
pub fn bad_request(request: &Request, error: &SipError) -> Result<Response, SipError> {
    let reason = match error {
        SipError::MissingHeader(h) => format!("Missing {h} header"),
        SipError::InvalidHeader { header, .. } => format!("Invalid {header} header"),
        _ => "Bad Request".to_owned(),
    };
    build_response(request, status(400, &reason), Some(&new_tag()))
}

/// Sets a response's body and its Content-Type and Content-Length headers.
pub fn set_body(response: &mut Response, content_type: &str, body: Vec<u8>) {
    response
        .headers
        .retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    response
        .headers
        .push(Header::ContentType(rsip::headers::ContentType::new(
            content_type,
        )));
    response
        .headers
        .push(Header::ContentLength(rsip::headers::ContentLength::new(
            body.len().to_string(),
        )));
    response.body = body;
}

/// Serializes a message for the wire.
pub fn to_bytes(message: impl Into<rsip::SipMessage>) -> Vec<u8> {
    let text = message.into().to_string();
    // IPv6 references were parsed in rsip's spelling (`ipv6_ref.rs`): give them their colons.
    let (head, rest) = super::ipv6_ref::split_head(&text);
    match super::ipv6_ref::decode(head) {
        std::borrow::Cow::Owned(head) => head + rest,
        std::borrow::Cow::Borrowed(_) => text,
    }
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_message, parse_unvalidated, tests::INVITE, validate};
    use crate::via::{stamp_received, TopVia};
    use rsip::SipMessage;

    fn invite() -> Request {
        match parse_message(INVITE.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn to_value(response: &Response) -> String {
        response
            .headers
            .iter()
            .find_map(|h| match h {
                Header::To(t) => Some(t.value().to_owned()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_to_tag() {
        let mut req = invite();
        stamp_received(&mut req, "203.0.113.7:40000".parse().unwrap()).unwrap();
        let resp = build_response(&req, status(180, "Ringing"), Some("abc")).unwrap();
        assert_eq!(header_param(&to_value(&resp), "tag"), Some("abc"));
        let via = TopVia::of(&resp.headers).unwrap();
        assert_eq!(via.param("rport"), Some(Some("40000")));
        let bytes = to_bytes(resp);
        let reparsed = parse_message(&bytes).expect("our response parses");
        assert!(matches!(reparsed, SipMessage::Response(ref r) if r.status_code.code() == 180));
    }

    #[test]
    fn trying_has_no_to_tag() {
        let resp = build_response(&invite(), status(100, "Trying"), Some("abc")).unwrap();
        assert_eq!(header_param(&to_value(&resp), "tag"), None);
    }

    #[test]
    fn request_missing_call_id_gets_a_400_naming_it() {
        let raw: String = INVITE
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("Call-ID:"))
            .collect();
        let Ok(SipMessage::Request(req)) = parse_unvalidated(raw.as_bytes()) else {
            panic!()
        };
        let err = validate(&SipMessage::Request(req.clone())).unwrap_err();
        let resp = bad_request(&req, &err).unwrap();
        assert_eq!(resp.status_code.code(), 400);
        assert!(String::from_utf8(to_bytes(resp))
            .unwrap()
            .starts_with("SIP/2.0 400 Missing Call-ID header\r\n"));
    }
}

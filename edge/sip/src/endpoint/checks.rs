//! What a new request must satisfy before the endpoint acts on it (RFC 3261 sections 8.2.1 to
//! 8.2.3), each failure answered with the status that tells the sender what to change: a
//! Request-URI scheme we serve (416), no `Require`d extension we lack (420, listing them in
//! `Unsupported`), a body we can read (415, with `Accept`). RFC 4475's `novelsc`, `bext01` and
//! `invut` are the torture cases for these. A request whose method rsip cannot even parse (any
//! token is a legal method: `intmeth`, `esc02`) gets 501 from its raw header lines.

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request};

use super::ALLOW;
use crate::message::header_named;
use crate::response::{build_response, new_tag, status};

/// Option tags we support (`Require: timer` is RFC 4028).
pub const SUPPORTED: &[&str] = &["timer"];

/// The refusal a new request deserves, if any: `(code, reason, extra headers)`. ACK and CANCEL
/// are never refused here (RFC 3261 section 8.2.2.3).
pub fn refusal(request: &Request) -> Option<rsip::Response> {
    if matches!(request.method, Method::Ack | Method::Cancel) {
        return None;
    }
    let scheme = request.uri.to_string();
    let scheme = scheme
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (code, reason, extra): (u16, &str, Vec<Header>) =
        if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
            (416, "Unsupported URI Scheme", Vec::new())
        } else if let Some(unsupported) = unsupported_extensions(request) {
            let header = Header::Other("Unsupported".into(), unsupported.join(", "));
            (420, "Bad Extension", vec![header])
        } else if request.method == Method::Invite && !request.body.is_empty() && !is_sdp(request) {
            let header = Header::Accept("application/sdp".into());
            (415, "Unsupported Media Type", vec![header])
        } else {
            return None;
        };
    let mut response = build_response(request, status(code, reason), Some(&new_tag())).ok()?;
    response.headers.extend(extra);
    Some(response)
}

/// The `Require`d option tags we do not support, if any.
fn unsupported_extensions(request: &Request) -> Option<Vec<String>> {
    let unsupported: Vec<String> = request
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Require(r) => Some(r.value().to_owned()),
            _ => None,
        })
        .flat_map(|value| {
            value
                .split(',')
                .map(|t| t.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|tag| !tag.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .collect();
    (!unsupported.is_empty()).then_some(unsupported)
}

fn is_sdp(request: &Request) -> bool {
    header_named(&request.headers, "Content-Type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    })
}

/// 501 Not Implemented for a request rsip could not parse because of its method — a
/// well-formed request line whose method is a token rsip does not name — written from the
/// request's own Via, From, To, Call-ID and CSeq lines. `None` when the bytes are not such a
/// request (then they are garbage, and dropped).
pub fn not_implemented(bytes: &[u8]) -> Option<Vec<u8>> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(bytes.get(..head_end)?).ok();
    // Header values may hold any UTF-8 (or worse, see `intmeth`); work on lossy text.
    let head = match head {
        Some(text) => text.to_owned(),
        None => String::from_utf8_lossy(bytes.get(..head_end)?).into_owned(),
    };
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let mut parts = start.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
    let known = [
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "INFO",
        "NOTIFY",
        "UPDATE",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "MESSAGE",
        "PRACK",
        "PUBLISH",
    ];
    if parts.next().is_some()
        || version != "SIP/2.0"
        || !uri.contains(':')
        || method.is_empty()
        || !method.bytes().all(token)
        || known.contains(&method)
    {
        return None;
    }
    // Unfold continuation lines, then keep the five headers a response copies.
    let mut unfolded: Vec<String> = Vec::new();
    for line in lines {
        match (line.starts_with([' ', '\t']), unfolded.last_mut()) {
            (true, Some(last)) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => unfolded.push(line.to_owned()),
        }
    }
    let named = |names: &[&str]| -> Vec<String> {
        unfolded
            .iter()
            .filter_map(|line| {
                let (n, v) = line.split_once(':')?;
                names
                    .iter()
                    .any(|name| n.trim().eq_ignore_ascii_case(name))
                    .then(|| v.trim().to_owned())
            })
            .collect()
    };
    let vias = named(&["Via", "v"]);
    let from = named(&["From", "f"]).into_iter().next()?;
    let mut to = named(&["To", "t"]).into_iter().next()?;
    let call_id = named(&["Call-ID", "i"]).into_iter().next()?;
    let cseq = named(&["CSeq"]).into_iter().next()?;
    if vias.is_empty() {
        return None;
    }
    if !to.to_ascii_lowercase().contains(";tag=") {
        to = format!("{to};tag={}", new_tag());
    }
    let mut response = String::from("SIP/2.0 501 Not Implemented\r\n");
    for via in vias {
        response.push_str(&format!("Via: {via}\r\n"));
    }
    response.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nAllow: {ALLOW}\r\n\
         Content-Length: 0\r\n\r\n"
    ));
    Some(response.into_bytes())
}

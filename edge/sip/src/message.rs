//! Turns one datagram (or one framed TCP message) into an [`rsip::SipMessage`], or into a
//! [`SipError`] that names what is wrong with it.
//!
//! rsip tokenizes and serializes; the checks RFC 3261 asks of a receiver are ours: a size cap, a
//! well-formed start line, a body that matches Content-Length (section 18.3), and the five headers
//! every request and response carries (section 8.1.1). Before handing the bytes to rsip we unfold
//! continuation lines and expand compact header names (`v`, `i`, `f`, ...), which rsip does not
//! know. Parsing is split in two so that a request that parses but lacks a header can still be
//! answered with a 400: [`parse_unvalidated`], then [`validate`].

use rsip::{Header, Headers, SipMessage};
use thiserror::Error;

/// Largest message we accept, in bytes; anything bigger is refused unread.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// What is wrong with a SIP message; each variant names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SipError {
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    #[error("message of {0} bytes exceeds the 64 KiB limit")]
    Oversized(usize),
    /// The message has no blank line ending its headers.
    #[error("message has no empty line ending its headers")]
    MissingHeaderEnd,
    /// The first line is neither `METHOD uri SIP/2.0` nor `SIP/2.0 code reason`.
    #[error("bad start line: {0}")]
    BadStartLine(String),
    /// A mandatory header is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but its value cannot be understood.
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        /// The header at fault, by its full name.
        header: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A header line has no `name:` part.
    #[error("malformed header line {0}")]
    MalformedHeaderLine(usize),
    /// Content-Length does not match the bytes after the headers.
    #[error("Content-Length says {declared} bytes but the body has {actual}")]
    ContentLengthMismatch {
        /// The value of the Content-Length header.
        declared: usize,
        /// The bytes actually present after the blank line.
        actual: usize,
    },
    /// The top Via's branch lacks the RFC 3261 `z9hG4bK` magic cookie.
    #[error("Via branch {0:?} lacks the z9hG4bK magic cookie")]
    LegacyBranch(String),
    /// rsip refused the message after our own checks passed.
    #[error("unparsable message: {0}")]
    Unparsable(String),
}

/// Parses and validates a message: the usual entry point for incoming bytes.
pub fn parse_message(bytes: &[u8]) -> Result<SipMessage, SipError> {
    let message = parse_unvalidated(bytes)?;
    validate(&message)?;
    Ok(message)
}

/// Parses a message without requiring the mandatory headers, so that a request missing one can
/// still be answered (see [`crate::response::bad_request`]).
pub fn parse_unvalidated(bytes: &[u8]) -> Result<SipMessage, SipError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(SipError::Oversized(bytes.len()));
    }
    let head_end = find(bytes, b"\r\n\r\n").ok_or(SipError::MissingHeaderEnd)?;
    let head = bytes.get(..head_end).unwrap_or_default();
    let body = bytes.get(head_end + 4..).unwrap_or_default();
    let (start_line, header_block) = match find(head, b"\r\n") {
        Some(i) => (
            head.get(..i).unwrap_or_default(),
            head.get(i + 2..).unwrap_or_default(),
        ),
        None => (head, &[][..]),
    };
    check_start_line(start_line)?;

    let mut normalized = Vec::with_capacity(bytes.len() + 64);
    normalized.extend_from_slice(start_line);
    normalized.extend_from_slice(b"\r\n");
    let mut content_length = None;
    for (index, line) in unfolded_lines(header_block).enumerate() {
        let (name, value) = line
            .iter()
            .position(|&b| b == b':')
            .map(|colon| line.split_at(colon))
            .ok_or(SipError::MalformedHeaderLine(index + 1))?;
        let name = trim(name);
        let value = trim(value.get(1..).unwrap_or_default());
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(SipError::MalformedHeaderLine(index + 1));
        }
        let name = expand_compact_name(name);
        if name.eq_ignore_ascii_case(b"Content-Length") {
            content_length = Some(parse_content_length(value)?);
        }
        normalized.extend_from_slice(name);
        normalized.extend_from_slice(b": ");
        normalized.extend_from_slice(value);
        normalized.extend_from_slice(b"\r\n");
    }
    if let Some(declared) = content_length {
        if declared != body.len() {
            return Err(SipError::ContentLengthMismatch {
                declared,
                actual: body.len(),
            });
        }
    }
    normalized.extend_from_slice(b"\r\n");
    // rsip cannot read an IPv6 reference in a URI; see `ipv6_ref.rs`.
    if let Some(std::borrow::Cow::Owned(head)) = std::str::from_utf8(&normalized)
        .ok()
        .map(super::ipv6_ref::encode)
    {
        normalized = head.into_bytes();
    }
    normalized.extend_from_slice(body);
    SipMessage::try_from(normalized.as_slice()).map_err(|e| SipError::Unparsable(e.to_string()))
}

/// Checks the headers every request and response must carry (RFC 3261 section 8.1.1): Via,
/// From, To, Call-ID and CSeq, and that CSeq is a number and a method.
pub fn validate(message: &SipMessage) -> Result<(), SipError> {
    let headers = match message {
        SipMessage::Request(r) => &r.headers,
        SipMessage::Response(r) => &r.headers,
    };
    if !headers.iter().any(|h| matches!(h, Header::Via(_))) {
        return Err(SipError::MissingHeader("Via"));
    }
    crate::via::TopVia::of(headers)?;
    if !headers.iter().any(|h| matches!(h, Header::From(_))) {
        return Err(SipError::MissingHeader("From"));
    }
    if !headers.iter().any(|h| matches!(h, Header::To(_))) {
        return Err(SipError::MissingHeader("To"));
    }
    call_id(headers)?;
    let (_, cseq_method) = cseq(headers)?;
    if let SipMessage::Request(request) = message {
        if cseq_method != request.method {
            return Err(SipError::InvalidHeader {
                header: "CSeq",
                reason: format!("method {cseq_method} differs from {}", request.method),
            });
        }
    }
    Ok(())
}

/// The Call-ID of a message.
pub fn call_id(headers: &Headers) -> Result<&str, SipError> {
    headers
        .iter()
        .find_map(|h| match h {
            Header::CallId(v) => Some(rsip::headers::UntypedHeader::value(v).trim()),
            _ => None,
        })
        .ok_or(SipError::MissingHeader("Call-ID"))
}

/// The CSeq of a message as (sequence number, method).
pub fn cseq(headers: &Headers) -> Result<(u32, rsip::Method), SipError> {
    let value = headers
        .iter()
        .find_map(|h| match h {
            Header::CSeq(v) => Some(rsip::headers::UntypedHeader::value(v)),
            _ => None,
        })
        .ok_or(SipError::MissingHeader("CSeq"))?;
    let invalid = |reason: &str| SipError::InvalidHeader {
        header: "CSeq",
        reason: format!("{reason}: {value:?}"),
    };
    let mut parts = value.split_whitespace();
    let number = parts
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| invalid("no sequence number"))?;
    let method = parts
        .next()
        .and_then(|m| m.parse::<rsip::Method>().ok())
        .ok_or_else(|| invalid("unknown method"))?;
    Ok((number, method))
}

/// The value of `param` (e.g. `tag`) in a From/To-style header value, outside any `<uri>`.
pub fn header_param<'a>(value: &'a str, param: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(end) => value.get(end + 1..)?,
        None => value.split_once(';').map(|(_, p)| p)?,
    };
    params.split(';').find_map(|p| {
        let (name, v) = p.split_once('=').unwrap_or((p, ""));
        name.trim().eq_ignore_ascii_case(param).then_some(v.trim())
    })
}

/// The value of the first header called `name` (case-insensitive), whether rsip types it or
/// not: for the headers of RFC 3515 and RFC 4028 (`Event`, `Session-Expires`, `Min-SE`...).
pub fn header_named(headers: &Headers, name: &str) -> Option<String> {
    headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, value) = text.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Whether any header called `name` lists `token` (`Supported: timer`, `Allow: UPDATE`).
pub fn header_lists(headers: &Headers, name: &str, token: &str) -> bool {
    headers.iter().any(|h| {
        let text = h.to_string();
        text.split_once(':').is_some_and(|(n, value)| {
            n.trim().eq_ignore_ascii_case(name)
                && value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    })
}

fn check_start_line(line: &[u8]) -> Result<(), SipError> {
    let text =
        std::str::from_utf8(line).map_err(|_| SipError::BadStartLine("not UTF-8".to_owned()))?;
    let bad = |why: &str| SipError::BadStartLine(format!("{why}: {:?}", truncated(text)));
    if let Some(rest) = text.strip_prefix("SIP/2.0 ") {
        let code = rest.get(..3).ok_or_else(|| bad("no status code"))?;
        let after = rest.get(3..).unwrap_or("");
        if !code.bytes().all(|b| b.is_ascii_digit())
            || !(after.is_empty() || after.starts_with(' '))
        {
            return Err(bad("status code is not three digits"));
        }
        if !(100..700).contains(&code.parse::<u16>().unwrap_or(0)) {
            return Err(bad("status code out of range"));
        }
        return Ok(());
    }
    let mut parts = text.split(' ');
    let (method, uri, version) = (parts.next(), parts.next(), parts.next());
    match (method, uri, version, parts.next()) {
        (Some(m), Some(u), Some("SIP/2.0"), None)
            if !m.is_empty() && m.bytes().all(is_token) && u.contains(':') =>
        {
            Ok(())
        }
        (_, _, Some(v), None) if v != "SIP/2.0" => Err(bad("unsupported version")),
        _ => Err(bad("expected `METHOD uri SIP/2.0`")),
    }
}

fn truncated(text: &str) -> &str {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

fn parse_content_length(value: &[u8]) -> Result<usize, SipError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .ok_or_else(|| SipError::InvalidHeader {
            header: "Content-Length",
            reason: format!("not a number: {:?}", String::from_utf8_lossy(value)),
        })
}

/// Header lines with RFC 3261 line folding (a line starting with SP/HT continues the previous
/// one) undone; each yielded line owns its bytes.
fn unfolded_lines(block: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut lines = block.split(|&b| b == b'\n').peekable();
    std::iter::from_fn(move || loop {
        let first = lines.next()?;
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        if first.is_empty() {
            continue;
        }
        let mut line = first.to_vec();
        while let Some(next) = lines.next_if(|l| matches!(l.first(), Some(b' ' | b'\t'))) {
            line.push(b' ');
            line.extend_from_slice(trim(next.strip_suffix(b"\r").unwrap_or(next)));
        }
        return Some(line);
    })
}

fn expand_compact_name(name: &[u8]) -> &[u8] {
    match name {
        [c] => match c.to_ascii_lowercase() {
            b'i' => b"Call-ID",
            b'm' => b"Contact",
            b'e' => b"Content-Encoding",
            b'l' => b"Content-Length",
            b'c' => b"Content-Type",
            b'f' => b"From",
            b's' => b"Subject",
            b'k' => b"Supported",
            b'o' => b"Event",
            b'r' => b"Refer-To",
            b'b' => b"Referred-By",
            b'x' => b"Session-Expires",
            b't' => b"To",
            b'v' => b"Via",
            _ => name,
        },
        _ => name,
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or(&[])
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.org>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.org\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn parses_a_valid_invite() {
        let msg = parse_message(INVITE.as_bytes()).expect("valid");
        let SipMessage::Request(req) = msg else {
            panic!("not a request")
        };
        assert_eq!(req.method, rsip::Method::Invite);
        assert_eq!(req.body, b"v=0\n");
        assert_eq!(cseq(&req.headers), Ok((314159, rsip::Method::Invite)));
        assert_eq!(call_id(&req.headers), Ok("a84b4c76e66710@pc33.example.org"));
    }

    #[test]
    fn compact_and_folded_headers_are_understood() {
        let raw = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKabc\r\n\
t: <sip:bob@example.com>\r\n\
f: <sip:alice@example.org>\r\n ;tag=99\r\n\
i: xyz\r\n\
CSeq: 1 OPTIONS\r\n\
l: 0\r\n\r\n";
        let msg = parse_message(raw.as_bytes()).expect("valid");
        let SipMessage::Request(req) = msg else {
            panic!("not a request")
        };
        let from = req
            .headers
            .iter()
            .find_map(|h| match h {
                Header::From(f) => Some(rsip::headers::UntypedHeader::value(f).to_owned()),
                _ => None,
            })
            .expect("from");
        assert_eq!(header_param(&from, "tag"), Some("99"));
    }

    #[test]
    fn each_missing_header_is_named() {
        for (header, name) in [
            ("Via:", "Via"),
            ("To:", "To"),
            ("From:", "From"),
            ("Call-ID:", "Call-ID"),
            ("CSeq:", "CSeq"),
        ] {
            let raw: String = INVITE
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with(header))
                .collect();
            let msg = parse_unvalidated(raw.as_bytes()).expect("parses");
            assert_eq!(validate(&msg), Err(SipError::MissingHeader(name)), "{name}");
        }
    }

    #[test]
    fn content_length_mismatch_is_reported() {
        let short = INVITE.replace("Content-Length: 4", "Content-Length: 10");
        assert_eq!(
            parse_message(short.as_bytes()),
            Err(SipError::ContentLengthMismatch {
                declared: 10,
                actual: 4
            })
        );
        let long = INVITE.replace("Content-Length: 4", "Content-Length: 2");
        assert!(matches!(
            parse_message(long.as_bytes()),
            Err(SipError::ContentLengthMismatch { declared: 2, .. })
        ));
        let junk = INVITE.replace("Content-Length: 4", "Content-Length: four");
        assert!(matches!(
            parse_message(junk.as_bytes()),
            Err(SipError::InvalidHeader {
                header: "Content-Length",
                ..
            })
        ));
    }

    #[test]
    fn bad_start_lines_are_named() {
        for raw in [
            "INVITE sip:bob@example.com SIP/3.0\r\n\r\n",
            "INVITE\r\n\r\n",
            "SIP/2.0 20 OK\r\n\r\n",
            "SIP/2.0 999 Nope\r\n\r\n",
            "HELLO WORLD\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_message(raw.as_bytes()),
                    Err(SipError::BadStartLine(_))
                ),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn oversized_message_is_refused() {
        let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
        assert_eq!(
            parse_message(&big),
            Err(SipError::Oversized(MAX_MESSAGE_SIZE + 1))
        );
    }

    #[test]
    fn truncating_a_message_anywhere_never_panics() {
        let bytes = INVITE.as_bytes();
        for end in 0..bytes.len() {
            let result = parse_message(&bytes[..end]);
            assert!(result.is_err(), "truncated at {end} parsed");
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(3261);
        let alphabet = b"\r\n :;,<>=\"@/[]0aZ\x00\xff";
        for _ in 0..3000 {
            let mut bytes = INVITE.as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..bytes.len());
                let byte = alphabet[rng.gen_range(0..alphabet.len())];
                match rng.gen_range(0..3) {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if let Ok(SipMessage::Request(mut req)) = parse_message(&bytes) {
                let _ = crate::via::stamp_received(&mut req, "192.0.2.1:5060".parse().unwrap());
                let _ = crate::transaction::TransactionKey::server(&req);
                let _ = crate::response::build_response(
                    &req,
                    crate::response::status(200, "OK"),
                    Some("t"),
                );
            }
        }
    }

    #[test]
    fn corrupting_any_byte_never_panics() {
        let bytes = INVITE.as_bytes();
        for at in 0..bytes.len() {
            for replacement in [0u8, b'\r', b'\n', b' ', b':', b';', b'<', 0xff] {
                let mut copy = bytes.to_vec();
                copy[at] = replacement;
                let _ = parse_message(&copy);
            }
        }
    }
}

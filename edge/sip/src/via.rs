//! The top Via header: who sent a request, over what, and in which transaction.
//!
//! Transaction matching (the branch and sent-by), response routing (RFC 3261 section 18.2.2) and
//! NAT traversal (`received` / `rport`, RFC 3581) all read the topmost Via value. rsip keeps a Via
//! line as a string and its typed form does not cope with several comma-separated values on one
//! line, so this small parser reads just the first value, keeps every parameter in order, and
//! writes it back unchanged apart from what we stamp on it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Request};

use crate::message::SipError;

/// The RFC 3261 magic cookie that starts every compliant branch parameter.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The first value of the first Via header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// The sent-protocol, e.g. `SIP/2.0/UDP`.
    pub protocol: String,
    /// The sent-by host (a name or an address; IPv6 keeps its brackets).
    pub host: String,
    /// The sent-by port, when given.
    pub port: Option<u16>,
    /// The parameters in their original order, as (name, value).
    pub params: Vec<(String, Option<String>)>,
}

impl TopVia {
    /// Reads the top Via of a message.
    pub fn of(headers: &Headers) -> Result<Self, SipError> {
        let value = headers
            .iter()
            .find_map(|h| match h {
                Header::Via(v) => Some(v.value()),
                _ => None,
            })
            .ok_or(SipError::MissingHeader("Via"))?;
        Self::parse(first_value(value).0)
    }

    /// Parses one Via value such as `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport`.
    pub fn parse(value: &str) -> Result<Self, SipError> {
        let invalid = |reason: &str| SipError::InvalidHeader {
            header: "Via",
            reason: format!("{reason}: {value:?}"),
        };
        // A host in rsip's spelling of an IPv6 reference (`ipv6_ref.rs`) is read as written.
        let value = super::ipv6_ref::decode(value.trim());
        let (protocol, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| invalid("no sent-by"))?;
        let mut protocol_parts = protocol.split('/').map(str::trim);
        match (
            protocol_parts.next(),
            protocol_parts.next(),
            protocol_parts.next(),
            protocol_parts.next(),
        ) {
            (Some(name), Some(version), Some(transport), None)
                if name.eq_ignore_ascii_case("SIP")
                    && version == "2.0"
                    && !transport.is_empty() => {}
            _ => return Err(invalid("bad sent-protocol")),
        }
        let protocol = protocol.split('/').map(str::trim).collect::<Vec<_>>();
        let mut parts = rest.split(';');
        let sent_by = parts.next().unwrap_or("").trim();
        let (host, port) = split_host_port(sent_by).ok_or_else(|| invalid("bad sent-by"))?;
        let params = parts
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.trim().to_owned(), Some(v.trim().to_owned())),
                None => (p.trim().to_owned(), None),
            })
            .filter(|(n, _)| !n.is_empty())
            .collect();
        Ok(Self {
            protocol: protocol.join("/").to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            params,
        })
    }

    /// The value of a parameter: `None` if absent, `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The branch parameter, if any.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The transport, the last part of the sent-protocol (`UDP`, `TCP`, `TLS`, ...).
    pub fn transport(&self) -> &str {
        self.protocol.rsplit('/').next().unwrap_or("")
    }

    /// The sent-by as `host:port`, lower-cased, with the transport's default port filled in.
    pub fn sent_by(&self) -> String {
        let default = if self.transport().eq_ignore_ascii_case("TLS") {
            5061
        } else {
            5060
        };
        format!(
            "{}:{}",
            self.host.to_ascii_lowercase(),
            self.port.unwrap_or(default)
        )
    }

    /// Where responses go over an unreliable transport (RFC 3261 section 18.2.2, RFC 3581):
    /// the `received` address (or the packet's source), at the `rport` port if the client asked
    /// for it, else at the sent-by port. Over a connection, reply to `source`.
    pub fn response_destination(&self, source: SocketAddr) -> SocketAddr {
        let ip = self
            .param("received")
            .flatten()
            .and_then(|r| r.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            .unwrap_or(source.ip());
        let port = match self.param("rport") {
            Some(Some(p)) => p.parse().unwrap_or(source.port()),
            Some(None) => source.port(),
            None => self.port.unwrap_or(5060),
        };
        SocketAddr::new(ip, port)
    }

    fn set_param(&mut self, name: &str, value: String) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = Some(value),
            None => self.params.push((name.to_owned(), Some(value))),
        }
    }
}

impl fmt::Display for TopVia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// Stamps the top Via of a just-received request as RFC 3261 section 18.2.1 and RFC 3581 ask:
/// `received=<source ip>` when the sent-by host is not that address (or `rport` was requested),
/// and `rport=<source port>` when the client asked for it. Responses built afterwards copy it.
pub fn stamp_received(request: &mut Request, source: SocketAddr) -> Result<(), SipError> {
    let header = request
        .headers
        .iter_mut()
        .find_map(|h| match h {
            Header::Via(v) => Some(v),
            _ => None,
        })
        .ok_or(SipError::MissingHeader("Via"))?;
    let (first, rest) = first_value(header.value());
    let mut via = TopVia::parse(first)?;
    let wants_rport = via.param("rport").is_some();
    let host_is_source = via
        .host
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip == source.ip());
    if !host_is_source || wants_rport {
        via.set_param("received", source.ip().to_string());
    }
    if wants_rport {
        via.set_param("rport", source.port().to_string());
    }
    let stamped = match rest {
        Some(rest) => format!("{via},{rest}"),
        None => via.to_string(),
    };
    header.replace(stamped);
    Ok(())
}

/// Splits a Via header line into its first value and the rest, at the first comma.
fn first_value(line: &str) -> (&str, Option<&str>) {
    match line.split_once(',') {
        Some((first, rest)) => (first, Some(rest)),
        None => (line, None),
    }
}

fn split_host_port(sent_by: &str) -> Option<(&str, Option<u16>)> {
    if sent_by.is_empty() || sent_by.contains(char::is_whitespace) {
        return None;
    }
    if sent_by.starts_with('[') {
        let end = sent_by.find(']')?;
        let host = sent_by.get(..=end)?;
        return match sent_by.get(end + 1..)? {
            "" => Some((host, None)),
            rest => Some((host, Some(rest.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match sent_by.split_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((sent_by, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_message, tests::INVITE};

    fn invite() -> Request {
        match parse_message(INVITE.as_bytes()) {
            Ok(rsip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_branch_sent_by_and_rport() {
        let via = TopVia::parse("SIP/2.0/udp pc33.Example.com;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(via.branch(), Some("z9hG4bKx"));
        assert_eq!(via.transport(), "UDP");
        assert_eq!(via.sent_by(), "pc33.example.com:5060");
        assert_eq!(via.param("rport"), Some(None));
        let v6 = TopVia::parse("SIP/2.0/TLS [2001:db8::1]:5071;branch=z9hG4bKy").unwrap();
        assert_eq!(v6.sent_by(), "[2001:db8::1]:5071");
    }

    #[test]
    fn malformed_vias_are_errors() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "HTTP/1.1/TCP host",
            "SIP/2.0/UDP host:port",
            "SIP/2.0/UDP :5",
        ] {
            assert!(TopVia::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rport_request_is_stamped_with_source_address() {
        let mut req = invite();
        let source: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        stamp_received(&mut req, source).unwrap();
        let via = TopVia::of(&req.headers).unwrap();
        assert_eq!(via.param("received"), Some(Some("203.0.113.7")));
        assert_eq!(via.param("rport"), Some(Some("40000")));
        assert_eq!(via.response_destination(source), source);
    }

    #[test]
    fn received_is_added_only_when_source_differs() {
        let raw = INVITE.replace(";rport", "");
        let Ok(rsip::SipMessage::Request(mut req)) = parse_message(raw.as_bytes()) else {
            panic!()
        };
        stamp_received(&mut req, "192.0.2.10:5060".parse().unwrap()).unwrap();
        assert_eq!(TopVia::of(&req.headers).unwrap().param("received"), None);
        stamp_received(&mut req, "198.51.100.1:6000".parse().unwrap()).unwrap();
        let via = TopVia::of(&req.headers).unwrap();
        assert_eq!(via.param("received"), Some(Some("198.51.100.1")));
        assert_eq!(via.param("rport"), None);
        let dest = via.response_destination("198.51.100.1:6000".parse().unwrap());
        assert_eq!(dest, "198.51.100.1:5060".parse().unwrap());
    }
}

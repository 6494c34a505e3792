//! A SIP trunk's outbound proxy (RFC 3261 section 8.1.2): a provider that wants every call to
//! pass through its proxy names it as a SIP URI (`sip:10.0.0.5:5060;lr`). The edge puts it on
//! the INVITE as a preloaded Route and sends the INVITE there; the dialog's own route set then
//! comes from the 2xx's Record-Route. Only what can be written inside `<...>` on a Route header
//! is accepted, so a configured value can never end the header or add another.

/// The parts of an outbound proxy URI the edge needs to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUri {
    /// The host: a name, an IPv4 literal, or an IPv6 literal without its brackets.
    pub host: String,
    /// The port, when the URI gives one (5060 otherwise).
    pub port: Option<u16>,
    /// Whether the proxy is a loose router (`;lr`): the INVITE keeps its Request-URI.
    pub loose: bool,
}

/// Reads an outbound proxy URI: `sip:host[:port][;param...]`, no user part, no headers. The
/// error says what is wrong, for a 422 naming `outbound_proxy`.
pub fn parse_proxy_uri(uri: &str) -> Result<ProxyUri, &'static str> {
    if uri.len() > 255 {
        return Err("must be at most 255 characters");
    }
    let rest = match uri.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("sip:") => &uri[4..],
        _ => return Err("must be a sip: URI (sip:host[:port];lr)"),
    };
    let mut parts = rest.split(';');
    let hostport = parts.next().unwrap_or_default();
    let mut loose = false;
    for param in parts {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let token = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'%".contains(c))
        };
        if name.is_empty() || !token(name) || !token(value) {
            return Err("has a URI parameter that is not name[=value]");
        }
        loose |= name.eq_ignore_ascii_case("lr");
    }
    if hostport.contains('@') {
        return Err("must not have a user part");
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or("has an unclosed IPv6 literal")?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has an IPv6 literal that is not an address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has text after its host")?),
        };
        (ip.to_owned(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && (host.contains(':')
            || host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if !host_ok {
        return Err("must name a host name or IP address");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err("has a port that is not between 1 and 65535"),
        },
    };
    Ok(ProxyUri { host, port, loose })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_sip_uris_with_a_host_and_maybe_a_port() {
        let p = parse_proxy_uri("sip:10.0.0.5:5070;lr").expect("valid");
        assert_eq!(
            p,
            ProxyUri {
                host: "10.0.0.5".into(),
                port: Some(5070),
                loose: true
            }
        );
        let p = parse_proxy_uri("SIP:proxy.example.com").expect("valid");
        assert_eq!(
            (p.host.as_str(), p.port, p.loose),
            ("proxy.example.com", None, false)
        );
        let p = parse_proxy_uri("sip:[2001:db8::1]:5060;transport=udp;lr").expect("valid");
        assert_eq!((p.host.as_str(), p.port), ("2001:db8::1", Some(5060)));
        for bad in [
            "",
            "10.0.0.5",
            "sips:10.0.0.5",
            "http://proxy",
            "sip:",
            "sip:user@10.0.0.5",
            "sip:10.0.0.5:0",
            "sip:10.0.0.5:99999",
            "sip:10.0.0.5;lr>\r\nX: y",
            "sip:10.0.0.5, <sip:evil>",
            "sip:bad host",
            "sip:[::1",
            "sip:10.0.0.5;",
            "sip:a..b",
        ] {
            assert!(parse_proxy_uri(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! Route sets (RFC 3261 sections 12.1.1, 12.1.2 and 12.2.1.1): the proxies that asked, with
//! Record-Route, to stay on a dialog's path, and how our in-dialog requests follow them. A
//! proxy that record-routes (kamailio's `record_route()`) answers 404 to an in-dialog request
//! that skips it or arrives without its Route, and the far end never hears our BYE.
//!
//! The route set is kept as the header values were written (`<sip:10.0.0.5;lr>`), in the order
//! our requests must carry them. Only IP literals are followed as the next hop: a route naming
//! a host by DNS name falls back to the address the dialog's requests came from (symmetric
//! signalling), since the core does no resolution and the shell has no resolver for it.

use std::net::{IpAddr, SocketAddr};

use rsip::Headers;

use super::{host_port, uri_of};

/// Every value of the headers called `name` (`Record-Route`, `Route`), in order: one header may
/// carry several, separated by commas outside angle brackets and quotes.
pub fn header_values(headers: &Headers, name: &str) -> Vec<String> {
    let mut values = Vec::new();
    for header in headers.iter() {
        let text = header.to_string();
        let Some((n, value)) = text.split_once(':') else {
            continue;
        };
        if n.trim().eq_ignore_ascii_case(name) {
            values.extend(split_list(value));
        }
    }
    values
}

/// A comma-separated header value cut into its elements (commas inside `<...>` or `"..."` are
/// part of an element).
fn split_list(value: &str) -> Vec<String> {
    let (mut out, mut start, mut angle, mut quoted) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !angle && !quoted => {
                out.push(value[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim().to_owned());
    out.retain(|v| !v.is_empty());
    out
}

/// Whether a route (a Route or Record-Route value) is a loose router: its URI has `;lr`.
pub fn is_loose(route: &str) -> bool {
    let uri = uri_of(route);
    let params = uri.split('?').next().unwrap_or(&uri);
    params.split(';').skip(1).any(|p| {
        let name = p.split('=').next().unwrap_or(p).trim();
        name.eq_ignore_ascii_case("lr")
    })
}

/// The address of a route's URI when its host is an IP literal (port 5060 when absent) that a
/// request can be sent to. The route set comes from the caller's INVITE: an unspecified,
/// broadcast or multicast address, or port 0, is no next hop (the dialog's requests then go
/// back where the INVITE came from), so a Record-Route cannot turn our BYE into a broadcast.
pub fn hop_addr(route: &str) -> Option<SocketAddr> {
    let host = host_port(&uri_of(route));
    let addr = match host.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            SocketAddr::new(bare.parse::<IpAddr>().ok()?, 5060)
        }
    };
    let unusable = match addr.ip() {
        IpAddr::V4(ip) => ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast(),
        IpAddr::V6(ip) => ip.is_unspecified() || ip.is_multicast(),
    };
    (!unusable && addr.port() != 0).then_some(addr)
}

/// The Request-URI and Route values of a request to `remote_target` through `route_set`
/// (RFC 3261 section 12.2.1.1): with a loose first route (or none), the remote target and the
/// route set unchanged; with a strict first route, that route's URI and the rest of the set
/// followed by the remote target.
pub fn request_path(route_set: &[String], remote_target: &str) -> (String, Vec<String>) {
    match route_set.split_first() {
        Some((first, rest)) if !is_loose(first) => {
            let mut routes: Vec<String> = rest.to_vec();
            routes.push(format!("<{remote_target}>"));
            (uri_of(first), routes)
        }
        _ => (remote_target.to_owned(), route_set.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_brackets_and_quotes() {
        assert_eq!(
            split_list(" <sip:a;lr>, \"x, y\" <sip:b>,<sip:c;p=1,2>"),
            ["<sip:a;lr>", "\"x, y\" <sip:b>", "<sip:c;p=1,2>"]
        );
        assert!(split_list("  ").is_empty());
    }

    #[test]
    fn loose_routers_are_told_from_strict_ones() {
        assert!(is_loose("<sip:10.0.0.1;lr>"));
        assert!(is_loose("<sip:p.example;transport=udp;lr=on>"));
        assert!(!is_loose("<sip:10.0.0.1;ftag=abc>"));
        assert!(!is_loose("<sip:lr@10.0.0.1>"));
    }

    #[test]
    fn only_ip_literals_are_hops() {
        assert_eq!(
            hop_addr("<sip:10.0.0.5:5070;lr>"),
            "10.0.0.5:5070".parse().ok()
        );
        assert_eq!(hop_addr("<sip:10.0.0.5;lr>"), "10.0.0.5:5060".parse().ok());
        assert_eq!(hop_addr("<sip:[::1]:5080;lr>"), "[::1]:5080".parse().ok());
        assert_eq!(hop_addr("<sip:[::1];lr>"), "[::1]:5060".parse().ok());
        assert_eq!(hop_addr("<sip:proxy.example;lr>"), None);
        for nowhere in [
            "<sip:0.0.0.0;lr>",
            "<sip:255.255.255.255:5060;lr>",
            "<sip:224.0.0.1;lr>",
            "<sip:[ff02::1];lr>",
            "<sip:[::];lr>",
            "<sip:10.0.0.5:0;lr>",
        ] {
            assert_eq!(hop_addr(nowhere), None, "{nowhere}");
        }
    }

    #[test]
    fn strict_first_route_becomes_the_request_uri() {
        let set = ["<sip:10.0.0.1>".to_owned(), "<sip:10.0.0.2;lr>".to_owned()];
        let (uri, routes) = request_path(&set, "sip:bob@192.0.2.9");
        assert_eq!(uri, "sip:10.0.0.1");
        assert_eq!(routes, ["<sip:10.0.0.2;lr>", "<sip:bob@192.0.2.9>"]);
        let loose = ["<sip:10.0.0.2;lr>".to_owned()];
        let (uri, routes) = request_path(&loose, "sip:bob@192.0.2.9");
        assert_eq!(uri, "sip:bob@192.0.2.9");
        assert_eq!(routes, loose);
    }
}

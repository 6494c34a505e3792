//! Which IP addresses a customer-supplied URL may reach: the pure classification behind the
//! egress guard (no sockets, no DNS). The reference is the IANA IPv4 and IPv6 Special-Purpose
//! Address Registries (RFC 6890 and its updates): every block there that is not globally
//! reachable is refused, plus multicast, the reserved `240.0.0.0/4`, the deprecated IPv6 forms,
//! and every IPv6 address outside global unicast `2000::/3`. Addresses that carry an IPv4 address
//! inside (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address,
//! so `::ffff:127.0.0.1` and `2002:7f00:1::` are as loopback as `127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public internet destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonPublic {
    /// `0.0.0.0/8`, `::/128`: "this network", which Linux connects to as the local host.
    #[error("an unspecified (\"this network\") address")]
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    #[error("a loopback address")]
    Loopback,
    /// RFC 1918 `10/8`, `172.16/12`, `192.168/16`; IPv6 unique-local `fc00::/7`.
    #[error("a private-network address")]
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    #[error("a shared (carrier-grade NAT) address")]
    Shared,
    /// `169.254/16`, `fe80::/10` (cloud metadata services live here).
    #[error("a link-local address")]
    LinkLocal,
    /// `192.0.0.0/24` (RFC 6890 IETF protocol assignments), `192.88.99.0/24` (6to4 relay
    /// anycast, deprecated), `2001::/23` (IETF protocol assignments, with Teredo `2001::/32`),
    /// `100::/64` (discard-only), `5f00::/16` (SRv6 SIDs).
    #[error("an address reserved for a protocol")]
    Protocol,
    /// `198.18.0.0/15` (RFC 2544), `2001:2::/48`.
    #[error("a benchmarking address")]
    Benchmarking,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    #[error("a documentation address")]
    Documentation,
    /// `224.0.0.0/4`, `ff00::/8`.
    #[error("a multicast address")]
    Multicast,
    /// `240.0.0.0/4` with the broadcast address, and IPv6 outside `2000::/3` not named above
    /// (`fec0::/10` site-local, unassigned space).
    #[error("a reserved address")]
    Reserved,
    /// `::/96` IPv4-compatible (deprecated by RFC 4291) and NAT64 local-use `64:ff9b:1::/48`,
    /// whose embedded IPv4 address cannot be judged.
    #[error("a deprecated or local IPv4-embedding IPv6 address")]
    Embedding,
}

/// `Ok` when `ip` is a public internet destination; otherwise the reason it is not.
pub fn check(ip: IpAddr) -> Result<(), NonPublic> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

/// Whether `ip` is a public internet destination.
pub fn is_public(ip: IpAddr) -> bool {
    check(ip).is_ok()
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn check_v4(ip: Ipv4Addr) -> Result<(), NonPublic> {
    use NonPublic::*;
    const TABLE: &[([u8; 4], u32, NonPublic)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, Shared),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Protocol),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Protocol),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    match TABLE.iter().find(|(net, len, _)| in_v4(ip, *net, *len)) {
        Some((_, _, reason)) => Err(*reason),
        None => Ok(()),
    }
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// The IPv4 address in the low 32 bits of `ip`.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32)
}

fn check_v6(ip: Ipv6Addr) -> Result<(), NonPublic> {
    use NonPublic::*;
    if ip.is_unspecified() {
        return Err(Unspecified);
    }
    if ip.is_loopback() {
        return Err(Loopback);
    }
    // IPv4-mapped `::ffff:0:0/96`: the socket connects to the IPv4 address itself.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return check_v4(v4);
    }
    // NAT64 well-known prefix (RFC 6052): a translator forwards to the embedded IPv4 address.
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return check_v4(low_v4(ip));
    }
    // 6to4 (RFC 3056): the IPv4 address is in bits 16..48.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        let s = ip.segments();
        let v4 = Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2]));
        return check_v4(v4);
    }
    const TABLE: &[([u16; 8], u32, NonPublic)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, Embedding),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Embedding),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Protocol),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, Benchmarking),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Protocol),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, Protocol),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Private),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
    ];
    if let Some((_, _, reason)) = TABLE.iter().find(|(net, len, _)| in_v6(ip, *net, *len)) {
        return Err(*reason);
    }
    // Only global unicast is assigned for the internet; the rest is reserved by the IETF.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Err(Reserved);
    }
    Ok(())
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;

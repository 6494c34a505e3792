//! Every special-purpose block, at its edges and inside, and public neighbours that must pass.

use super::*;
use NonPublic::*;

fn verdict(text: &str) -> Result<(), NonPublic> {
    check(
        text.parse::<IpAddr>()
            .unwrap_or_else(|_| panic!("{text} is an address")),
    )
}

fn assert_all(cases: &[(&str, Result<(), NonPublic>)]) {
    for (text, expected) in cases {
        assert_eq!(verdict(text), *expected, "{text}");
    }
}

#[test]
fn ipv4_special_purpose_blocks_are_refused_at_both_ends() {
    assert_all(&[
        ("0.0.0.0", Err(Unspecified)),
        ("0.255.255.255", Err(Unspecified)),
        ("10.0.0.0", Err(Private)),
        ("10.255.255.255", Err(Private)),
        ("100.64.0.0", Err(Shared)),
        ("100.127.255.255", Err(Shared)),
        ("127.0.0.1", Err(Loopback)),
        ("127.255.255.254", Err(Loopback)),
        ("169.254.169.254", Err(LinkLocal)),
        ("172.16.0.0", Err(Private)),
        ("172.31.255.255", Err(Private)),
        ("192.0.0.0", Err(Protocol)),
        ("192.0.0.255", Err(Protocol)),
        ("192.0.2.1", Err(Documentation)),
        ("192.88.99.1", Err(Protocol)),
        ("192.168.0.1", Err(Private)),
        ("192.168.255.255", Err(Private)),
        ("198.18.0.0", Err(Benchmarking)),
        ("198.19.255.255", Err(Benchmarking)),
        ("198.51.100.7", Err(Documentation)),
        ("203.0.113.9", Err(Documentation)),
        ("224.0.0.1", Err(Multicast)),
        ("239.255.255.255", Err(Multicast)),
        ("240.0.0.1", Err(Reserved)),
        ("255.255.255.255", Err(Reserved)),
    ]);
}

#[test]
fn ipv4_public_neighbours_of_special_blocks_pass() {
    assert_all(&[
        ("1.1.1.1", Ok(())),
        ("8.8.8.8", Ok(())),
        ("9.255.255.255", Ok(())),
        ("11.0.0.0", Ok(())),
        ("100.63.255.255", Ok(())),
        ("100.128.0.0", Ok(())),
        ("126.255.255.255", Ok(())),
        ("128.0.0.0", Ok(())),
        ("172.15.255.255", Ok(())),
        ("172.32.0.0", Ok(())),
        ("192.0.1.0", Ok(())),
        ("192.0.3.0", Ok(())),
        ("192.167.255.255", Ok(())),
        ("192.169.0.0", Ok(())),
        ("198.17.255.255", Ok(())),
        ("198.20.0.0", Ok(())),
        ("203.0.112.255", Ok(())),
        ("223.255.255.255", Ok(())),
    ]);
}

#[test]
fn ipv6_special_purpose_blocks_are_refused() {
    assert_all(&[
        ("::", Err(Unspecified)),
        ("::1", Err(Loopback)),
        ("::127.0.0.1", Err(Embedding)),
        ("::8.8.8.8", Err(Embedding)),
        ("64:ff9b:1::1", Err(Embedding)),
        ("100::1", Err(Protocol)),
        ("2001::1", Err(Protocol)),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Err(Protocol)),
        ("2001:1ff:ffff::1", Err(Protocol)),
        ("2001:2::1", Err(Benchmarking)),
        ("2001:db8::1", Err(Documentation)),
        ("2001:db8:ffff::1", Err(Documentation)),
        ("3fff::1", Err(Documentation)),
        ("3fff:fff::1", Err(Documentation)),
        ("5f00::1", Err(Protocol)),
        ("fc00::1", Err(Private)),
        ("fdff:ffff::1", Err(Private)),
        ("fe80::1", Err(LinkLocal)),
        ("febf::1", Err(LinkLocal)),
        ("fec0::1", Err(Reserved)),
        ("ff02::1", Err(Multicast)),
        ("ff0e::1", Err(Multicast)),
        ("4000::1", Err(Reserved)),
        ("1::1", Err(Reserved)),
    ]);
}

#[test]
fn ipv6_addresses_carrying_ipv4_are_judged_by_that_ipv4_address() {
    assert_all(&[
        // IPv4-mapped.
        ("::ffff:127.0.0.1", Err(Loopback)),
        ("::ffff:10.1.2.3", Err(Private)),
        ("::ffff:169.254.169.254", Err(LinkLocal)),
        ("::ffff:8.8.8.8", Ok(())),
        // NAT64 well-known prefix.
        ("64:ff9b::7f00:1", Err(Loopback)),
        ("64:ff9b::10.0.0.1", Err(Private)),
        ("64:ff9b::198.18.0.1", Err(Benchmarking)),
        ("64:ff9b::8.8.8.8", Ok(())),
        // 6to4.
        ("2002:7f00:1::", Err(Loopback)),
        ("2002:c0a8:101::1", Err(Private)),
        ("2002:a9fe:a9fe::", Err(LinkLocal)),
        ("2002:0808:0808::1", Ok(())),
    ]);
}

#[test]
fn ipv6_global_unicast_passes() {
    assert_all(&[
        ("2001:4860:4860::8888", Ok(())),
        ("2606:4700:4700::1111", Ok(())),
        ("2001:200::1", Ok(())),
        ("2a00:1450::1", Ok(())),
        ("3ffe::1", Ok(())),
    ]);
    assert!(is_public("2001:4860:4860::8888".parse().expect("address")));
    assert!(!is_public("127.0.0.1".parse().expect("address")));
}

//! The INVITE token buckets, driven with hand-made instants.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn limiter(per_second: f64, burst: u32) -> InviteRateLimiter {
    InviteRateLimiter::new(InviteRate { per_second, burst })
}

/// A limiter that tracks at most `max_sources` sources.
fn capped(per_second: f64, burst: u32, max_sources: usize) -> InviteRateLimiter {
    InviteRateLimiter::with_max_sources(InviteRate { per_second, burst }, max_sources)
}

#[test]
fn a_source_gets_its_burst_then_one_invite_per_refill() {
    let mut rate = limiter(5.0, 3);
    let t0 = Instant::now();
    let a = ip("192.0.2.1");
    for _ in 0..3 {
        assert_eq!(rate.handle_invite(t0, a), Ok(()));
    }
    let wait = rate.handle_invite(t0, a).expect_err("burst spent");
    assert_eq!(wait, Duration::from_millis(200));
    // A refused INVITE does not spend anything: 200 ms later exactly one token is back.
    let t1 = t0 + Duration::from_millis(200);
    assert_eq!(rate.handle_invite(t1, a), Ok(()));
    assert!(rate.handle_invite(t1, a).is_err());
}

#[test]
fn a_flood_at_thirty_a_second_gets_the_configured_rate_through() {
    let mut rate = limiter(5.0, 5);
    let t0 = Instant::now();
    let a = ip("192.0.2.1");
    let admitted = (0..300) // ten seconds at 30 INVITEs a second
        .filter(|i| {
            let now = t0 + Duration::from_micros(33_333 * i);
            rate.handle_invite(now, a).is_ok()
        })
        .count();
    // The burst, then 5 a second for the ten seconds (give or take the last partial token).
    assert!((53..=55).contains(&admitted), "admitted {admitted}");
}

#[test]
fn sources_are_limited_apart_by_address_not_port() {
    let mut rate = limiter(1.0, 1);
    let t0 = Instant::now();
    assert!(rate.handle_invite(t0, ip("127.0.0.1")).is_ok());
    assert!(rate.handle_invite(t0, ip("127.0.0.1")).is_err());
    assert!(rate.handle_invite(t0, ip("127.0.0.2")).is_ok());
    // The same IPv4 address written as IPv4-mapped IPv6 is the same source.
    assert!(rate.handle_invite(t0, ip("::ffff:127.0.0.2")).is_err());
}

#[test]
fn an_ipv6_host_is_limited_by_its_slash_64() {
    let mut rate = limiter(1.0, 1);
    let t0 = Instant::now();
    assert!(rate.handle_invite(t0, ip("2001:db8:1:2::1")).is_ok());
    assert!(rate.handle_invite(t0, ip("2001:db8:1:2:ffff::9")).is_err());
    assert!(rate.handle_invite(t0, ip("2001:db8:1:3::1")).is_ok());
}

#[test]
fn idle_sources_are_forgotten_when_the_table_is_full() {
    let mut rate = capped(10.0, 2, 3);
    let t0 = Instant::now();
    for last in 1..=3 {
        assert!(rate
            .handle_invite(t0, ip(&format!("10.0.0.{last}")))
            .is_ok());
    }
    assert_eq!(rate.tracked_sources(), 3);
    // A second later every bucket has refilled: the newcomer's arrival sweeps them away.
    let t1 = t0 + Duration::from_secs(1);
    assert!(rate.handle_invite(t1, ip("10.0.0.4")).is_ok());
    assert_eq!(rate.tracked_sources(), 1);
}

#[test]
fn sources_beyond_the_cap_share_one_bucket_instead_of_escaping_the_limit() {
    let mut rate = capped(1.0, 2, 2);
    let t0 = Instant::now();
    // Two busy sources fill the table (their buckets are not full again, so not swept).
    assert!(rate.handle_invite(t0, ip("10.0.0.1")).is_ok());
    assert!(rate.handle_invite(t0, ip("10.0.0.2")).is_ok());
    // Many more addresses, one INVITE each: together they get one burst, not one each.
    let admitted = (3..50)
        .filter(|last| {
            rate.handle_invite(t0, ip(&format!("10.0.0.{last}")))
                .is_ok()
        })
        .count();
    assert_eq!(admitted, 2);
    assert_eq!(rate.tracked_sources(), 2);
    // The tracked sources keep their own buckets.
    assert!(rate.handle_invite(t0, ip("10.0.0.1")).is_ok());
}

#[test]
fn time_going_backwards_does_not_mint_tokens_or_panic() {
    let mut rate = limiter(1.0, 1);
    let t0 = Instant::now() + Duration::from_secs(10);
    let a = ip("192.0.2.7");
    assert!(rate.handle_invite(t0, a).is_ok());
    assert!(rate.handle_invite(t0 - Duration::from_secs(5), a).is_err());
    assert!(rate.handle_invite(t0, a).is_err());
}

//! The dialling side's gate in simulated time: only a granted request from the call's home,
//! for the granted workspace and destination, is dialled; floods and strangers are refused.

use super::*;

fn key(leg: u16) -> LegKey {
    LegKey {
        call: Uuid::from_u128(7),
        leg,
    }
}

fn home() -> SocketAddr {
    "127.0.0.1:7001".parse().expect("addr")
}

fn grant(leg: u16) -> DialGrant {
    DialGrant {
        key: key(leg),
        workspace: "ws_a".into(),
        to: "+15550100".into(),
        home: "edge-a".into(),
    }
}

fn request(leg: u16) -> DialRequest {
    DialRequest {
        key: key(leg),
        workspace: "ws_a".into(),
        to: "+15550100".into(),
        from_edge: "edge-a".into(),
    }
}

fn serves_a(ws: &str) -> bool {
    ws == "ws_a"
}

fn from(addr: SocketAddr) -> DialContext<'static> {
    certified(addr, "edge-a")
}

/// A request over a connection from `addr` whose certificate names `edge`.
fn certified(addr: SocketAddr, edge: &'static str) -> DialContext<'static> {
    DialContext {
        from: addr,
        certified_as: Some(edge),
        home_addr: Some(home()),
        serves: &serves_a,
    }
}

/// A gate with default settings, now, that has just been granted leg 1.
fn granted_leg_1() -> (Instant, LegHost) {
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    host.handle_grant(now, grant(1));
    (now, host)
}

#[test]
fn a_granted_request_from_the_home_is_dialled_once() {
    let (now, mut host) = granted_leg_1();
    assert_eq!(host.handle_dial(now, &request(1), &from(home())), Ok(()));
    assert_eq!(host.legs_of(key(1).call), 1);
    // The grant is spent: the same request again is refused.
    assert_eq!(
        host.handle_dial(now, &request(1), &from(home())),
        Err(DialRefusal::NoGrant)
    );
}

#[test]
fn a_request_for_a_call_nobody_granted_is_refused() {
    let (now, mut host) = granted_leg_1();
    assert_eq!(
        host.handle_dial(now, &request(2), &from(home())),
        Err(DialRefusal::NoGrant)
    );
}

#[test]
fn another_cluster_member_cannot_use_the_home_s_grant() {
    let (now, mut host) = granted_leg_1();
    let stranger: SocketAddr = "127.0.0.3:7001".parse().expect("addr");
    assert_eq!(
        host.handle_dial(now, &request(1), &from(stranger)),
        Err(DialRefusal::NotHome)
    );
    let mut claims_other = request(1);
    claims_other.from_edge = "edge-c".into();
    assert_eq!(
        host.handle_dial(now, &claims_other, &certified(home(), "edge-c")),
        Err(DialRefusal::NotHome)
    );
    // The grant is still there for the real home.
    assert_eq!(host.handle_dial(now, &request(1), &from(home())), Ok(()));
}

#[test]
fn another_workspace_or_destination_than_granted_is_refused() {
    let (now, mut host) = granted_leg_1();
    let mut other_ws = request(1);
    other_ws.workspace = "ws_b".into();
    assert_eq!(
        host.handle_dial(now, &other_ws, &from(home())),
        Err(DialRefusal::Mismatch)
    );
    let mut other_to = request(1);
    other_to.to = "+19005550100".into();
    assert_eq!(
        host.handle_dial(now, &other_to, &from(home())),
        Err(DialRefusal::Mismatch)
    );
}

#[test]
fn a_workspace_this_edge_does_not_serve_is_refused_even_when_granted() {
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    let mut g = grant(1);
    g.workspace = "ws_b".into();
    host.handle_grant(now, g);
    let mut r = request(1);
    r.workspace = "ws_b".into();
    assert_eq!(
        host.handle_dial(now, &r, &from(home())),
        Err(DialRefusal::WorkspaceNotServed)
    );
}

#[test]
fn a_flood_of_dial_requests_is_refused_past_the_peer_s_rate() {
    let now = Instant::now();
    let settings = HostSettings {
        dials_per_sec_per_peer: 5,
        ..HostSettings::default()
    };
    let mut host = LegHost::new(settings);
    let refused = (0..100)
        .filter(|i| {
            host.handle_dial(now, &request(*i), &from(home())) == Err(DialRefusal::RateLimited)
        })
        .count();
    assert_eq!(refused, 95);
    // A second later the peer has its allowance back.
    let later = now + Duration::from_secs(1);
    host.handle_grant(later, grant(200));
    assert_eq!(
        host.handle_dial(later, &request(200), &from(home())),
        Ok(())
    );
}

#[test]
fn a_call_may_not_host_more_legs_here_than_allowed() {
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    for leg in 1..=3 {
        host.handle_grant(now, grant(leg));
    }
    assert_eq!(host.handle_dial(now, &request(1), &from(home())), Ok(()));
    assert_eq!(host.handle_dial(now, &request(2), &from(home())), Ok(()));
    assert_eq!(
        host.handle_dial(now, &request(3), &from(home())),
        Err(DialRefusal::TooManyLegs)
    );
    host.handle_ended(key(1));
    assert_eq!(host.handle_dial(now, &request(3), &from(home())), Ok(()));
}

#[test]
fn an_unused_grant_lapses() {
    let (now, mut host) = granted_leg_1();
    let late = now + HostSettings::default().grant_ttl;
    assert_eq!(
        host.handle_dial(late, &request(1), &from(home())),
        Err(DialRefusal::NoGrant)
    );
    assert_eq!(host.grants(), 0);
}

#[test]
fn a_valid_certificate_for_one_edge_claiming_to_be_another_is_refused() {
    let (now, mut host) = granted_leg_1();
    // Edge C's certificate, asking as edge A (the grant's home), even from the address gossip
    // gives edge A: refused, whatever gossip says.
    assert_eq!(
        host.handle_dial(now, &request(1), &certified(home(), "edge-c")),
        Err(DialRefusal::NotCertified)
    );
    // A connection whose certificate is not known (any more) asks for nothing.
    let unknown = DialContext {
        certified_as: None,
        ..from(home())
    };
    assert_eq!(
        host.handle_dial(now, &request(1), &unknown),
        Err(DialRefusal::NotCertified)
    );
    // The grant is still there for the real home.
    assert_eq!(host.handle_dial(now, &request(1), &from(home())), Ok(()));
}

#[test]
fn a_peer_gets_no_fresh_dial_budget_from_new_addresses_or_a_crowd_of_peers() {
    let now = Instant::now();
    let settings = HostSettings {
        dials_per_sec_per_peer: 5,
        ..HostSettings::default()
    };
    let mut host = LegHost::new(settings);
    // Edge C spends its budget from five connections of its own.
    for port in 0..5u16 {
        let addr = SocketAddr::from(([127, 0, 0, 3], 8000 + port));
        let refusal = host.handle_dial(now, &request(1), &certified(addr, "edge-c"));
        assert_eq!(refusal, Err(DialRefusal::NoGrant));
    }
    let fresh_port = SocketAddr::from(([127, 0, 0, 3], 9000));
    assert_eq!(
        host.handle_dial(now, &request(1), &certified(fresh_port, "edge-c")),
        Err(DialRefusal::RateLimited),
        "a new connection is the same certified edge"
    );
    // More peers than are tracked, each spending: edge C's empty budget is not forgotten.
    let names: Vec<&'static str> = (0..MAX_TRACKED_PEERS + 10)
        .map(|n| &*Box::leak(format!("edge-{n}").into_boxed_str()))
        .collect();
    for name in &names {
        let addr = SocketAddr::from(([127, 0, 0, 4], 7000));
        let _ = host.handle_dial(now, &request(1), &certified(addr, name));
    }
    assert!(host.tracked_peers() > MAX_TRACKED_PEERS);
    assert_eq!(
        host.handle_dial(now, &request(1), &certified(fresh_port, "edge-c")),
        Err(DialRefusal::RateLimited)
    );
    // Refilled budgets are the ones swept.
    let later = now + Duration::from_secs(1);
    host.handle_timeout(later);
    assert_eq!(host.tracked_peers(), 0);
}

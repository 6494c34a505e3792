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
    DialContext {
        from: addr,
        home_addr: Some(home()),
        serves: &serves_a,
    }
}

#[test]
fn a_granted_request_from_the_home_is_dialled_once() {
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    host.handle_grant(now, grant(1));
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
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    host.handle_grant(now, grant(1));
    assert_eq!(
        host.handle_dial(now, &request(2), &from(home())),
        Err(DialRefusal::NoGrant)
    );
}

#[test]
fn another_cluster_member_cannot_use_the_home_s_grant() {
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    host.handle_grant(now, grant(1));
    let stranger: SocketAddr = "127.0.0.3:7001".parse().expect("addr");
    assert_eq!(
        host.handle_dial(now, &request(1), &from(stranger)),
        Err(DialRefusal::NotHome)
    );
    let mut claims_other = request(1);
    claims_other.from_edge = "edge-c".into();
    assert_eq!(
        host.handle_dial(now, &claims_other, &from(home())),
        Err(DialRefusal::NotHome)
    );
    // The grant is still there for the real home.
    assert_eq!(host.handle_dial(now, &request(1), &from(home())), Ok(()));
}

#[test]
fn another_workspace_or_destination_than_granted_is_refused() {
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    host.handle_grant(now, grant(1));
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
    let now = Instant::now();
    let mut host = LegHost::new(HostSettings::default());
    host.handle_grant(now, grant(1));
    let late = now + HostSettings::default().grant_ttl;
    assert_eq!(
        host.handle_dial(late, &request(1), &from(home())),
        Err(DialRefusal::NoGrant)
    );
    assert_eq!(host.grants(), 0);
}

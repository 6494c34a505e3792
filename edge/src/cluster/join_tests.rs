//! Every rule of [`super::JoinGate`]: who counts as a peer, the first edge, the last one standing.

use std::sync::Arc;

use super::*;
use crate::cluster::Peer;

fn member(id: &str, state: MemberState, health: bool, now: Instant) -> MemberView {
    let peer = Peer {
        id: Arc::from(id),
        addr: "127.0.0.1:7000".parse().expect("addr"),
        generation: 1,
    };
    let health = health.then(|| crate::cluster::health::PeerHealth {
        edge_id: Arc::from(id),
        generation: 1,
        seq: 0,
        region: Arc::from("eu"),
        active_calls: 0,
        capacity: 10,
        cpu_permille: 0,
        draining: false,
        version: Arc::from("0"),
        sip_addr: "127.0.0.1:5060".parse().expect("addr"),
        http_addr: "127.0.0.1:8080".parse().expect("addr"),
        mesh_addr: None,
    });
    MemberView {
        peer,
        state,
        since: now,
        health,
    }
}

#[test]
fn a_restarted_edge_joins_only_once_a_peer_is_alive_with_its_health() {
    let t0 = Instant::now();
    let mut gate = JoinGate::new(t0, Duration::from_secs(3), false);
    gate.handle_registered_peers(&["127.0.0.1:7001".parse().expect("addr")]);
    gate.handle_members(t0, "me", &[member("me", MemberState::Alive, true, t0)]);
    assert!(!gate.is_joined(), "only itself");
    let suspect = member("b", MemberState::Suspect, true, t0);
    gate.handle_members(t0, "me", &[suspect]);
    assert!(!gate.is_joined(), "a suspect peer is not a join");
    gate.handle_members(t0, "me", &[member("b", MemberState::Alive, false, t0)]);
    assert!(
        !gate.is_joined(),
        "alive without health: nowhere to redirect yet"
    );
    gate.handle_members(t0, "me", &[member("b", MemberState::Alive, true, t0)]);
    assert!(gate.is_joined());
}

#[test]
fn the_first_edge_joins_at_once_and_the_last_one_standing_after_the_wait() {
    let t0 = Instant::now();
    let mut first = JoinGate::new(t0, Duration::from_secs(3), false);
    first.handle_registered_peers(&[]);
    assert!(first.is_joined());

    let mut seeded = JoinGate::new(t0, Duration::from_secs(3), true);
    seeded.handle_registered_peers(&[]);
    assert!(
        !seeded.is_joined(),
        "configured seeds are still to be joined"
    );
    seeded.handle_members(t0 + Duration::from_millis(2_999), "me", &[]);
    assert!(!seeded.is_joined());
    seeded.handle_members(t0 + Duration::from_secs(3), "me", &[]);
    assert!(seeded.is_joined(), "nobody answered: alone after the wait");
}

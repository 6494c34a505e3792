//! Every rule of [`super::choose_peer`]: who is skipped, region tiers, load order, stable ties.

use std::sync::Arc;
use std::time::Instant;

use super::choose_peer;
use crate::cluster::health::PeerHealth;
use crate::cluster::membership::{MemberState, MemberView};
use crate::cluster::Peer;

fn member(id: &str, region: &str, active: u32, capacity: u32) -> MemberView {
    let n: u16 = id.bytes().map(u16::from).sum();
    MemberView {
        peer: Peer {
            id: Arc::from(id),
            addr: format!("127.0.0.1:{}", 7000 + n).parse().expect("addr"),
            generation: 1,
        },
        state: MemberState::Alive,
        since: Instant::now(),
        health: Some(PeerHealth {
            edge_id: Arc::from(id),
            generation: 1,
            seq: 1,
            region: Arc::from(region),
            active_calls: active,
            capacity,
            cpu_permille: 0,
            draining: false,
            version: Arc::from("0"),
            sip_addr: format!("127.0.0.1:{}", 5000 + n).parse().expect("addr"),
            http_addr: "127.0.0.1:8080".parse().expect("addr"),
            mesh_addr: None,
        }),
    }
}

fn chosen<'a>(regions: &[&str], members: &'a [MemberView]) -> Option<&'a str> {
    choose_peer("me", regions, members).map(|h| &*h.edge_id)
}

#[test]
fn no_peers_or_only_this_edge_gives_none() {
    assert_eq!(chosen(&[], &[]), None);
    assert_eq!(chosen(&[], &[member("me", "eu", 0, 10)]), None);
}

#[test]
fn suspect_down_draining_full_and_silent_peers_are_skipped() {
    let mut suspect = member("a", "eu", 0, 10);
    suspect.state = MemberState::Suspect;
    let mut down = member("b", "eu", 0, 10);
    down.state = MemberState::Down;
    let mut draining = member("c", "eu", 0, 10);
    if let Some(h) = draining.health.as_mut() {
        h.draining = true;
    }
    let full = member("d", "eu", 10, 10);
    let over = member("e", "eu", 12, 10);
    let no_capacity = member("f", "eu", 0, 0);
    let mut silent = member("g", "eu", 0, 10);
    silent.health = None;
    let all = [suspect, down, draining, full, over, no_capacity, silent];
    assert_eq!(chosen(&["eu"], &all), None);
    let mut with_one = all.to_vec();
    with_one.push(member("h", "eu", 9, 10));
    assert_eq!(chosen(&["eu"], &with_one), Some("h"));
}

#[test]
fn the_home_region_comes_first_then_further_regions_in_order() {
    let members = [
        member("far", "ap", 0, 10),
        member("next", "us", 0, 10),
        member("home", "eu", 9, 10),
    ];
    assert_eq!(chosen(&["eu", "us", "ap"], &members), Some("home"));
    assert_eq!(chosen(&["ap", "us"], &members), Some("far"));
    assert_eq!(chosen(&["us", "ap"], &members), Some("next"));
    // Peers in regions that do not answer the number never take it.
    assert_eq!(chosen(&["sa"], &members), None);
}

#[test]
fn a_full_home_region_falls_to_the_next_region() {
    let members = [member("home", "eu", 10, 10), member("next", "us", 5, 10)];
    assert_eq!(chosen(&["eu", "us"], &members), Some("next"));
}

#[test]
fn the_least_loaded_share_wins_within_a_tier() {
    // 3/10 = 30 % against 20/100 = 20 %: the larger edge with more calls is less loaded.
    let members = [member("small", "eu", 3, 10), member("large", "eu", 20, 100)];
    assert_eq!(chosen(&["eu"], &members), Some("large"));
    // A number answered everywhere puts every region in one tier.
    let members = [member("x", "eu", 5, 10), member("y", "us", 1, 10)];
    assert_eq!(chosen(&[], &members), Some("y"));
}

#[test]
fn ties_go_to_the_lowest_edge_id_whatever_the_order() {
    let a = member("edge-a", "eu", 1, 10);
    let b = member("edge-b", "eu", 2, 20);
    assert_eq!(chosen(&["eu"], &[a.clone(), b.clone()]), Some("edge-a"));
    assert_eq!(chosen(&["eu"], &[b, a]), Some("edge-a"));
}

#[test]
fn this_edge_is_never_chosen_even_when_least_loaded() {
    let members = [member("me", "eu", 0, 10), member("other", "eu", 8, 10)];
    assert_eq!(chosen(&["eu"], &members), Some("other"));
}

#[test]
fn a_call_leaving_for_its_home_goes_only_home_and_a_full_edge_tries_home_then_its_own() {
    use super::{redirect_regions, RedirectCause::*};
    assert_eq!(redirect_regions(Some("eu"), "us", OutOfRegion), ["eu"]);
    assert_eq!(redirect_regions(Some("eu"), "us", Capacity), ["eu", "us"]);
    assert_eq!(redirect_regions(Some("eu"), "eu", Draining), ["eu"]);
    assert!(redirect_regions(None, "eu", Capacity).is_empty());
}

#[test]
fn the_contact_names_the_peer_the_transport_and_the_loop_guard() {
    use super::redirect_contact;
    use crate::sip::Transport;
    let peer = member("x", "eu", 0, 10);
    let health = peer.health.as_ref().expect("health");
    let addr = health.sip_addr;
    assert_eq!(
        redirect_contact("+4420", health, Transport::Udp),
        format!("sip:+4420@{addr};freya-redirected")
    );
    assert_eq!(
        redirect_contact("demo", health, Transport::Tcp),
        format!("sip:demo@{addr};transport=tcp;freya-redirected")
    );
    // A hostile user part cannot smuggle parameters or headers into our Contact.
    assert_eq!(
        redirect_contact("a;maddr=evil?X=1>", health, Transport::Udp),
        format!("sip:amaddr=evilX=1@{addr};freya-redirected")
    );
}

#[test]
fn a_webhook_call_runs_here_when_it_can_else_on_a_live_peer_never_on_a_dead_one() {
    use super::{place, Placement, RedirectCause};
    let live = member("b", "eu", 1, 10);
    let mut dead = member("a", "eu", 0, 10);
    dead.state = MemberState::Down;
    let members = [dead, live];
    let on = |placement: Placement<'_>| match placement {
        Placement::Peer(h) => Some(h.edge_id.to_string()),
        Placement::Here => Some("here".to_owned()),
        Placement::Nowhere => None,
    };
    assert_eq!(
        on(place("me", "eu", Some("eu"), None, &members)).as_deref(),
        Some("here")
    );
    for cause in [RedirectCause::Draining, RedirectCause::Capacity] {
        assert_eq!(
            on(place("me", "eu", Some("eu"), Some(cause), &members)).as_deref(),
            Some("b"),
            "the live peer, not the dead one with less load"
        );
        assert_eq!(
            on(place("me", "eu", Some("eu"), Some(cause), &members[..1])),
            None,
            "only a dead peer: nowhere"
        );
    }
    // Out of its home region with no home peer: kept here.
    assert_eq!(
        on(place(
            "me",
            "us",
            Some("ap"),
            Some(RedirectCause::OutOfRegion),
            &members
        ))
        .as_deref(),
        Some("here")
    );
    assert_eq!(
        on(place(
            "me",
            "us",
            Some("eu"),
            Some(RedirectCause::OutOfRegion),
            &members
        ))
        .as_deref(),
        Some("b")
    );
}

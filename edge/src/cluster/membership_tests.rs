//! The membership core in simulated time over an in-memory network: discovery from one seed,
//! death within the detection budget, a partition that heals, a flapping member, a restart,
//! health gossip, and sealed datagrams from outside the cluster.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const WALL: u64 = 1_800_000_000_000;

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 7946))
}

fn peer(n: u8, generation: u64) -> Peer {
    Peer {
        id: Arc::from(format!("edge-{n}").as_str()),
        addr: addr(n),
        generation,
    }
}

fn health(n: u8, calls: u32) -> PeerHealth {
    PeerHealth {
        edge_id: Arc::from(format!("edge-{n}").as_str()),
        generation: 0,
        seq: 0,
        region: Arc::from("local"),
        active_calls: calls,
        capacity: 10,
        cpu_permille: 5,
        draining: false,
        version: Arc::from("test"),
        sip_addr: SocketAddr::from(([127, 0, 0, n], 5060)),
        http_addr: SocketAddr::from(([127, 0, 0, n], 8080)),
        mesh_addr: None,
    }
}

/// Members on a simulated network where 1 ms passes per hop and links can be cut.
struct Net {
    now: Instant,
    start: Instant,
    nodes: Vec<Option<Membership>>,
    /// Pairs (by index) that cannot talk; a node alone in `dead` talks to no one.
    cut: HashSet<(usize, usize)>,
    dead: HashSet<usize>,
    in_flight: Vec<(Instant, usize, SocketAddr, Vec<u8>)>,
    downs: Vec<(Duration, usize, Peer)>,
}

impl Net {
    fn new(count: u8) -> Self {
        let start = Instant::now();
        let mut nodes = Vec::new();
        for n in 1..=count {
            nodes.push(Some(Self::node(n, 1, start)));
        }
        let mut net = Self {
            now: start,
            start,
            nodes,
            cut: HashSet::new(),
            dead: HashSet::new(),
            in_flight: Vec::new(),
            downs: Vec::new(),
        };
        for i in 0..net.nodes.len() {
            let now = net.now;
            if let Some(node) = net.nodes[i].as_mut() {
                node.add_seeds(now, [addr(1)]);
                node.set_health(now, health(i as u8 + 1, 0));
            }
        }
        net
    }

    fn node(n: u8, generation: u64, now: Instant) -> Membership {
        Membership::new(
            peer(n, generation),
            GossipKey::derive("cluster secret"),
            MembershipSettings::default(),
            now,
            WALL,
            u64::from(n) * 7919 + generation,
        )
    }

    fn index_of(&self, to: SocketAddr) -> Option<usize> {
        (1..=self.nodes.len() as u8).position(|n| addr(n) == to)
    }

    fn blocked(&self, a: usize, b: usize) -> bool {
        self.dead.contains(&a)
            || self.dead.contains(&b)
            || self.cut.contains(&(a, b))
            || self.cut.contains(&(b, a))
    }

    /// Runs the network until `until` after the start.
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        while self.now < end {
            for i in 0..self.nodes.len() {
                let Some(node) = self.nodes[i].as_mut() else {
                    continue;
                };
                node.handle_timeout(self.now);
                while let Some(t) = node.poll_transmit() {
                    self.in_flight
                        .push((self.now + Duration::from_millis(1), i, t.to, t.bytes));
                }
                while let Some(event) = node.poll_event() {
                    if let ClusterEvent::Changed {
                        peer,
                        state: MemberState::Down,
                    } = event
                    {
                        self.downs.push((self.now - self.start, i, peer));
                    }
                }
            }
            let due: Vec<_> = {
                let now = self.now;
                let (due, later) = self.in_flight.drain(..).partition(|(at, ..)| *at <= now);
                self.in_flight = later;
                due
            };
            for (_, from, to, bytes) in due {
                let Some(target) = self.index_of(to) else {
                    continue;
                };
                if self.blocked(from, target) {
                    continue;
                }
                let now = self.now;
                if let Some(node) = self.nodes[target].as_mut() {
                    node.handle_datagram(now, addr(from as u8 + 1), &bytes);
                }
            }
            let next_timer = self
                .nodes
                .iter()
                .flatten()
                .filter_map(|n| n.poll_timeout())
                .min();
            let next_packet = self.in_flight.iter().map(|(at, ..)| *at).min();
            let next = [next_timer, next_packet, Some(end)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end);
            self.now = next
                .max(self.now + Duration::from_millis(1))
                .min(end.max(self.now));
            if self.now == end {
                break;
            }
        }
    }

    fn state_at(&self, viewer: usize, of: u8) -> Option<MemberState> {
        let node = self.nodes[viewer].as_ref()?;
        node.members(self.now)
            .into_iter()
            .filter(|m| m.peer.id.as_ref() == format!("edge-{of}"))
            .max_by_key(|m| m.peer.generation)
            .map(|m| m.state)
    }

    fn all_alive(&self) -> bool {
        let count = self.nodes.len();
        (0..count).all(|viewer| {
            self.dead.contains(&viewer)
                || (1..=count as u8).all(|of| self.state_at(viewer, of) == Some(MemberState::Alive))
        })
    }
}

#[test]
fn members_find_each_other_from_one_seed() {
    let mut net = Net::new(4);
    net.run_until(Duration::from_secs(3));
    assert!(net.all_alive(), "every member alive at every member");
}

#[test]
fn a_silent_member_is_down_at_every_survivor_within_three_seconds() {
    let mut net = Net::new(3);
    net.run_until(Duration::from_secs(3));
    assert!(net.all_alive());
    net.dead.insert(2);
    let killed = net.now - net.start;
    net.run_until(killed + Duration::from_secs(3));
    for survivor in [0, 1] {
        assert_eq!(
            net.state_at(survivor, 3),
            Some(MemberState::Down),
            "at {survivor}"
        );
        let (at, ..) = net
            .downs
            .iter()
            .find(|(_, viewer, p)| *viewer == survivor && p.addr == addr(3))
            .expect("a down event");
        assert!(*at - killed <= Duration::from_secs(3), "{:?}", *at - killed);
    }
}

#[test]
fn a_member_that_leaves_is_down_everywhere_at_once_without_being_probed() {
    let mut net = Net::new(3);
    net.run_until(Duration::from_secs(3));
    assert!(net.all_alive());
    let left = net.now - net.start;
    let now = net.now;
    let mut leaver = net.nodes[2].take().expect("the third member");
    leaver.leave(now);
    while let Some(t) = leaver.poll_transmit() {
        net.in_flight
            .push((now + Duration::from_millis(1), 2, t.to, t.bytes));
    }
    // The member is gone (`nodes[2]` is empty): no probe of it is answered. Probing alone
    // takes the probe period plus the suspicion time (over a second); the goodbye one hop.
    net.run_until(left + Duration::from_millis(50));
    for survivor in [0, 1] {
        assert_eq!(
            net.state_at(survivor, 3),
            Some(MemberState::Down),
            "at {survivor}"
        );
    }
}

#[test]
fn a_partition_marks_the_other_side_down_and_heals() {
    let mut net = Net::new(4);
    net.run_until(Duration::from_secs(3));
    for a in [0, 1] {
        for b in [2, 3] {
            net.cut.insert((a, b));
        }
    }
    net.run_until(Duration::from_secs(9));
    assert_eq!(net.state_at(0, 3), Some(MemberState::Down));
    assert_eq!(net.state_at(3, 1), Some(MemberState::Down));
    assert_eq!(
        net.state_at(0, 2),
        Some(MemberState::Alive),
        "its own side stays"
    );
    net.cut.clear();
    net.run_until(Duration::from_secs(20));
    assert!(net.all_alive(), "the partition healed");
}

#[test]
fn a_flapping_member_is_suspected_not_downed_and_a_long_outage_downs_it_until_it_returns() {
    let mut net = Net::new(3);
    net.run_until(Duration::from_secs(3));
    // Short outages, shorter than the suspicion window: suspected at worst, never down.
    let mut t = Duration::from_secs(3);
    for _ in 0..8 {
        net.dead.insert(2);
        t += Duration::from_millis(300);
        net.run_until(t);
        net.dead.remove(&2);
        t += Duration::from_secs(2);
        net.run_until(t);
    }
    assert!(
        !net.downs.iter().any(|(_, _, p)| p.addr == addr(3)),
        "short flaps never declare it down: {:?}",
        net.downs
    );
    assert!(net.all_alive());
    // A long outage does; it comes back alive (as a newer generation) once it can talk again.
    net.dead.insert(2);
    t += Duration::from_secs(4);
    net.run_until(t);
    assert_eq!(net.state_at(0, 3), Some(MemberState::Down));
    net.dead.remove(&2);
    t += Duration::from_secs(8);
    net.run_until(t);
    assert!(net.all_alive(), "it rejoined");
}

#[test]
fn a_restarted_member_replaces_its_old_generation() {
    let mut net = Net::new(3);
    net.run_until(Duration::from_secs(3));
    let mut restarted = Net::node(3, 5, net.now);
    restarted.add_seeds(net.now, [addr(1)]);
    net.nodes[2] = Some(restarted);
    net.run_until(Duration::from_secs(6));
    assert!(net.all_alive());
    let members = net.nodes[0].as_ref().expect("node").members(net.now);
    let of_three: Vec<_> = members.iter().filter(|m| m.peer.addr == addr(3)).collect();
    assert_eq!(of_three.len(), 1, "{members:?}");
    assert_eq!(of_three[0].peer.generation, 5);
}

#[test]
fn health_reaches_every_member_and_follows_changes() {
    let mut net = Net::new(3);
    net.run_until(Duration::from_secs(3));
    let now = net.now;
    net.nodes[2]
        .as_mut()
        .expect("node")
        .set_health(now, health(3, 7));
    net.run_until(Duration::from_secs(5));
    for viewer in [0, 1] {
        let members = net.nodes[viewer].as_ref().expect("node").members(net.now);
        let three = members
            .iter()
            .find(|m| m.peer.addr == addr(3))
            .expect("member 3");
        let report = three.health.as_ref().expect("a report");
        assert_eq!(report.active_calls, 7);
        assert_eq!(report.sip_addr, SocketAddr::from(([127, 0, 0, 3], 5060)));
    }
}

#[test]
fn datagrams_sealed_with_another_key_add_no_one() {
    let now = Instant::now();
    let mut outsider = Membership::new(
        peer(9, 1),
        GossipKey::derive("a guess"),
        MembershipSettings::default(),
        now,
        WALL,
        9,
    );
    outsider.add_seeds(now, [addr(1)]);
    outsider.handle_timeout(now);
    let mut member = Net::node(1, 1, now);
    let mut sent = 0;
    while let Some(t) = outsider.poll_transmit() {
        member.handle_datagram(now, addr(9), &t.bytes);
        sent += 1;
    }
    assert!(sent > 0);
    assert_eq!(member.members(now).len(), 1, "only itself");
    let drops: Vec<_> = std::iter::from_fn(|| member.poll_event()).collect();
    assert!(drops
        .iter()
        .all(|e| *e == ClusterEvent::Dropped(super::seal::Dropped::BadTag)));
    assert_eq!(drops.len(), sent);
}

#[test]
fn a_revoked_member_is_shown_down_and_without_health_while_it_keeps_gossiping() {
    let mut net = Net::new(3);
    net.run_until(Duration::from_secs(3));
    assert!(net.all_alive());
    let now = net.now;
    for viewer in [0, 1] {
        if let Some(node) = net.nodes[viewer].as_mut() {
            node.set_revoked(now, [Arc::from("edge-3")]);
        }
    }
    // Edge 3 keeps gossiping (it still holds the key): its peers keep it down regardless.
    let later = net.now - net.start + Duration::from_secs(3);
    net.run_until(later);
    for viewer in [0, 1] {
        assert_eq!(
            net.state_at(viewer, 3),
            Some(MemberState::Down),
            "at {viewer}"
        );
        let node = net.nodes[viewer].as_ref().expect("node");
        let member = node
            .members(net.now)
            .into_iter()
            .find(|m| m.peer.id.as_ref() == "edge-3")
            .expect("still listed");
        assert!(
            member.health.is_none(),
            "a revoked member's health is not shown"
        );
        assert_eq!(
            net.state_at(viewer, 2 - viewer as u8),
            Some(MemberState::Alive)
        );
    }
    // The edge that was not told still sees it alive: the list is what hides it.
    assert_eq!(net.state_at(2, 1), Some(MemberState::Alive));
}

//! Gossip overhead of the cluster's membership core with the default `[cluster]` settings:
//! N members in one process over an in-memory network (1 ms per hop) in simulated time, each
//! reporting its health as an edge does. After a warm-up, counts the datagrams and bytes (seal
//! included, UDP/IP headers not) each member sends per second, then kills one member and reports
//! how long the survivors took to mark it down.
//!
//! `cargo run --release -p freya-edge --example cluster_gossip -- 3 50`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use freya_edge::cluster::health::PeerHealth;
use freya_edge::cluster::seal::GossipKey;
use freya_edge::cluster::{ClusterEvent, MemberState, Membership, MembershipSettings, Peer};

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, (i / 250) as u8, (i % 250 + 1) as u8], 7946))
}

struct Sim {
    now: Instant,
    nodes: Vec<Membership>,
    dead: Option<usize>,
    in_flight: Vec<(Instant, usize, Vec<u8>)>,
    sent_packets: u64,
    sent_bytes: u64,
    downs: Vec<(usize, Instant)>,
}

impl Sim {
    fn new(count: usize) -> Self {
        let now = Instant::now();
        let nodes = (0..count)
            .map(|i| {
                let id = format!("edge-{i}");
                let mut node = Membership::new(
                    Peer {
                        id: Arc::from(id.as_str()),
                        addr: addr(i),
                        generation: 1,
                    },
                    GossipKey::derive("bench"),
                    MembershipSettings::default(),
                    now,
                    1_800_000_000_000,
                    i as u64 + 1,
                );
                node.add_seeds(now, [addr(0)]);
                node.set_health(
                    now,
                    PeerHealth {
                        edge_id: Arc::from(id.as_str()),
                        generation: 1,
                        seq: 0,
                        region: Arc::from("eu-west-1"),
                        active_calls: 12,
                        capacity: 500,
                        cpu_permille: 300,
                        draining: false,
                        version: Arc::from("0.1.0"),
                        sip_addr: SocketAddr::from(([10, 0, 0, 1], 5060)),
                        http_addr: SocketAddr::from(([10, 0, 0, 1], 8081)),
                        mesh_addr: Some(SocketAddr::from(([10, 0, 0, 1], 7443))),
                    },
                );
                node
            })
            .collect();
        Self {
            now,
            nodes,
            dead: None,
            in_flight: Vec::new(),
            sent_packets: 0,
            sent_bytes: 0,
            downs: Vec::new(),
        }
    }

    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            let count = self.nodes.len();
            for i in 0..count {
                if Some(i) == self.dead {
                    continue;
                }
                let node = &mut self.nodes[i];
                if node.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.handle_timeout(self.now);
                }
                while let Some(t) = node.poll_transmit() {
                    self.sent_packets += 1;
                    self.sent_bytes += t.bytes.len() as u64;
                    let to = (0..count).find(|&j| addr(j) == t.to);
                    if let Some(to) = to {
                        self.in_flight
                            .push((self.now + Duration::from_millis(1), to, t.bytes));
                    }
                }
                while let Some(event) = node.poll_event() {
                    if let ClusterEvent::Changed {
                        peer,
                        state: MemberState::Down,
                    } = event
                    {
                        if Some(peer.addr) == self.dead.map(addr) {
                            self.downs.push((i, self.now));
                        }
                    }
                }
            }
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(at, ..)| *at <= now);
            self.in_flight = later;
            for (_, to, bytes) in due {
                if Some(to) != self.dead {
                    self.nodes[to].handle_datagram(now, addr(0), &bytes);
                }
            }
            let next = self
                .nodes
                .iter()
                .filter_map(Membership::poll_timeout)
                .chain(self.in_flight.iter().map(|(at, ..)| *at))
                .min()
                .unwrap_or(end);
            self.now = next.clamp(self.now + Duration::from_millis(1), end);
        }
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![3, 50] } else { sizes };
    println!("members  packets/s/member  bytes/s/member  mean datagram  detection (first / last survivor)");
    for count in sizes {
        let mut sim = Sim::new(count);
        sim.run_for(Duration::from_secs(15));
        let (packets, bytes) = (sim.sent_packets, sim.sent_bytes);
        let window = Duration::from_secs(60);
        sim.run_for(window);
        let packets = sim.sent_packets - packets;
        let bytes = sim.sent_bytes - bytes;
        let per = (count as f64) * window.as_secs_f64();
        sim.dead = Some(count - 1);
        let killed = sim.now;
        sim.run_for(Duration::from_secs(10));
        let mut times: Vec<Duration> = sim.downs.iter().map(|(_, at)| *at - killed).collect();
        times.sort();
        let survivors = count - 1;
        println!(
            "{count:>7}  {:>16.1}  {:>14.0}  {:>11.0} B  {:?} / {:?} ({} of {survivors} survivors)",
            packets as f64 / per,
            bytes as f64 / per,
            bytes as f64 / packets.max(1) as f64,
            times.first().copied().unwrap_or_default(),
            times.last().copied().unwrap_or_default(),
            times.len(),
        );
    }
}

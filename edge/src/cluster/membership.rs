//! The membership core: foca (SWIM) with our identity, codec and health board, its timers in
//! one deadline heap, every datagram sealed and opened ([`super::seal`]), and a table of members
//! with the moment each last changed state. Sans-IO in the quinn-proto manner: datagrams and
//! time go in (`handle_datagram`, `handle_timeout`, `set_health`, `add_seeds`), datagrams,
//! events and the next deadline come out (`poll_transmit`, `poll_event`, `poll_timeout`). The
//! shell (`shell.rs`) owns the socket and the clock; tests drive many cores over an in-memory
//! network in simulated time (`membership_tests.rs`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PeriodicParams, State, Timer};
use rand_pcg::rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;

use super::health::{HealthBoard, PeerHealth};
use super::identity::{Peer, PeerCodec};
use super::seal::{self, Dropped, GossipKey, Opener};

/// How the core probes, suspects and gossips (from `[cluster]`, see `EdgeConfig`).
#[derive(Debug, Clone)]
pub struct MembershipSettings {
    /// One member is probed per period.
    pub probe_period: Duration,
    /// How long a direct probe waits before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// Members asked to probe indirectly.
    pub indirect_probes: usize,
    /// How long a suspect has to refute before it is declared down.
    pub suspect_to_down_after: Duration,
    /// How often updates are pushed to a few members besides the probe cycle.
    pub gossip_period: Duration,
    /// How often this edge re-broadcasts its health.
    pub health_period: Duration,
    /// How often seeds are announced to while no member is known.
    pub announce_period: Duration,
    /// Largest datagram sent or accepted, seal included.
    pub max_datagram: usize,
    /// How far a datagram's send time may be from ours.
    pub replay_window: Duration,
    /// Most members (and health reports) kept.
    pub max_members: usize,
}

impl Default for MembershipSettings {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(400),
            probe_rtt: Duration::from_millis(150),
            indirect_probes: 2,
            suspect_to_down_after: Duration::from_millis(1_000),
            gossip_period: Duration::from_millis(400),
            health_period: Duration::from_millis(1_000),
            announce_period: Duration::from_millis(1_000),
            max_datagram: 1_400,
            replay_window: Duration::from_secs(10),
            max_members: 256,
        }
    }
}

/// A member's state as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Alive,
    Suspect,
    Down,
}

impl MemberState {
    fn of(state: State) -> Self {
        match state {
            State::Alive => Self::Alive,
            State::Suspect => Self::Suspect,
            State::Down => Self::Down,
        }
    }

    /// The state's name in `GET /cluster` and the control plane's report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
        }
    }
}

/// A member as this edge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub peer: Peer,
    pub state: MemberState,
    /// When this edge saw it change to `state`.
    pub since: Instant,
    /// Its latest health report, if one has arrived.
    pub health: Option<PeerHealth>,
}

/// What happened, for the shell to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A member changed state (or appeared).
    Changed { peer: Peer, state: MemberState },
    /// A datagram was dropped before foca, or refused by it.
    Dropped(Dropped),
    /// This edge was declared down and rejoined with a newer generation.
    Rejoined(Peer),
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

struct Record {
    peer: Peer,
    state: MemberState,
    since: Instant,
}

type Swim = Foca<Peer, PeerCodec, Pcg64Mcg, HealthBoard>;

/// One edge's view of the cluster, and its part in keeping it.
pub struct Membership {
    foca: Swim,
    runtime: AccumulatingRuntime<Peer>,
    settings: MembershipSettings,
    key: GossipKey,
    opener: Opener,
    /// An `Instant` and the wall clock at that instant: seals carry wall time.
    epoch: (Instant, u64),
    rng: Pcg64Mcg,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_events: HashMap<u64, Timer<Peer>>,
    next_timer: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClusterEvent>,
    members: BTreeMap<SocketAddr, Record>,
    board: HealthBoard,
    seeds: Vec<SocketAddr>,
    next_announce: Instant,
    health: Option<PeerHealth>,
    next_health: Instant,
    /// Edges whose certificate the control plane revoked: shown down whatever their gossip says.
    revoked: std::collections::HashSet<Arc<str>>,
}

impl Membership {
    /// A member `me` that knows no one yet; `wall_ms` is the wall clock at `now`, `seed` seeds
    /// foca's random choices.
    pub fn new(
        me: Peer,
        key: GossipKey,
        settings: MembershipSettings,
        now: Instant,
        wall_ms: u64,
        seed: u64,
    ) -> Self {
        let config = foca_config(&settings);
        let board = HealthBoard::new(settings.max_members);
        let foca = Foca::with_custom_broadcast(
            me,
            config,
            Pcg64Mcg::seed_from_u64(seed),
            PeerCodec,
            board.clone(),
        );
        let opener = Opener::new(
            key.clone(),
            settings.max_datagram,
            u64::try_from(settings.replay_window.as_millis()).unwrap_or(u64::MAX),
            // Datagrams a member can take within one window at a generous rate per member.
            settings.max_members.saturating_mul(256).max(4_096),
        );
        Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            key,
            opener,
            epoch: (now, wall_ms),
            rng: Pcg64Mcg::seed_from_u64(seed ^ 0x5eed),
            timers: BinaryHeap::new(),
            timer_events: HashMap::new(),
            next_timer: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            members: BTreeMap::new(),
            board,
            seeds: Vec::new(),
            next_announce: now,
            health: None,
            next_health: now,
            revoked: Default::default(),
            settings,
        }
    }

    /// Who this edge is in the cluster (its generation grows on a rejoin).
    pub fn me(&self) -> &Peer {
        self.foca.identity()
    }

    /// Adds addresses to announce to while no member is known (configured seeds, the control
    /// plane's list); our own address is ignored.
    pub fn add_seeds(&mut self, now: Instant, seeds: impl IntoIterator<Item = SocketAddr>) {
        let me = self.me().addr;
        for seed in seeds {
            if seed != me && !self.seeds.contains(&seed) {
                self.seeds.push(seed);
            }
        }
        self.next_announce = now;
    }

    /// This edge's health, broadcast now and then every `health_period`.
    pub fn set_health(&mut self, now: Instant, mut health: PeerHealth) {
        // The sequence is ours to keep: peers take only a larger one.
        health.seq = self.health.as_ref().map_or(0, |old| old.seq);
        let changed = self.health.as_ref().is_none_or(|old| {
            (old.active_calls, old.draining, old.capacity)
                != (health.active_calls, health.draining, health.capacity)
        });
        self.health = Some(health);
        if changed {
            self.next_health = now;
        }
        self.handle_timeout(now);
    }

    /// A datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, datagram: &[u8]) {
        let wall = self.wall_ms(now);
        match self.opener.open(wall, datagram) {
            Ok(body) => {
                if self.foca.handle_data(body, &mut self.runtime).is_err() {
                    self.events
                        .push_back(ClusterEvent::Dropped(Dropped::Refused));
                }
            }
            Err(reason) => self.events.push_back(ClusterEvent::Dropped(reason)),
        }
        self.drain_runtime(now);
    }

    /// Runs every timer due at `now`: foca's, the health broadcast, announcing to seeds.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(timer) = self.timer_events.remove(&id) {
                // An error here is foca refusing a stale timer; nothing to do about it.
                let _ = self.foca.handle_timer(timer, &mut self.runtime);
            }
            self.drain_runtime(now);
        }
        if now >= self.next_health {
            self.next_health = now + self.settings.health_period;
            self.broadcast_health();
        }
        if now >= self.next_announce {
            self.next_announce = now + self.settings.announce_period;
            if self.foca.num_members() == 0 {
                for seed in self.seeds.clone() {
                    let _ = self
                        .foca
                        .announce(Peer::placeholder(seed), &mut self.runtime);
                }
            }
        }
        self.drain_runtime(now);
    }

    /// This edge leaves the cluster: foca tells its members at once (they mark it down without
    /// probing it first). Drain `poll_transmit` afterwards; the core does nothing further.
    pub fn leave(&mut self, now: Instant) {
        // An error is foca having no member to tell: nobody to say goodbye to.
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain_runtime(now);
    }

    /// The next moment `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        [timer, Some(self.next_health), Some(self.next_announce)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClusterEvent> {
        self.events.pop_front()
    }

    /// The edges the control plane revoked (its whole list each time): they stay down in
    /// [`members`](Self::members), and their health is not shown, whatever their gossip claims.
    /// Gossip is sealed with a key every edge shares, so this hides them from routing and the
    /// reports; it cannot keep a revoked edge from speaking (see SECURITY.md).
    pub fn set_revoked(&mut self, now: Instant, edges: impl IntoIterator<Item = Arc<str>>) {
        let revoked: std::collections::HashSet<Arc<str>> = edges.into_iter().collect();
        if revoked == self.revoked {
            return;
        }
        for record in self.members.values_mut() {
            let was = self.revoked.contains(&record.peer.id);
            let is = revoked.contains(&record.peer.id);
            if was != is {
                record.since = now;
                self.events.push_back(ClusterEvent::Changed {
                    peer: record.peer.clone(),
                    state: if is { MemberState::Down } else { record.state },
                });
            }
        }
        self.revoked = revoked;
    }

    /// Every member known (down ones included, until foca forgets them), this edge first.
    pub fn members(&self, now: Instant) -> Vec<MemberView> {
        let me = self.me().clone();
        let board = &self.board;
        let mut all = vec![MemberView {
            health: board.get(&me.id),
            peer: me,
            state: MemberState::Alive,
            since: self.epoch.0.min(now),
        }];
        all.extend(self.members.values().map(|r| {
            let revoked = self.revoked.contains(&r.peer.id);
            MemberView {
                peer: r.peer.clone(),
                state: if revoked { MemberState::Down } else { r.state },
                since: r.since,
                health: board
                    .get(&r.peer.id)
                    .filter(|h| !revoked && h.generation <= r.peer.generation),
            }
        }));
        all
    }

    /// Datagrams this member could not yet send (foca's backlog of updates), for the bench.
    pub fn updates_backlog(&self) -> usize {
        self.foca.updates_backlog()
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch.0).as_millis();
        self.epoch
            .1
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    fn broadcast_health(&mut self) {
        let Some(health) = self.health.as_mut() else {
            return;
        };
        health.seq += 1;
        health.generation = self.foca.identity().generation;
        let bytes = health.encode();
        // Refused only when over foca's packet size, which MAX_HEALTH_LEN is far below.
        let _ = self.foca.add_broadcast(&bytes);
    }

    /// Moves what foca asked for into our queues, then notes state changes.
    fn drain_runtime(&mut self, now: Instant) {
        let wall = self.wall_ms(now);
        while let Some((to, body)) = self.runtime.to_send() {
            let nonce = rand_pcg::rand_core::Rng::next_u64(&mut self.rng);
            self.transmits.push_back(Transmit {
                to: to.addr,
                bytes: seal::seal(&self.key, wall, nonce, &body),
            });
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let id = self.next_timer;
            self.next_timer += 1;
            self.timers.push(Reverse((now + after, id)));
            self.timer_events.insert(id, timer);
        }
        while let Some(note) = self.runtime.to_notify() {
            if let OwnedNotification::Rejoin(me) = note {
                tracing::warn!(
                    generation = me.generation,
                    "declared down by the cluster; rejoined"
                );
                self.next_health = now;
                self.events.push_back(ClusterEvent::Rejoined(me));
            }
        }
        self.note_changes(now);
    }

    fn note_changes(&mut self, now: Instant) {
        let mut present = Vec::with_capacity(self.members.len());
        for member in self.foca.iter_membership_state() {
            let peer = member.id();
            let state = MemberState::of(member.state());
            present.push(peer.addr);
            let changed = match self.members.get_mut(&peer.addr) {
                Some(record) if record.peer == *peer && record.state == state => false,
                Some(record) => {
                    record.peer = peer.clone();
                    record.state = state;
                    record.since = now;
                    true
                }
                None => {
                    self.members.insert(
                        peer.addr,
                        Record {
                            peer: peer.clone(),
                            state,
                            since: now,
                        },
                    );
                    true
                }
            };
            if changed {
                self.events.push_back(ClusterEvent::Changed {
                    peer: peer.clone(),
                    state,
                });
            }
        }
        if present.len() != self.members.len() {
            self.members.retain(|addr, _| present.contains(addr));
        }
    }
}

fn foca_config(settings: &MembershipSettings) -> Config {
    let nonzero = |n: usize| NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
    Config {
        probe_period: settings.probe_period,
        probe_rtt: settings.probe_rtt,
        num_indirect_probes: nonzero(settings.indirect_probes),
        max_transmissions: NonZeroU8::new(6).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: settings.suspect_to_down_after,
        remove_down_after: Some(Duration::from_secs(3_600)),
        max_packet_size: nonzero(settings.max_datagram.saturating_sub(seal::OVERHEAD)),
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: nonzero(1),
        }),
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(2),
            num_members: nonzero(1),
        }),
        periodic_gossip: Some(PeriodicParams {
            frequency: settings.gossip_period,
            num_members: nonzero(2),
        }),
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;

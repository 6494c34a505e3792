//! The tokio task around the membership core: one UDP socket, the clock and the edge's health
//! in, datagrams out, the members published on a watch channel for `GET /cluster` and the
//! control link. No decision is made here; every branch hands something to the core and then
//! drains it ([`ClusterTask::drain`]).
//!
//! It runs on a thread and a current-thread runtime of its own ([`on_own_thread`]), with the
//! cluster reporter beside it: on an edge whose call tasks keep the main runtime's workers busy
//! (speech recognition and synthesis of every call), probes, acks and a peer's `down` report
//! queued behind them were measured up to 20 s late under load; on their own thread they wait
//! only for the kernel's scheduler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::health::PeerHealth;
use super::join::JoinGate;
use super::membership::{ClusterEvent, MemberState, Membership};
use super::report::ClusterSnapshot;
use crate::cpu::CpuSampler;
use crate::metrics::{ClusterDropCounter, ClusterMemberGauge};
use crate::state::EdgeState;

/// How often the edge's own health is read and the snapshot republished.
const HEALTH_TICK: Duration = Duration::from_millis(500);
/// Receive buffer: larger than any datagram we accept, so an oversized one is seen whole (and
/// dropped as oversized) rather than cut to look valid.
const RECEIVE_BUFFER: usize = 65_536;

/// Everything the task needs, built by `Edge::start`.
pub(crate) struct ClusterTask {
    pub socket: UdpSocket,
    pub core: Membership,
    /// This edge's health report, less the live numbers the task fills in.
    pub health: PeerHealth,
    pub state: EdgeState,
    /// Whether the edge has joined yet (it takes no call before).
    pub join: JoinGate,
    /// Gossip addresses of peers, from the control plane's answer to our registration.
    pub seeds: watch::Receiver<Vec<SocketAddr>>,
    pub snapshot: watch::Sender<Arc<ClusterSnapshot>>,
    pub dropped: ClusterDropCounter,
    pub members: ClusterMemberGauge,
    /// The control plane's revocation list: those edges are shown down.
    pub revoked: watch::Receiver<Arc<[crate::trust::RevokedCertificate]>>,
}

/// Milliseconds since the epoch: the wall clock seals carry.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `work` (made inside it, so its sockets and channels belong to it) on a thread named
/// `name` with a current-thread runtime of its own; the receiver resolves when it has ended.
pub(crate) fn on_own_thread<F, Fut>(
    name: &str,
    work: F,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (done, ended) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(async move { work().await });
            let _ = done.send(());
        })?;
    Ok(ended)
}

impl ClusterTask {
    /// This task with its socket moved to the runtime it is polled from (a tokio socket
    /// belongs to the runtime it was registered with).
    pub(crate) fn on_this_runtime(mut self) -> std::io::Result<Self> {
        self.socket = UdpSocket::from_std(self.socket.into_std()?)?;
        Ok(self)
    }

    /// Gossips until `shutdown`, then leaves the cluster.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        let mut cpu = CpuSampler::new();
        let mut tick = tokio::time::interval(HEALTH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let initial = self.seeds.borrow_and_update().clone();
        self.core.add_seeds(Instant::now(), initial);
        loop {
            let deadline = self
                .core
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + HEALTH_TICK);
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Goodbye: peers mark this edge down now rather than after probing it.
                    self.core.leave(Instant::now());
                    self.drain().await;
                    return;
                }
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.core.handle_datagram(Instant::now(), from, &buf[..len]),
                    // ICMP errors of earlier sends surface here on some systems; nothing to do.
                    Err(e) => tracing::debug!(error = %e, "gossip socket receive error"),
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.core.handle_timeout(Instant::now()),
                _ = tick.tick() => {
                    let health = PeerHealth {
                        active_calls: self.state.active_calls(),
                        capacity: self.state.capacity(),
                        // Not ready (no configuration yet, or not joined) takes no call either.
                        draining: self.state.is_draining() || !self.state.is_ready(),
                        cpu_permille: cpu.sample(),
                        ..self.health.clone()
                    };
                    self.core.set_health(Instant::now(), health);
                    self.publish();
                }
                Ok(()) = self.revoked.changed() => {
                    let edges = crate::trust::Revocations::edges(&self.revoked.borrow_and_update());
                    self.core.set_revoked(Instant::now(), edges);
                }
                Ok(()) = self.seeds.changed() => {
                    let seeds = self.seeds.borrow_and_update().clone();
                    self.join.handle_registered_peers(&seeds);
                    self.core.add_seeds(Instant::now(), seeds);
                }
            }
            self.drain().await;
            self.check_joined();
        }
    }

    /// Until the edge has joined, whether it has now; once it has, it may take calls.
    fn check_joined(&mut self) {
        if self.join.is_joined() && self.state.is_joined() {
            return;
        }
        let now = Instant::now();
        if !self.join.is_joined() {
            let members = self.core.members(now);
            self.join.handle_members(now, &self.core.me().id, &members);
        }
        if self.join.is_joined() {
            self.state.set_joined(true);
            tracing::info!(
                has_configuration = self.state.snapshot().version > 0,
                "joined the cluster: taking calls once a configuration is held"
            );
        }
    }

    /// Sends what the core queued and acts on its events.
    async fn drain(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            // A lost datagram is what SWIM is built for; a send error is one.
            if let Err(e) = self.socket.send_to(&t.bytes, t.to).await {
                tracing::debug!(to = %t.to, error = %e, "gossip send failed");
            }
        }
        let mut changed = false;
        while let Some(event) = self.core.poll_event() {
            match event {
                ClusterEvent::Dropped(reason) => {
                    self.dropped
                        .get_or_create(&vec![("reason".into(), reason.label().into())])
                        .inc();
                }
                ClusterEvent::Changed { peer, state } => {
                    tracing::info!(peer = %peer.id, addr = %peer.addr, generation = peer.generation,
                        state = state.name(), "cluster member changed");
                    changed = true;
                }
                ClusterEvent::Rejoined(_) => changed = true,
            }
        }
        if changed {
            self.publish();
        }
    }

    fn publish(&self) {
        let members = self.core.members(Instant::now());
        for state in [MemberState::Alive, MemberState::Suspect, MemberState::Down] {
            let count = members.iter().filter(|m| m.state == state).count();
            self.members
                .get_or_create(&vec![("state".into(), state.name().into())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.snapshot.send_replace(Arc::new(ClusterSnapshot {
            me: self.core.me().clone(),
            members,
        }));
    }
}

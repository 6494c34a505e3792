//! The cluster: edges that know each other. Each edge runs SWIM (the `foca` crate) over UDP on
//! `cluster.bind`, seeded from `cluster.seeds` and from the peers the control plane lists at
//! registration; members gossip a small health report; every datagram is sealed with an HMAC
//! keyed from the shared secret. `membership.rs` is the sans-IO core (foca itself is sans-IO),
//! `shell.rs` the tokio task around it (one socket, one clock, no logic), `routing.rs` the
//! choice of the peer a refused INVITE is redirected to, `report.rs` what the
//! edge shows at `GET /cluster`; `control_link/cluster_report.rs` tells the control plane when
//! a peer changes state. [`bind`] sets it all up for `Edge::start`.
//!
//! **Invariant:** the core names no tokio, opens no socket and reads no clock; the shell only
//! moves datagrams and time.

mod config;
/// The health report: `edge/examples/cluster_gossip.rs` builds one per simulated member.
pub mod health;
/// Who a member is: the example and `edge/tests/cluster_gossip.rs` make their own members.
pub mod identity;
pub(crate) mod join;
/// The sans-IO core: the gossip example and the attack test drive it directly.
pub mod membership;
/// `GET /cluster`'s JSON: `edge/tests/cluster_gossip.rs` reads it back typed.
pub mod report;
/// Which peer takes a call this edge will not (the SIP task's redirects).
pub(crate) mod routing;
/// Sealing: the attack test forges and replays datagrams with it.
pub mod seal;
pub(crate) mod shell;

pub use config::ClusterConfig;
pub use identity::Peer;
pub use membership::{
    ClusterEvent, MemberState, MemberView, Membership, MembershipSettings, Transmit,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::metrics::EdgeMetrics;
use crate::state::EdgeState;
use health::PeerHealth;
use report::ClusterSnapshot;
use seal::GossipKey;
use shell::ClusterTask;

/// A bound cluster, ready to run: `Edge::start` spawns the task and registration feeds `peers`.
pub(crate) struct BoundCluster {
    pub task: ClusterTask,
    /// The address peers reach our gossip at.
    pub addr: SocketAddr,
    pub generation: u64,
    pub snapshots: watch::Receiver<Arc<ClusterSnapshot>>,
    pub peers: watch::Sender<Vec<SocketAddr>>,
}

/// What the edge tells its peers about itself besides its load.
pub(crate) struct SelfDescription<'a> {
    pub edge_id: &'a str,
    pub region: &'a str,
    pub sip_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where our mesh listens, gossiped so peers can join legs to our calls.
    pub mesh_addr: Option<SocketAddr>,
    pub secret: &'a str,
}

/// Binds `cluster.bind` when set; `None` when the edge runs no cluster.
pub(crate) async fn bind(
    config: &ClusterConfig,
    me: SelfDescription<'_>,
    state: EdgeState,
    metrics: &EdgeMetrics,
    revoked: watch::Receiver<Arc<[crate::trust::RevokedCertificate]>>,
) -> anyhow::Result<Option<BoundCluster>> {
    let Some(bind) = &config.bind else {
        return Ok(None);
    };
    let socket = UdpSocket::bind(bind)
        .await
        .with_context(|| format!("while binding cluster.bind {bind}"))?;
    let bound = socket.local_addr()?;
    let addr = match &config.advertise {
        Some(a) => a.parse().context("cluster.advertise")?,
        None if bound.ip().is_unspecified() => SocketAddr::new(me.sip_addr.ip(), bound.port()),
        None => bound,
    };
    let generation = shell::wall_ms();
    let peer = Peer {
        id: Arc::from(me.edge_id),
        addr,
        generation,
    };
    let now = Instant::now();
    let mut core = Membership::new(
        peer.clone(),
        GossipKey::derive(me.secret),
        config.settings(),
        now,
        generation,
        rand::random(),
    );
    core.add_seeds(now, config.seed_addrs());
    let (snapshot_tx, snapshots) = watch::channel(Arc::new(ClusterSnapshot {
        me: peer,
        members: core.members(now),
    }));
    let (peers, seeds) = watch::channel(Vec::new());
    let health = PeerHealth {
        edge_id: Arc::from(me.edge_id),
        generation,
        seq: 0,
        region: Arc::from(me.region),
        active_calls: 0,
        capacity: state.capacity(),
        cpu_permille: 0,
        // Not taking calls until it has joined (`join.rs`).
        draining: true,
        version: Arc::from(env!("CARGO_PKG_VERSION")),
        sip_addr: me.sip_addr,
        http_addr: me.http_addr,
        mesh_addr: me.mesh_addr,
    };
    tracing::info!(%addr, generation, "cluster gossip listening");
    state.set_joined(false);
    let join = join::JoinGate::new(now, config.join_wait(), !config.seeds.is_empty());
    Ok(Some(BoundCluster {
        task: ClusterTask {
            socket,
            core,
            health,
            state,
            join,
            seeds,
            snapshot: snapshot_tx,
            dropped: metrics.cluster_dropped.clone(),
            members: metrics.cluster_members.clone(),
            revoked,
        },
        addr,
        generation,
        snapshots,
        peers,
    }))
}

//! The QUIC mesh between edges: how a leg dialled on one edge joins a call that lives on
//! another. Audio frames travel as QUIC datagrams with a small header, control messages (join,
//! leave, mute, hang up) on a stream, between edges that authenticate each other with
//! certificates from one cluster CA. `codec.rs` is the wire format and `peers.rs` the
//! connection bookkeeping (both sans-IO, driven with `now`), `remote_leg.rs` the receiving
//! side's playout (a jitter buffer that conceals losses), `tls.rs` the credentials,
//! `verify.rs` who a peer is (its certificate's edge and cluster, the revoked serials),
//! `config.rs` the `[mesh]` section and `shell.rs` the quinn endpoint around them. An enrolled
//! edge's mesh uses its cluster identity (the control plane's CA the only root); configured
//! PEM files serve only a mesh without any control plane.
//!
//! **Invariant:** `codec.rs`, `peers.rs` and `remote_leg.rs` name no tokio, open no socket and
//! read no clock; the shell only moves bytes and time.

/// The wire format: the fuzz-style tests and the bench build frames with it.
pub mod codec;
mod config;
/// The dialling side's gate: which peers' dial requests are carried out.
pub mod host;
/// The task answering peers' dial requests.
pub(crate) mod hosting;
/// Connection bookkeeping: limits the shell enforces.
pub mod peers;
/// The receiving side's playout of a remote leg's audio.
pub mod remote_leg;
/// The quinn endpoint: `edge/tests/mesh.rs` and the bridge bench run two of them.
pub mod shell;
/// Credentials: an enrolled edge's cluster identity, or (no control plane) PEM files.
pub mod tls;
/// What a peer's certificate must name; the revoked serials.
pub mod verify;

pub use codec::{AudioFrame, AudioHeader, ControlMessage, HangupCause, LegKey, PayloadKind};
pub use config::MeshConfig;
pub use remote_leg::RemoteLegAudio;
pub use shell::{Mesh, MeshError, MeshInbound, MeshSettings};
pub use tls::{MeshTls, MeshTlsError};
pub use verify::{PeerName, RevokedPeers};

use std::net::SocketAddr;

use anyhow::Context;

use crate::trust::ClusterIdentity;
use tokio::sync::mpsc;

/// A bound mesh: the endpoint, the address peers dial, and the joins nobody here expected.
pub(crate) struct BoundMesh {
    pub mesh: Mesh,
    pub addr: SocketAddr,
    /// Joins and dials for no leg here: requests for `hosting.rs`.
    pub joins: mpsc::Receiver<(SocketAddr, ControlMessage)>,
}

/// Binds `mesh.listen` when set (`None` runs no mesh), with the edge's cluster identity when
/// it is enrolled, else (a mesh without any control plane) the configured certificates.
/// `host_ip` stands in for a wildcard listen address in what is gossiped.
pub(crate) fn bind(
    config: &MeshConfig,
    host_ip: std::net::IpAddr,
    identity: Option<&ClusterIdentity>,
) -> anyhow::Result<Option<BoundMesh>> {
    let Some(listen) = &config.listen else {
        return Ok(None);
    };
    let tls = match (
        identity,
        &config.ca_file,
        &config.cert_file,
        &config.key_file,
    ) {
        (Some(identity), ..) => {
            if config.ca_file.is_some() || config.cert_file.is_some() {
                tracing::warn!("mesh.ca_file and mesh.cert_file are ignored: the mesh uses this edge's cluster certificate");
            }
            MeshTls::from_identity(identity)
        }
        (None, Some(ca), Some(cert), Some(key)) => {
            tracing::warn!(
                "the mesh runs without a control plane's certificate: using the configured \
                 mesh.ca_file, mesh.cert_file and mesh.key_file (no revocation list reaches it)"
            );
            MeshTls::load(ca, cert, key).context("while loading the mesh certificates")?
        }
        (None, ..) => anyhow::bail!(
            "mesh.listen needs this edge to be enrolled (control.join_token) or, without a \
             control plane, mesh.ca_file, mesh.cert_file and mesh.key_file"
        ),
    };
    let listen: SocketAddr = listen.parse().context("mesh.listen")?;
    let (mesh, joins) = Mesh::bind(listen, &tls, config.settings())
        .with_context(|| format!("while binding mesh.listen {listen}"))?;
    let bound = mesh.local_addr()?;
    let addr = match &config.advertise {
        Some(a) => a.parse().context("mesh.advertise")?,
        None if bound.ip().is_unspecified() => SocketAddr::new(host_ip, bound.port()),
        None => bound,
    };
    tracing::info!(%addr, "mesh listening (QUIC, mutual TLS)");
    Ok(Some(BoundMesh { mesh, addr, joins }))
}

/// What a call needs to carry a leg that another edge dials: the mesh endpoint, this edge's
/// id (named in its requests) and where the cluster's gossip says each peer's mesh listens.
#[derive(Clone)]
pub(crate) struct MeshAccess {
    pub mesh: Mesh,
    pub edge_id: std::sync::Arc<str>,
    pub cluster: Option<
        tokio::sync::watch::Receiver<std::sync::Arc<crate::cluster::report::ClusterSnapshot>>,
    >,
}

impl MeshAccess {
    /// The mesh address gossip gives the live member `edge` (never this edge itself).
    pub(crate) fn peer_addr(&self, edge: &str) -> Option<SocketAddr> {
        if edge == &*self.edge_id {
            return None;
        }
        let snapshot = self.cluster.as_ref()?.borrow().clone();
        snapshot
            .members
            .iter()
            .filter(|m| &*m.peer.id == edge)
            .filter(|m| m.state == crate::cluster::MemberState::Alive)
            .find_map(|m| m.health.as_ref().and_then(|h| h.mesh_addr))
    }
}

//! Registration and heartbeats: announce the edge, then report health at the interval the
//! control plane asks for. A control plane that forgot the edge (NOT_FOUND) gets a new
//! registration; an unreachable one is retried with backoff. The answer to a registration names
//! the other edges' gossip addresses, handed to the cluster task as seeds. Each heartbeat also
//! carries the state of every registration with a PBX or trunk (`RegistrationBoard`), and a
//! change of one sends a heartbeat at once.

use std::time::Duration;

use super::{log_failure, LinkContext};
use crate::cpu::CpuSampler;
use crate::sip::transport::registrations::RegistrationBoard;
use crate::state::EdgeState;
use freya_proto::v1::{
    EdgeHealth as WireHealth, HeartbeatRequest, ProviderRegistration, RegisterRequest,
};
use freya_shared::model::EdgeHealth;

/// What the edge announces about itself.
#[derive(Clone)]
pub(crate) struct Registration {
    pub sip_addr: String,
    pub rtp_addr: String,
    pub http_addr: String,
    pub capacity: u32,
    /// Where the cluster gossip listens (empty: no cluster).
    pub gossip_addr: String,
    /// This run of the edge (see `cluster::Peer::generation`).
    pub generation: u64,
    /// Receives the control plane's list of peers' gossip addresses.
    pub cluster_peers: Option<tokio::sync::watch::Sender<Vec<std::net::SocketAddr>>>,
    /// The registrations with PBXs and trunks, reported with each heartbeat.
    pub registrations: RegistrationBoard,
}

/// The board's reports as the heartbeat carries them, in provider order.
fn wire_registrations(board: &RegistrationBoard) -> Vec<ProviderRegistration> {
    let mut reports: Vec<ProviderRegistration> = board
        .reports()
        .into_iter()
        .map(|(provider_id, r)| ProviderRegistration {
            provider_id,
            state: r.state.to_owned(),
            expires_at_ms: r.expires_at.unwrap_or(0),
            last_error: r.last_error.unwrap_or_default(),
        })
        .collect();
    reports.sort_by(|a, b| a.provider_id.cmp(&b.provider_id));
    reports
}

fn wire(h: EdgeHealth) -> WireHealth {
    WireHealth {
        active_calls: h.active_calls,
        capacity: h.capacity,
        cpu_permille: h.cpu_permille,
        draining: h.draining,
    }
}

pub(crate) async fn run(link: LinkContext, state: EdgeState, me: Registration) {
    let mut backoff = link.backoff();
    let mut cpu = CpuSampler::new();
    loop {
        let request = RegisterRequest {
            edge_id: link.edge_id.to_string(),
            region: link.region.to_string(),
            sip_addr: me.sip_addr.clone(),
            rtp_addr: me.rtp_addr.clone(),
            http_addr: me.http_addr.clone(),
            capacity: me.capacity,
            version: env!("CARGO_PKG_VERSION").into(),
            health: Some(wire(state.health(cpu.sample()))),
            gossip_addr: me.gossip_addr.clone(),
            generation: me.generation,
        };
        let interval = match link.client.clone().register(request).await {
            Ok(response) => {
                backoff.reset();
                tracing::info!(edge = %link.edge_id, "registered with the control plane");
                let response = response.into_inner();
                if let Some(peers) = &me.cluster_peers {
                    // Addresses that do not parse are an older or foreign control plane's; skipped.
                    let addrs = response
                        .cluster_peers
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect();
                    peers.send_replace(addrs);
                }
                Duration::from_millis(u64::from(response.heartbeat_interval_ms.max(100)))
            }
            Err(status) => {
                log_failure("registering", &status);
                if !link.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        // Heartbeat until the control plane forgets us; transient failures just skip a beat. A
        // registration's change sends the next beat early.
        loop {
            tokio::select! {
                alive = link.pause(interval) => if !alive { return },
                _ = me.registrations.changed() => {}
            }
            let beat = HeartbeatRequest {
                edge_id: link.edge_id.to_string(),
                health: Some(wire(state.health(cpu.sample()))),
                registrations: wire_registrations(&me.registrations),
            };
            match link.client.clone().heartbeat(beat).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::NotFound => break,
                Err(status) => log_failure("sending a heartbeat", &status),
            }
        }
    }
}

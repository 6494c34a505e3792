//! Registration and heartbeats: announce the edge, then report health at the interval the
//! control plane asks for. A control plane that forgot the edge (NOT_FOUND) gets a new
//! registration; an unreachable one is retried with backoff.

use std::time::Duration;

use super::{log_failure, LinkContext};
use crate::cpu::CpuSampler;
use crate::state::EdgeState;
use freya_proto::v1::{EdgeHealth as WireHealth, HeartbeatRequest, RegisterRequest};
use freya_shared::model::EdgeHealth;

/// What the edge announces about itself.
#[derive(Clone)]
pub(crate) struct Registration {
    pub sip_addr: String,
    pub rtp_addr: String,
    pub http_addr: String,
    pub capacity: u32,
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
        };
        let interval = match link.client.clone().register(request).await {
            Ok(response) => {
                backoff.reset();
                tracing::info!(edge = %link.edge_id, "registered with the control plane");
                Duration::from_millis(u64::from(
                    response.into_inner().heartbeat_interval_ms.max(100),
                ))
            }
            Err(status) => {
                log_failure("registering", &status);
                if !link.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        };
        // Heartbeat until the control plane forgets us; transient failures just skip a beat.
        loop {
            if !link.pause(interval).await {
                return;
            }
            let beat = HeartbeatRequest {
                edge_id: link.edge_id.to_string(),
                health: Some(wire(state.health(cpu.sample()))),
            };
            match link.client.clone().heartbeat(beat).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::NotFound => break,
                Err(status) => log_failure("sending a heartbeat", &status),
            }
        }
    }
}

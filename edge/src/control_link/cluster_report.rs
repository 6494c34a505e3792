//! Telling the control plane what the cluster sees: whenever a peer changes state in this
//! edge's membership, the states of all its peers go out in one `ReportCluster` call, so a
//! peer declared down is shown offline and its calls end at once rather than after the
//! heartbeat timeout. A failed call is retried with backoff; only the latest states are sent.

use std::sync::Arc;

use tokio::sync::watch;

use super::{log_failure, LinkContext};
use crate::cluster::report::ClusterSnapshot;
use freya_proto::v1::{ClusterReport, PeerState};

fn states_of(snapshot: &ClusterSnapshot) -> Vec<PeerState> {
    snapshot
        .members
        .iter()
        .filter(|m| m.peer.addr != snapshot.me.addr)
        .map(|m| PeerState {
            edge_id: m.peer.id.to_string(),
            generation: m.peer.generation,
            state: m.state.name().to_owned(),
            gossip_addr: m.peer.addr.to_string(),
        })
        .collect()
}

/// Reports peers' states until shutdown.
pub(crate) async fn run(link: LinkContext, mut snapshots: watch::Receiver<Arc<ClusterSnapshot>>) {
    let mut sent: Vec<PeerState> = Vec::new();
    let mut backoff = link.backoff();
    loop {
        let states = states_of(&snapshots.borrow_and_update());
        if states != sent {
            let report = ClusterReport {
                edge_id: link.edge_id.to_string(),
                peers: states.clone(),
            };
            match link.client.clone().report_cluster(report).await {
                Ok(_) => {
                    backoff.reset();
                    sent = states;
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    tracing::info!("the control plane takes no cluster reports (older version)");
                    sent = states;
                }
                Err(status) => {
                    log_failure("reporting the cluster", &status);
                    if !link.pause(backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            _ = link.shutdown.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}

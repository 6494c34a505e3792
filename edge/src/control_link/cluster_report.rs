//! Telling the control plane what the cluster sees: whenever a peer changes state in this
//! edge's membership, the states of all its peers go out in one `ReportCluster` call, so a
//! peer declared down is shown offline and its calls end at once rather than after the
//! heartbeat timeout.
//!
//! A report must not wait behind anything else the edge says to the control plane: it travels
//! on a gRPC connection of its own (`node.rs` builds a second client, so the event stream's
//! and the recording uploads' HTTP/2 flow-control windows cannot hold it), each call has a
//! deadline ([`REPORT_DEADLINE`]) after which it is sent again with the latest states, a change
//! while a report is in flight sends the newer states at once instead of waiting for it, and
//! a report not taken in time is sent again at once rather than after the backoff. Each report
//! naming a down peer is logged with how long the control plane took to take it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{log_failure, LinkContext};
use crate::cluster::report::ClusterSnapshot;
use freya_proto::v1::{ClusterReport, PeerState};

/// Longest wait for the control plane to take one report before it is sent again: a report
/// stuck behind a slow or dead connection must not hold the next one (a `down`) back.
pub(crate) const REPORT_DEADLINE: Duration = Duration::from_secs(2);

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

/// The peers `states` names down, for the log.
fn down_peers(states: &[PeerState]) -> Vec<&str> {
    states
        .iter()
        .filter(|p| p.state == "down")
        .map(|p| p.edge_id.as_str())
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
            let newly_down: Vec<&str> = down_peers(&states)
                .into_iter()
                .filter(|id| !down_peers(&sent).contains(id))
                .collect();
            let started = Instant::now();
            let mut client = link.client.clone();
            let call = tokio::time::timeout(REPORT_DEADLINE, client.report_cluster(report));
            tokio::pin!(call);
            let outcome = loop {
                tokio::select! {
                    _ = link.shutdown.cancelled() => return,
                    outcome = &mut call => break Some(outcome),
                    // Newer states (a suspect now down) go at once rather than behind this
                    // report; the control plane finishes what it was sent either way.
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if states_of(&snapshots.borrow_and_update()) != states {
                            break None;
                        }
                    }
                }
            };
            let Some(outcome) = outcome else {
                continue;
            };
            let took_ms = started.elapsed().as_millis();
            match outcome {
                Ok(Ok(_)) => {
                    if !newly_down.is_empty() {
                        tracing::info!(down = ?newly_down, took_ms,
                            "reported peers down to the control plane");
                    }
                    backoff.reset();
                    sent = states;
                }
                Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                    tracing::info!("the control plane takes no cluster reports (older version)");
                    sent = states;
                }
                Ok(Err(status)) => {
                    log_failure("reporting the cluster", &status);
                    if !link.pause(backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
                Err(_) => {
                    // Not taken in time: sent again at once with whatever is latest (a down
                    // must not wait for a backoff); the control plane applies a report twice
                    // without harm.
                    tracing::warn!(down = ?newly_down, took_ms,
                        "the control plane did not take the cluster report in time; sending it again");
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

//! `ReportCluster`: an edge's view of its peers. Each state goes on the [`ClusterBoard`]; when a
//! report makes an edge down, its open calls end as `edge_lost` now (`Store::end_calls_of_edge`),
//! with their `call.ended` webhooks; an outbound call it had not started yet is placed once
//! more on another edge (`retry.rs`). Several peers reporting the same death end each call once:
//! the ended event's id is derived from the call, so a second report stores nothing new.

use std::time::Instant;

use tonic::Status;

use super::{required, status_of};
use crate::cluster::{ClusterBoard, PeerView};
use freya_proto::v1::ClusterReport;
use freya_shared::ids::now_ms;

/// Most peer states one report may carry (the edge's `cluster.max_members` is far below).
const MAX_PEERS_PER_REPORT: usize = 1_024;

/// Applies `report` from the authenticated edge `caller`.
pub(super) async fn apply(
    retrier: &super::CallRetrier,
    board: &ClusterBoard,
    caller: &str,
    report: ClusterReport,
) -> Result<(), Status> {
    let store = &retrier.store;
    required("edge_id", &report.edge_id)?;
    if report.edge_id != caller {
        return Err(Status::permission_denied(
            "`edge_id` must be the edge making the call",
        ));
    }
    if report.peers.len() > MAX_PEERS_PER_REPORT {
        return Err(Status::invalid_argument(format!(
            "at most {MAX_PEERS_PER_REPORT} peers per report"
        )));
    }
    for peer in &report.peers {
        let Some(view) = PeerView::parse(&peer.state) else {
            continue;
        };
        if peer.edge_id == report.edge_id {
            continue;
        }
        let change = board.report(&report.edge_id, &peer.edge_id, peer.generation, view);
        if change.is_down && view == PeerView::Down {
            if !change.was_down {
                tracing::warn!(edge = %peer.edge_id, reporter = %report.edge_id,
                    "edge declared down by a peer; ending its calls");
            }
            // Also when it already was: a store failure the first time is retried with the
            // reporter's retry. The ended event's id makes a second run store nothing.
            let started = Instant::now();
            let lost = store
                .end_calls_of_edge(&peer.edge_id, now_ms())
                .await
                .map_err(status_of)?;
            let ended = lost.ended;
            retrier.place_again_later(lost.retries);
            if ended > 0 || !change.was_down {
                tracing::info!(edge = %peer.edge_id, reporter = %report.edge_id, calls = ended,
                    took_ms = started.elapsed().as_millis(), "ended a down edge's calls");
            }
        }
    }
    Ok(())
}

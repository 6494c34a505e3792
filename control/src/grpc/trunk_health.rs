//! `ReportTrunkHealth`: an edge's view of the SIP trunks it pings, checked and put on the
//! [`TrunkHealthBoard`] in place of its previous report. `ReportTrunkTest`: an edge's answer to
//! a `TestTrunk` command, handed to the request waiting for it (only from the edge asked, about
//! the trunk asked; anything else is refused).

use tonic::Status;

use super::required;
use crate::trunk_health::{EdgeTrunkView, ProviderCheck, TrunkHealthBoard};
use freya_proto::v1::{TrunkHealthReport, TrunkTestResult};
use freya_shared::ids::now_ms;

/// Most trunks one report may carry.
const MAX_TRUNKS_PER_REPORT: usize = 1_024;
/// Longest `last_error` kept; a longer one is cut.
const MAX_ERROR_CHARS: usize = 200;
/// Longest provider id accepted.
const MAX_ID_CHARS: usize = 64;

/// Applies `report` from the authenticated edge `caller`.
pub(super) fn apply(
    board: &TrunkHealthBoard,
    caller: &str,
    report: TrunkHealthReport,
) -> Result<(), Status> {
    required("edge_id", &report.edge_id)?;
    if report.edge_id != caller {
        return Err(Status::permission_denied(
            "`edge_id` must be the edge making the call",
        ));
    }
    if report.trunks.len() > MAX_TRUNKS_PER_REPORT {
        return Err(Status::invalid_argument(format!(
            "at most {MAX_TRUNKS_PER_REPORT} trunks per report"
        )));
    }
    let received = now_ms();
    let mut views = Vec::with_capacity(report.trunks.len());
    for trunk in report.trunks {
        if trunk.provider_id.is_empty() || trunk.provider_id.len() > MAX_ID_CHARS {
            return Err(Status::invalid_argument(
                "a trunk's `provider_id` is empty or too long",
            ));
        }
        let state = match trunk.state.as_str() {
            "up" | "down" | "unknown" => trunk.state,
            _ => "unknown".to_owned(),
        };
        let last_error = (!trunk.last_error.is_empty())
            .then(|| trunk.last_error.chars().take(MAX_ERROR_CHARS).collect());
        views.push((
            trunk.provider_id,
            EdgeTrunkView {
                edge_id: report.edge_id.clone(),
                state,
                rtt_ms: (trunk.rtt_ms > 0).then_some(trunk.rtt_ms),
                checked_at_ms: (trunk.checked_at_unix_ms > 0).then_some(trunk.checked_at_unix_ms),
                last_error,
                last_status: u16::try_from(trunk.last_status).ok().filter(|s| *s > 0),
                reported_at_ms: received,
            },
        ));
    }
    board.replace(&report.edge_id, views);
    Ok(())
}

/// Hands `result` from the authenticated edge `caller` to the test waiting for it.
pub(super) fn finish_test(
    board: &TrunkHealthBoard,
    caller: &str,
    result: TrunkTestResult,
) -> Result<(), Status> {
    required("edge_id", &result.edge_id)?;
    if result.edge_id != caller {
        return Err(Status::permission_denied(
            "`edge_id` must be the edge making the call",
        ));
    }
    let detail: String = result.detail.chars().take(MAX_ERROR_CHARS).collect();
    let check = ProviderCheck {
        ok: result.ok,
        checked_at_ms: now_ms(),
        latency_ms: (result.latency_ms > 0).then_some(result.latency_ms),
        detail: if detail.is_empty() {
            "no detail".into()
        } else {
            detail
        },
        edge_id: Some(result.edge_id.clone()),
        status: u16::try_from(result.status).ok().filter(|s| *s > 0),
    };
    if board.finish_test(&result.command_id, caller, &result.provider_id, check) {
        Ok(())
    } else {
        Err(Status::not_found(
            "no test of that trunk was asked of this edge (or it timed out)",
        ))
    }
}

//! `ReportTrunkHealth`: an edge's view of the SIP trunks it pings, checked and put on the
//! [`TrunkHealthBoard`] in place of its previous report. `ReportTrunkTest`: an edge's answer to
//! a `TestTrunk` command, handed to the request waiting for it (only from the edge asked, about
//! the trunk asked; anything else is refused): here, or through the command's outbox row when
//! the request waits on another replica.

use prost::Message;
use tonic::Status;

use super::relay::TEST_TRUNK_KIND;
use super::required;
use crate::store::Store;
use crate::trunk_health::{EdgeTrunkView, ProviderCheck, TrunkHealthBoard};
use freya_proto::v1::{TrunkHealthReport, TrunkTestResult};
use freya_shared::ids::now_ms;

/// Most trunks one report may carry.
const MAX_TRUNKS_PER_REPORT: usize = 1_024;
/// Longest `last_error` kept; a longer one is cut.
const MAX_ERROR_CHARS: usize = 200;
/// Longest provider id (and command id) accepted.
const MAX_ID_CHARS: usize = 64;
/// Longest transport name kept (`udp`, `tcp`, `tls`).
const MAX_TRANSPORT_CHARS: usize = 8;

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

/// Hands `result` from the authenticated edge `caller` to the test waiting for it: here when
/// the request is on this process, else through the command's outbox row, where the request
/// waiting on another replica reads it (`relay.rs`).
pub(super) async fn finish_test(
    board: &TrunkHealthBoard,
    store: &Store,
    caller: &str,
    result: TrunkTestResult,
) -> Result<(), Status> {
    let result = bounded(caller, result)?;
    let check = check_of(&result);
    if board.finish_test(&result.command_id, caller, &result.provider_id, check) {
        return Ok(());
    }
    let kept = store
        .answer_edge_command(
            &result.command_id,
            caller,
            TEST_TRUNK_KIND,
            &result.encode_to_vec(),
            now_ms(),
        )
        .await
        .map_err(super::status_of)?;
    if kept {
        Ok(())
    } else {
        Err(Status::not_found(
            "no test of that trunk was asked of this edge (or it timed out)",
        ))
    }
}

/// `result` from `caller`, checked and every text cut to size (a cut detail ends in `…`), so
/// that what is kept or handed on is small whatever the edge sent.
fn bounded(caller: &str, mut result: TrunkTestResult) -> Result<TrunkTestResult, Status> {
    required("edge_id", &result.edge_id)?;
    if result.edge_id != caller {
        return Err(Status::permission_denied(
            "`edge_id` must be the edge making the call",
        ));
    }
    if result.command_id.is_empty() || result.command_id.len() > MAX_ID_CHARS {
        return Err(Status::invalid_argument(
            "`command_id` is empty or too long",
        ));
    }
    if result.provider_id.len() > MAX_ID_CHARS {
        return Err(Status::invalid_argument("`provider_id` is too long"));
    }
    if result.detail.chars().count() > MAX_ERROR_CHARS {
        let mut cut: String = result.detail.chars().take(MAX_ERROR_CHARS - 1).collect();
        cut.push('…');
        result.detail = cut;
    }
    result.transport = result.transport.chars().take(MAX_TRANSPORT_CHARS).collect();
    Ok(result)
}

/// What an edge's (bounded) answer to a `TestTrunk` says, as the provider's check.
pub(crate) fn check_of(result: &TrunkTestResult) -> ProviderCheck {
    ProviderCheck {
        ok: result.ok,
        checked_at_ms: now_ms(),
        latency_ms: (result.latency_ms > 0).then_some(result.latency_ms),
        detail: if result.detail.is_empty() {
            "no detail".into()
        } else {
            result.detail.chars().take(MAX_ERROR_CHARS).collect()
        },
        edge_id: Some(result.edge_id.clone()),
        status: u16::try_from(result.status).ok().filter(|s| *s > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(detail: String) -> TrunkTestResult {
        TrunkTestResult {
            edge_id: "edge-a".into(),
            command_id: "cmd".into(),
            provider_id: "p1".into(),
            detail,
            transport: "udp".repeat(1_000),
            ..TrunkTestResult::default()
        }
    }

    #[test]
    fn a_huge_answer_is_cut_and_says_so_and_a_foreign_one_is_refused() {
        let cut = bounded("edge-a", result("x".repeat(100_000))).expect("bounded");
        assert_eq!(cut.detail.chars().count(), MAX_ERROR_CHARS);
        assert!(cut.detail.ends_with('…'), "{}", cut.detail);
        assert_eq!(cut.transport.len(), MAX_TRANSPORT_CHARS);
        assert!(cut.encode_to_vec().len() < crate::store::MAX_ANSWER_BYTES);
        let short = bounded("edge-a", result("OPTIONS answered 200".into())).expect("ok");
        assert_eq!(
            short.detail, "OPTIONS answered 200",
            "a short detail is kept whole"
        );
        assert!(
            bounded("edge-b", result(String::new())).is_err(),
            "another edge's"
        );
        let mut long_id = result(String::new());
        long_id.command_id = "c".repeat(MAX_ID_CHARS + 1);
        assert!(bounded("edge-a", long_id).is_err());
    }
}

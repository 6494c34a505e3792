//! The payloads of the call events a call task writes that are more than a line: the `rtcp`
//! object of `call.ended`, a transfer's progress, and events of kinds the shared model does not
//! name.

use super::media::MediaStats;
use crate::sip::endpoint::TransferProgress;
use freya_shared::model::CallEvent;

/// The `rtcp` object of `call.ended`: reports both ways and the far end's view of our stream
/// (null where no report said it).
pub(super) fn rtcp_record(stats: &MediaStats) -> serde_json::Value {
    let rtcp = &stats.rtcp;
    serde_json::json!({
        "reports_sent": rtcp.reports_sent,
        "reports_received": rtcp.reports_received,
        "junk": rtcp.junk_received,
        "peer_fraction_lost": rtcp.peer_fraction_lost.map(|f| f64::from(f) / 256.0),
        "peer_cumulative_lost": rtcp.peer_cumulative_lost,
        "peer_jitter_ms": rtcp.peer_jitter_micros.map(|us| f64::from(us) / 1000.0),
        "rtt_ms": rtcp.rtt_micros.map(|us| f64::from(us) / 1000.0),
        "peer_bye": rtcp.peer_bye,
    })
}

/// A transfer's progress as a `call.transfer` payload, and its status word.
pub(super) fn transfer_record(
    progress: &TransferProgress,
    destination: Option<&str>,
) -> (&'static str, serde_json::Value) {
    let (status, detail) = match progress {
        TransferProgress::Accepted => ("accepted", serde_json::json!({})),
        TransferProgress::Trying { code } => ("trying", serde_json::json!({"code": code})),
        TransferProgress::Succeeded { code } => ("succeeded", serde_json::json!({"code": code})),
        TransferProgress::Failed { reason } => ("failed", serde_json::json!({"reason": reason})),
    };
    let mut payload = serde_json::json!({"status": status, "destination": destination});
    if let (Some(payload), serde_json::Value::Object(detail)) = (payload.as_object_mut(), detail) {
        payload.extend(detail);
    }
    (status, payload)
}

/// A call event of a kind the shared model does not name (`call.turn_latency`, `call.tool`, ...):
/// the control plane stores those as they come.
pub(super) fn custom_event(
    call_id: &str,
    workspace_id: &str,
    kind: &str,
    payload: serde_json::Value,
) -> CallEvent {
    CallEvent {
        id: freya_shared::ids::new_id(),
        call_id: call_id.to_string(),
        workspace_id: workspace_id.to_string(),
        kind: kind.to_string(),
        at_ms: freya_shared::ids::now_ms(),
        payload,
    }
}

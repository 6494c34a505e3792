//! The payloads of the call events a call task writes that are more than a line: the `rtcp`
//! object of `call.ended` and a transfer's progress, filled into their `freya-shared` types.

use super::media::MediaStats;
use crate::sip::endpoint::TransferProgress;
use freya_shared::model::call_payloads::{self, Extra, RtcpRecord};

/// The `rtcp` object of `call.ended`: reports both ways and the far end's view of our stream
/// (null where no report said it).
pub(super) fn rtcp_record(stats: &MediaStats) -> RtcpRecord {
    let rtcp = &stats.rtcp;
    RtcpRecord {
        reports_sent: rtcp.reports_sent,
        reports_received: rtcp.reports_received,
        junk: rtcp.junk_received,
        peer_fraction_lost: rtcp.peer_fraction_lost.map(|f| f64::from(f) / 256.0),
        peer_cumulative_lost: rtcp.peer_cumulative_lost.map(i64::from),
        peer_jitter_ms: rtcp.peer_jitter_micros.map(|us| f64::from(us) / 1000.0),
        rtt_ms: rtcp.rtt_micros.map(|us| f64::from(us) / 1000.0),
        peer_bye: rtcp.peer_bye,
        extra: Extra::new(),
    }
}

/// A transfer's progress as a `call.transfer` payload (its `status` says which step).
pub(super) fn transfer_record(
    progress: &TransferProgress,
    destination: Option<&str>,
) -> call_payloads::TransferProgress {
    let mut record = call_payloads::TransferProgress {
        status: String::new(),
        destination: destination.map(str::to_owned),
        code: None,
        reason: None,
        extra: Extra::new(),
    };
    record.status = match progress {
        TransferProgress::Accepted => "accepted",
        TransferProgress::Trying { code } => {
            record.code = Some(*code);
            "trying"
        }
        TransferProgress::Succeeded { code } => {
            record.code = Some(*code);
            "succeeded"
        }
        TransferProgress::Failed { reason } => {
            record.reason = Some(reason.to_string());
            "failed"
        }
    }
    .to_owned();
    record
}

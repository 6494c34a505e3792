//! The end of a call — the voice's last records, the closing RTCP report, the `call.ended`
//! record — and what the agent asks of the telephony layer on the way (a transfer, digits).

use std::time::Instant;

use freya_shared::model::call_payloads::{
    CallEnded, DtmfSent, Extra, RtpRecord, TransferProgress as TransferRecord,
};
use freya_shared::model::{CallEventData, EndReason};

use super::output::{CallEnding, CallRequest, Output};
use super::CallCore;
use crate::call::event_payloads::rtcp_record;
use crate::call::media::{CallMedia, SendDtmfError};
use crate::call::talk::AgentRequest;

impl CallCore {
    /// Ends the call for `reason`: the voice records its last events and stops its provider
    /// work, the last RTCP report goes out, and [`Output::Ended`] closes the outputs. `by_us`:
    /// we end it (and send our BYE), or the far end did.
    pub(super) fn end(&mut self, now: Instant, reason: EndReason, by_us: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        let reason = if self.outbound {
            reason.for_outbound()
        } else {
            reason
        };
        if let Some(responder) = self.responder.as_mut() {
            for record in responder.shutdown(now) {
                self.out.push(Output::Event(record));
            }
            while let Some(request) = responder.poll_provider_request() {
                self.out.push(Output::Provider(request));
            }
        }
        self.end_legs();
        if let Some((to, report)) = self.media.close_rtcp(now) {
            self.out.push_rtcp(to, report);
        }
        let stats = self.media.stats();
        tracing::info!(
            %reason,
            received = stats.packets_received,
            sent = stats.packets_sent,
            "call ended"
        );
        let duration = now.saturating_duration_since(self.started).as_millis();
        let transferred = reason == EndReason::Transferred;
        let record = CallEnded {
            hangup_by: Some(reason.hangup_by()),
            bye_outcome: None,
            transferred_to: Some(self.transfer.clone().filter(|_| transferred)),
            duration_ms: Some(u64::try_from(duration).unwrap_or(u64::MAX)),
            rtp: Some(RtpRecord {
                received: stats.packets_received,
                sent: stats.packets_sent,
                lost: stats.jitter.lost,
                late: stats.jitter.late,
                junk: stats.junk_received,
                foreign: stats.foreign_received,
                jitter_ms: u64::from(stats.interarrival_jitter_ms),
                jitter_buffer_ms: Some(u64::from(stats.jitter_buffer_ms)),
                extra: Extra::new(),
            }),
            rtcp: Some(rtcp_record(&stats)),
            agent_characters_synthesized: self.responder.as_ref().map(|r| r.synthesized_chars()),
            ..CallEnded::because(reason)
        };
        self.out.push(Output::Ended(CallEnding {
            record,
            hang_up: by_us,
        }));
    }
}

/// Carries out what the agent asked for: a transfer goes to the SIP side (REFER); digits go
/// into the RTP stream, or to the SIP side (INFO) when the peer has no telephone-event. Returns
/// the call event to record and the request for the SIP side, if any.
pub(super) fn agent_request(
    request: AgentRequest,
    media: &mut CallMedia,
    transfer: &mut Option<String>,
) -> (CallEventData, Option<CallRequest>) {
    match request {
        AgentRequest::Transfer(destination) => {
            tracing::info!(destination = %freya_shared::redact::MaskedNumber(&destination), "the agent transfers the call");
            *transfer = Some(destination.clone());
            let record = CallEventData::Transfer(TransferRecord {
                status: "requested".to_owned(),
                destination: Some(destination.clone()),
                code: None,
                reason: None,
                extra: Extra::new(),
            });
            (record, Some(CallRequest::Transfer { destination }))
        }
        // Taken by the core before it gets here (`core/warm.rs`).
        AgentRequest::WarmTransfer { destination, .. } => (
            CallEventData::Transfer(TransferRecord {
                status: "failed".to_owned(),
                destination: Some(destination),
                code: None,
                reason: Some("not carried out".to_owned()),
                extra: Extra::new(),
            }),
            None,
        ),
        AgentRequest::SendDtmf(digits) => {
            let sent = |via: &str, error: Option<String>| DtmfSent {
                digits: digits.clone(),
                via: (!via.is_empty()).then(|| via.to_owned()),
                error,
                extra: Extra::new(),
            };
            match media.send_dtmf(&digits) {
                Ok(()) => (CallEventData::DtmfSent(sent("rfc4733", None)), None),
                // Paced by the media: the core sends each INFO when it comes due.
                Err(SendDtmfError::NoTelephoneEvent) => match media.send_dtmf_info(&digits) {
                    Ok(()) => (CallEventData::DtmfSent(sent("sip_info", None)), None),
                    Err(e) => (
                        CallEventData::DtmfFailed(sent("", Some(e.to_string()))),
                        None,
                    ),
                },
                Err(e) => (
                    CallEventData::DtmfFailed(sent("", Some(e.to_string()))),
                    None,
                ),
            }
        }
    }
}

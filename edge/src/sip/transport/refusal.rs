//! Refused INVITEs made visible: each is answered, counted by reason
//! (`freya_edge_sip_invites_refused_total`), logged as a warning — at most one a second, with
//! the number held back since — and, when it was for a number this edge routes, recorded as a
//! `call.failed` in that number's workspace, so that the workspace sees the calls it missed
//! and why (no common codec, bad SDP, no media port, draining).
//!
//! Refusals of a flood are not recorded: `rate_limited` and the unconfirmed-call budget
//! (`unconfirmed_budget`, `source_unconfirmed_share`) are counted and logged only. Whoever sends the flood chooses the number
//! dialled; recording those refusals would let a stranger write into a workspace's call history
//! (and the control plane's store) at the rate the limiter exists to stop, for no information
//! the metric does not already give. A refusal because the edge is full of answered calls
//! (`capacity`) is recorded: those are real callers the workspace missed, and each one has
//! passed its source's rate first. An INVITE to a number no workspace owns is never recorded
//! anywhere: it is counted (`unknown_number`).

use std::time::{Duration, Instant};

use freya_shared::model::call_payloads::CallFailed;
use freya_shared::model::{CallEvent, CallEventData, FailReason};

use super::super::endpoint::{IncomingCall, SipEndpoint};
use crate::call::admission::{Refusal, RefusalCause};
use crate::call::slots::NoSlot;
use crate::call::task::CallServices;
use crate::metrics::RefusalCounter;

/// How often a refusal may be logged as a warning; those in between are counted into the next.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Why an INVITE was refused, as the metric label and the `reason` of its `call.failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefusalReason {
    /// Refused by admission (rate, slots, draining, unknown number).
    Admission(RefusalCause),
    /// The INVITE carried no SDP offer.
    NoSdpOffer,
    /// The offer could not be read or answered.
    BadSdp,
    /// The offer shares no codec with us (or has no audio): 488.
    NoCommonCodec,
    /// No RTP port was free.
    NoMediaPorts,
    /// The offer's media is in an IP family the edge has no media address for (an IPv6 offer
    /// to an IPv4-only edge, or the reverse): 488.
    NoMediaFamily,
    /// The offer's SRTP does not meet the policy (see `config::SrtpConfig`): 488.
    SrtpMismatch,
}

impl RefusalReason {
    /// The label of the metric and the record's `reason`.
    pub(super) fn label(self) -> &'static str {
        match self {
            RefusalReason::Admission(cause) => cause.label(),
            RefusalReason::NoSdpOffer => "no_sdp_offer",
            RefusalReason::BadSdp => "bad_sdp",
            RefusalReason::NoCommonCodec => "no_common_codec",
            RefusalReason::NoMediaPorts => "no_media_ports",
            RefusalReason::NoMediaFamily => "no_media_address_family",
            RefusalReason::SrtpMismatch => "srtp_mismatch",
        }
    }

    /// Whether a refusal for this reason becomes a `call.failed` record (see the module doc).
    pub(super) fn is_recorded(self) -> bool {
        !matches!(
            self,
            RefusalReason::Admission(
                RefusalCause::RateLimited
                    | RefusalCause::NotReady
                    | RefusalCause::NoSlot(NoSlot::UnconfirmedFull | NoSlot::SourceUnconfirmedFull)
                    | RefusalCause::UnknownNumber
            )
        )
    }
}

/// The SIP task's refusal bookkeeping: the metric and the warning limiter.
pub(super) struct Refusals {
    counter: RefusalCounter,
    last_warning: Option<Instant>,
    held_back: u64,
}

impl Refusals {
    /// Refusals counted into `counter` (`freya_edge_sip_invites_refused_total`).
    pub(super) fn new(counter: RefusalCounter) -> Self {
        Self {
            counter,
            last_warning: None,
            held_back: 0,
        }
    }

    /// Answers `call` with `code`, counts it, logs it (rate-limited) and, for a number the
    /// snapshot routes and a reason that is recorded, sends its `call.failed`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn refuse(
        &mut self,
        endpoint: &mut SipEndpoint,
        services: &CallServices,
        call: &IncomingCall,
        reason: RefusalReason,
        code: u16,
        phrase: &str,
        retry_after: Option<u32>,
    ) {
        self.answer(endpoint, call, reason, code, phrase, retry_after);
        if !reason.is_recorded() {
            return;
        }
        let workspace = services
            .state
            .snapshot()
            .route(&call.dialled)
            .map(|route| route.number.workspace_id.clone());
        let Some(workspace_id) = workspace else {
            return;
        };
        let failed = CallFailed {
            direction: Some("inbound".to_owned()),
            from: Some(call.caller.clone()),
            to: Some(call.dialled.clone()),
            sip_call_id: Some(call.call_id.clone()),
            code: Some(code),
            ..CallFailed::because(FailReason::parse(reason.label()))
        };
        let event = CallEvent::new(
            freya_shared::ids::new_id(),
            workspace_id,
            CallEventData::Failed(failed),
        );
        // The event queue is the control link's; a full one waits, as every call event does.
        let _ = services.events.send(event).await;
    }

    /// Answers and counts an admission refusal that is never recorded (the source's rate),
    /// without waiting on anything: the flood path.
    pub(super) fn refuse_admission(
        &mut self,
        endpoint: &mut SipEndpoint,
        call: &IncomingCall,
        refusal: Refusal,
    ) {
        self.answer(
            endpoint,
            call,
            RefusalReason::Admission(refusal.cause),
            refusal.code,
            refusal.reason,
            refusal.retry_after,
        );
    }

    fn answer(
        &mut self,
        endpoint: &mut SipEndpoint,
        call: &IncomingCall,
        reason: RefusalReason,
        code: u16,
        phrase: &str,
        retry_after: Option<u32>,
    ) {
        let label = reason.label();
        self.counter
            .get_or_create(&vec![("reason".to_owned(), label.to_owned())])
            .inc();
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            let held_back = std::mem::take(&mut self.held_back);
            self.last_warning = Some(now);
            tracing::warn!(call = %call.call_id, source = %call.source, dialled = %call.dialled,
                code, reason = label, held_back, "refused an INVITE");
        } else {
            self.held_back += 1;
        }
        endpoint.reject(now, &call.call_id, code, phrase, retry_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_refusals_and_unknown_numbers_are_never_recorded() {
        assert!(!RefusalReason::Admission(RefusalCause::RateLimited).is_recorded());
        assert!(!RefusalReason::Admission(RefusalCause::UnknownNumber).is_recorded());
        for no_slot in [NoSlot::UnconfirmedFull, NoSlot::SourceUnconfirmedFull] {
            assert!(!RefusalReason::Admission(RefusalCause::NoSlot(no_slot)).is_recorded());
        }
        assert!(RefusalReason::Admission(RefusalCause::NoSlot(NoSlot::AtCapacity)).is_recorded());
        assert!(RefusalReason::Admission(RefusalCause::Draining).is_recorded());
        assert!(RefusalReason::NoCommonCodec.is_recorded());
        assert!(RefusalReason::BadSdp.is_recorded());
        assert!(RefusalReason::NoSdpOffer.is_recorded());
        assert!(RefusalReason::NoMediaPorts.is_recorded());
        assert_eq!(RefusalReason::NoCommonCodec.label(), "no_common_codec");
    }
}

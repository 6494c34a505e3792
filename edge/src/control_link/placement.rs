//! Whether this edge takes a call the control plane asks it to place, and the `call.failed`
//! that says why not. Every such failure names whose "no" it is ([`Placement`]): `edge` when
//! this edge could not place it (full, draining, shutting down, every provider failing on its
//! own), which the control plane answers by placing the call once on another edge; `callee` or
//! `request` otherwise, which it never places again. A full or draining edge refuses before
//! trying any provider, so the callee's phone never rings twice.

use freya_shared::model::call_payloads::{CallFailed, ProviderAttempt};
use freya_shared::model::call_placement::attempts_are_edge_faults;
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};

use crate::state::EdgeState;

/// Why this edge cannot take a new outbound call now, if it cannot: draining, or carrying
/// all the calls it may.
pub(super) fn refusal(state: &EdgeState) -> Option<FailReason> {
    refusal_of(state.is_draining(), state.active_calls(), state.capacity())
}

fn refusal_of(draining: bool, active: u32, capacity: u32) -> Option<FailReason> {
    if draining {
        Some(FailReason::EdgeDraining)
    } else if active >= capacity {
        Some(FailReason::EdgeAtCapacity)
    } else {
        None
    }
}

/// Whose "no" it is when every provider was tried (or none was usable): the edge's when each
/// attempt failed on its own, the callee's when one heard the callee, the request's when
/// there was nothing to try.
pub(super) fn after_providers(attempts: &[ProviderAttempt]) -> Placement {
    if attempts.is_empty() {
        Placement::Request
    } else if attempts_are_edge_faults(attempts) {
        Placement::Edge
    } else {
        Placement::Callee
    }
}

/// `call.failed` for the call `place` asked for.
pub(super) fn failed(
    place: &freya_proto::v1::PlaceCall,
    reason: FailReason,
    placement: Placement,
    attempts: Option<Vec<ProviderAttempt>>,
) -> CallEvent {
    let failed = CallFailed {
        direction: Some("outbound".to_owned()),
        to: Some(place.to.clone()),
        attempts,
        placement: Some(placement),
        ..CallFailed::because(reason)
    };
    CallEvent::new(
        place.call_id.clone(),
        place.workspace_id.clone(),
        CallEventData::Failed(failed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use freya_shared::model::call_payloads::AttemptOutcome;

    #[test]
    fn a_draining_or_full_edge_refuses_with_its_reason() {
        assert_eq!(refusal_of(true, 0, 10), Some(FailReason::EdgeDraining));
        assert_eq!(refusal_of(false, 10, 10), Some(FailReason::EdgeAtCapacity));
        assert_eq!(refusal_of(false, 9, 10), None);
    }

    #[test]
    fn providers_out_is_the_edges_fault_only_when_none_heard_the_callee() {
        let attempt = |outcome| ProviderAttempt {
            kind: "twilio".into(),
            provider_id: "p".into(),
            provider: "acct".into(),
            reason: "provider_unreachable".into(),
            outcome,
            started_at_ms: None,
            duration_ms: None,
            extra: Default::default(),
        };
        assert_eq!(after_providers(&[]), Placement::Request);
        let unreachable = attempt(AttemptOutcome::TransportError);
        assert_eq!(
            after_providers(std::slice::from_ref(&unreachable)),
            Placement::Edge
        );
        let refused = attempt(AttemptOutcome::Response {
            status: 400,
            reason: "invalid To".into(),
        });
        assert_eq!(after_providers(&[unreachable, refused]), Placement::Callee);
    }
}

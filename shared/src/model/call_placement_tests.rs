use super::*;
use crate::model::call_payloads::{AttemptOutcome, ProviderAttempt};
use crate::model::{CallEventData, FailReason, Placement};

fn attempt(reason: &str, outcome: AttemptOutcome) -> ProviderAttempt {
    ProviderAttempt {
        kind: "sip_trunk".into(),
        provider_id: "p".into(),
        provider: "trunk".into(),
        reason: reason.into(),
        outcome,
        started_at_ms: None,
        duration_ms: None,
        extra: Default::default(),
    }
}

fn response(status: u16) -> AttemptOutcome {
    AttemptOutcome::Response {
        status,
        reason: String::new(),
    }
}

#[test]
fn trunks_failing_on_their_own_are_the_edges_fault() {
    let attempts = [
        attempt("trunk_failed", response(503)),
        attempt("trunk_failed", AttemptOutcome::TransportError),
        attempt("trunk_failed", AttemptOutcome::Timeout),
        attempt("circuit_open", AttemptOutcome::SkippedOpenCircuit),
        attempt("trunk_failed", response(408)),
    ];
    assert!(attempts_are_edge_faults(&attempts));
}

#[test]
fn any_answer_of_the_callee_is_never_the_edges_fault() {
    for callee in [
        attempt("trunk_failed", response(486)),
        attempt("trunk_failed", response(603)),
        attempt("trunk_failed", response(404)),
        attempt(NO_ANSWER_AFTER_RINGING, AttemptOutcome::Timeout),
        attempt(
            "trunk_failed",
            AttemptOutcome::Other("503 Service Unavailable".into()),
        ),
    ] {
        let attempts = [attempt("trunk_failed", response(503)), callee.clone()];
        assert!(!attempts_are_edge_faults(&attempts), "{callee:?}");
    }
    assert!(!attempts_are_edge_faults(&[]), "no attempt says nothing");
}

#[test]
fn placement_and_retry_travel_as_their_words() {
    let failed = crate::model::call_payloads::CallFailed::because(FailReason::EdgeAtCapacity)
        .placed_by(Placement::Edge);
    let json = serde_json::to_value(&failed).expect("json");
    assert_eq!(json["placement"], "edge");
    let back = CallEventData::parse("call.failed", &json);
    assert!(matches!(back, CallEventData::Failed(f) if f.placement == Some(Placement::Edge)));
    let retried =
        serde_json::json!({"from_edge": "a", "to_edge": "b", "reason": "edge_at_capacity"});
    let parsed = CallEventData::parse("call.retried", &retried);
    assert!(matches!(&parsed, CallEventData::Retried(r) if r.to_edge == "b"));
    assert_eq!(parsed.to_payload(), retried);
}

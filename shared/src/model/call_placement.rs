//! Who is to blame when an outbound call fails, and what the control plane records when it
//! places such a call again elsewhere: an edge marks its `call.failed` with a
//! [`Placement`](super::Placement); only `edge` is placed again (once, on another edge,
//! recorded as [`CallRetried`]). The callee's answer (busy, a decline) never is.

use serde::{Deserialize, Serialize};

use super::call_payloads::{AttemptOutcome, Extra, ProviderAttempt};

/// `call.retried`: the control plane placed an outbound call again on another edge because the
/// first could not (its `call.failed` said `placement: edge`). Written once per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRetried {
    /// The edge that could not place the call.
    pub from_edge: String,
    /// The edge asked to place it now.
    pub to_edge: String,
    /// Why the first edge could not (its `call.failed` reason).
    pub reason: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Whether every provider attempt of an outbound call failed through the edge's or the
/// provider's fault (a transport error, a timeout before ringing, a 5xx or 408, a breaker
/// open, a host that does not resolve), so another edge may do better; `false` as soon as one
/// attempt heard the callee (busy, a decline or other final 4xx/6xx, ringing unanswered), and
/// for no attempt at all.
pub fn attempts_are_edge_faults(attempts: &[ProviderAttempt]) -> bool {
    !attempts.is_empty()
        && attempts.iter().all(|a| {
            a.reason != NO_ANSWER_AFTER_RINGING
                && match &a.outcome {
                    AttemptOutcome::Response { status, .. } => {
                        *status == 408 || (500..600).contains(status)
                    }
                    AttemptOutcome::Timeout
                    | AttemptOutcome::TransportError
                    | AttemptOutcome::SkippedOpenCircuit => true,
                    AttemptOutcome::Other(_) => false,
                }
        })
}

/// An attempt's `reason` when the callee's phone rang and nobody answered within the trunk's
/// `invite_timeout`: the callee's, not the trunk's.
pub const NO_ANSWER_AFTER_RINGING: &str = "no_answer";

#[cfg(test)]
#[path = "call_placement_tests.rs"]
mod tests;

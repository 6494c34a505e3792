//! Whether the edge takes an inbound call, decided from its cached configuration and its load
//! alone — never by asking the control plane — and the SIP answer when it does not. The load is
//! the caller's: its source's INVITE rate (`invite_rate.rs`) and the call slots (`slots.rs`),
//! where calls not yet acknowledged have a small budget apart from confirmed ones.

use std::time::Duration;

use freya_shared::snapshot::{EdgeConfigSnapshot, Route};

use super::slots::NoSlot;

/// Why a call is refused, as the SIP response that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    /// Seconds for a `Retry-After` header (busy or draining).
    pub retry_after: Option<u32>,
    pub cause: RefusalCause,
}

/// Whether the edge takes new calls at all, before the number and the slots are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intake {
    /// Ready and not draining (or draining, but taking a call no peer can take: the drain's
    /// last resort, `drain.last_resort_seconds`).
    Open,
    /// No configuration yet, or not joined to its cluster (`state.rs`, `cluster/join.rs`).
    NotReady,
    /// Draining: new calls go to peers, and with none this edge refuses them.
    Draining,
}

/// What led to a refusal, for logs and the refusal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalCause {
    Draining,
    /// The edge has no configuration yet or has not joined its cluster.
    NotReady,
    /// The source sent new INVITEs faster than `sip.invites_per_second_per_source`.
    RateLimited,
    NoSlot(NoSlot),
    UnknownNumber,
}

impl RefusalCause {
    /// The `reason` label of `freya_edge_sip_invites_refused_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            RefusalCause::Draining => "draining",
            RefusalCause::NotReady => "not_ready",
            RefusalCause::RateLimited => "rate_limited",
            RefusalCause::NoSlot(no_slot) => no_slot.label(),
            RefusalCause::UnknownNumber => "unknown_number",
        }
    }
}

/// Seconds a refused caller (or the carrier) should wait before trying this edge again.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The longest `Retry-After` a rate-limited source is told.
const MAX_RATE_RETRY_AFTER_SECONDS: u32 = 3600;

/// The route for a call to `dialled`, or the refusal. `intake` is whether the edge takes new
/// calls at all; `room` is the call slots' answer for the caller's source ([`super::slots::CallSlots::check_inbound`]).
pub(crate) fn admit<'a>(
    snapshot: &'a EdgeConfigSnapshot,
    dialled: &str,
    intake: Intake,
    room: Result<(), NoSlot>,
) -> Result<Route<'a>, Refusal> {
    let busy = match intake {
        Intake::NotReady => Some(RefusalCause::NotReady),
        Intake::Draining => Some(RefusalCause::Draining),
        Intake::Open => room.err().map(RefusalCause::NoSlot),
    };
    if let Some(cause) = busy {
        return Err(Refusal {
            code: 503,
            reason: "Service Unavailable",
            retry_after: Some(RETRY_AFTER_SECONDS),
            cause,
        });
    }
    snapshot.route(dialled).ok_or(Refusal {
        code: 404,
        reason: "Not Found",
        retry_after: None,
        cause: RefusalCause::UnknownNumber,
    })
}

/// The answer to a new INVITE over its source's rate: 503 with a `Retry-After` of the whole
/// seconds until the source's bucket has a token again (at least 1).
pub(crate) fn rate_limited(wait: Duration) -> Refusal {
    let seconds = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    let seconds = u32::try_from(seconds)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_RATE_RETRY_AFTER_SECONDS);
    Refusal {
        code: 503,
        reason: "Service Unavailable (too many calls from this address)",
        retry_after: Some(seconds),
        cause: RefusalCause::RateLimited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> EdgeConfigSnapshot {
        let spec = serde_json::from_str(r#"{"name":"Demo"}"#).expect("agent");
        EdgeConfigSnapshot::single_agent(2, "demo", spec)
    }

    #[test]
    fn a_known_number_with_room_is_admitted() {
        let snap = snapshot();
        let route = admit(&snap, "demo", Intake::Open, Ok(())).expect("admitted");
        match route.target {
            freya_shared::snapshot::RouteTarget::Agent(agent) => assert_eq!(agent.id, "a"),
            other => panic!("expected the agent, got {other:?}"),
        }
    }

    #[test]
    fn unknown_numbers_get_404_and_a_full_or_draining_edge_503_with_retry_after() {
        let snap = snapshot();
        assert_eq!(
            admit(&snap, "nobody", Intake::Open, Ok(()))
                .map(|_| ())
                .unwrap_err()
                .code,
            404
        );
        let full = admit(&snap, "demo", Intake::Open, Err(NoSlot::AtCapacity))
            .map(|_| ())
            .unwrap_err();
        assert_eq!((full.code, full.retry_after), (503, Some(5)));
        assert_eq!(full.cause.label(), "capacity");
        let flooded = admit(
            &snap,
            "demo",
            Intake::Open,
            Err(NoSlot::SourceUnconfirmedFull),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!((flooded.code, flooded.retry_after), (503, Some(5)));
        assert_eq!(
            admit(&snap, "demo", Intake::Draining, Ok(()))
                .map(|_| ())
                .unwrap_err()
                .code,
            503
        );
    }

    #[test]
    fn an_edge_not_ready_refuses_even_a_known_number_with_503_and_retry_after() {
        let snap = snapshot();
        let refused = admit(&snap, "demo", Intake::NotReady, Ok(()))
            .map(|_| ())
            .unwrap_err();
        assert_eq!((refused.code, refused.retry_after), (503, Some(5)));
        assert_eq!(refused.cause.label(), "not_ready");
    }

    #[test]
    fn a_rate_limited_invite_gets_503_with_the_wait_rounded_up_to_whole_seconds() {
        let refusal = rate_limited(Duration::from_millis(200));
        assert_eq!((refusal.code, refusal.retry_after), (503, Some(1)));
        assert_eq!(refusal.cause.label(), "rate_limited");
        assert_eq!(rate_limited(Duration::from_secs(2)).retry_after, Some(2));
        assert_eq!(
            rate_limited(Duration::from_millis(2001)).retry_after,
            Some(3)
        );
        assert_eq!(rate_limited(Duration::ZERO).retry_after, Some(1));
        assert_eq!(rate_limited(Duration::MAX).retry_after, Some(3600));
    }
}

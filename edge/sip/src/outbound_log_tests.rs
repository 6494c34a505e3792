//! What an outbound call records of each trunk it tried or skipped: the kind of ending, when
//! the INVITE went out and when the outcome was known, in simulated time.

use std::time::{Duration, Instant};

use super::*;
use crate::uac::tests::{call_request, one_strike_breakers, reply, request_of, trunk, two_trunks};

fn invites(call: &mut OutboundCall) -> Vec<rsip::Request> {
    std::iter::from_fn(|| call.poll_transmit())
        .map(|o| request_of(&o))
        .filter(|r| r.method == rsip::Method::Invite)
        .collect()
}

#[test]
fn a_503_then_an_answer_records_the_503_with_its_status_start_and_end() {
    let t0 = Instant::now();
    let mut breakers = TrunkBreakers::default();
    let trunks = two_trunks();
    let mut call =
        OutboundCall::start(t0, call_request(), trunks, Timers::default(), &mut breakers);
    let first = invites(&mut call).remove(0);
    let t1 = t0 + Duration::from_millis(250);
    call.handle_response(t1, reply(&first, 503, None), &mut breakers);
    let second = invites(&mut call).remove(0);
    call.handle_response(
        t1 + Duration::from_millis(900),
        reply(&second, 200, None),
        &mut breakers,
    );
    let answered = std::iter::from_fn(|| call.poll_event())
        .find_map(|e| match e {
            OutboundEvent::Answered {
                trunk_id, attempts, ..
            } => Some((trunk_id, attempts)),
            _ => None,
        })
        .expect("answered");
    assert_eq!(answered.0, "b");
    let [attempt] = &answered.1[..] else {
        panic!("{:?}", answered.1);
    };
    assert_eq!(attempt.trunk_id, "a");
    // The phrase the trunk sent (the test's replies say "Test").
    assert_eq!(
        attempt.ending,
        TrunkEnding::Response {
            code: 503,
            reason: "Test".into()
        }
    );
    assert_eq!((attempt.started, attempt.ended), (Some(t0), t1));
}

#[test]
fn a_trunk_skipped_for_its_open_breaker_is_recorded_as_skipped() {
    let t0 = Instant::now();
    let mut breakers = one_strike_breakers();
    let trunks = two_trunks();
    let mut call = OutboundCall::start(
        t0,
        call_request(),
        trunks.clone(),
        Timers::default(),
        &mut breakers,
    );
    let first = invites(&mut call).remove(0);
    call.handle_response(t0, reply(&first, 500, None), &mut breakers);
    let t1 = t0 + Duration::from_secs(1);
    let mut next =
        OutboundCall::start(t1, call_request(), trunks, Timers::default(), &mut breakers);
    let only = invites(&mut next);
    assert_eq!(only.len(), 1, "straight to b");
    let [skipped] = next.attempts() else {
        panic!("{:?}", next.attempts());
    };
    assert_eq!(skipped.trunk_id, "a");
    assert_eq!(skipped.ending, TrunkEnding::SkippedOpenCircuit);
    assert_eq!((skipped.started, skipped.ended), (None, t1));
}

#[test]
fn no_response_in_time_is_a_timeout() {
    let t0 = Instant::now();
    let mut breakers = TrunkBreakers::default();
    let trunks = vec![trunk("a", 5081)];
    let mut call =
        OutboundCall::start(t0, call_request(), trunks, Timers::default(), &mut breakers);
    let _ = invites(&mut call);
    while let Some(at) = call.poll_timeout() {
        call.handle_timeout(at, &mut breakers);
        let _ = invites(&mut call);
        if call.attempts().len() == 1 {
            break;
        }
    }
    let [attempt] = call.attempts() else {
        panic!("{:?}", call.attempts());
    };
    assert_eq!(attempt.ending, TrunkEnding::Timeout);
    assert_eq!(attempt.started, Some(t0));
    assert!(attempt.ended > t0);
}

#[test]
fn a_status_reads_as_its_words() {
    use crate::uac::reason_phrase;
    assert_eq!(
        reason_phrase(&rsip::StatusCode::from(503)),
        "Service Unavailable"
    );
    assert_eq!(reason_phrase(&rsip::StatusCode::from(486)), "Busy Here");
    assert_eq!(
        reason_phrase(&rsip::StatusCode::from(408)),
        "Request Timeout"
    );
    let odd = rsip::StatusCode::Other(599, "Odd Thing".into());
    assert_eq!(reason_phrase(&odd), "Odd Thing");
}

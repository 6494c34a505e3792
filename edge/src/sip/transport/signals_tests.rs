//! The SIP task's signal channels against real tokio channels whose call task does not read:
//! full queues drop what may be lost, keep what may not, and a hang-up always arrives.

use tokio::sync::mpsc::error::TryRecvError;

use super::*;
use crate::sip::endpoint::TransferProgress;
use crate::sip::sdp::Direction;

const CALL: &str = "call-1@example.com";

fn count(counter: &CallQueueCounter, signal: &str, action: &str) -> u64 {
    let labels = vec![
        ("signal".to_owned(), signal.to_owned()),
        ("action".to_owned(), action.to_owned()),
    ];
    counter.get_or_create(&labels).get()
}

/// A call whose queue holds `capacity` signals, already full of digits.
fn stalled_call(capacity: usize) -> (CallSignals, mpsc::Receiver<CallSignal>, CallQueueCounter) {
    let counter = CallQueueCounter::default();
    let mut calls = CallSignals::new(counter.clone());
    let (tx, rx) = mpsc::channel(capacity);
    calls.insert(CALL.to_owned(), tx);
    let now = Instant::now();
    for _ in 0..capacity {
        assert_eq!(
            calls.signal(now, CALL, CallSignal::Dtmf('5')),
            Delivery::Queued
        );
    }
    (calls, rx, counter)
}

fn hangup() -> CallSignal {
    CallSignal::Hangup {
        reason: EndReason::CallerHangup,
        by_us: false,
    }
}

#[test]
fn a_hangup_behind_a_full_queue_waits_and_reaches_the_call() {
    let (mut calls, mut rx, counter) = stalled_call(4);
    let now = Instant::now();

    assert!(calls.hang_up(now, CALL, EndReason::CallerHangup, false));
    assert!(
        !calls.is_live(CALL),
        "a call told to hang up is no longer live"
    );
    assert_eq!(
        calls.len(),
        1,
        "its channel stays until it takes the hang-up"
    );
    assert!(calls.has_backlog());
    assert_eq!(
        calls.signal(now, CALL, CallSignal::Confirmed),
        Delivery::NoCall,
        "nothing more goes to a call that is ending"
    );
    assert_eq!(count(&counter, "hangup", "waiting"), 1);

    // Still full: the hang-up keeps waiting, however often it is offered.
    for _ in 0..100 {
        calls.retry();
    }
    assert!(calls.has_backlog());

    // The call reads one signal: the next retry hands it the hang-up, after its digits.
    assert_eq!(rx.try_recv(), Ok(CallSignal::Dtmf('5')));
    calls.retry();
    assert!(!calls.has_backlog());
    let mut rest = Vec::new();
    while let Ok(signal) = rx.try_recv() {
        rest.push(signal);
    }
    assert_eq!(rest.last(), Some(&hangup()), "got {rest:?}");
    assert_eq!(rest.len(), 4);
    assert_eq!(calls.len(), 0, "the ended call's channel was let go");
    assert!(!calls.forget(CALL));
}

#[test]
fn a_digit_for_a_full_queue_is_dropped_and_counted() {
    let (mut calls, mut rx, counter) = stalled_call(2);
    let now = Instant::now();
    assert_eq!(
        calls.signal(now, CALL, CallSignal::Dtmf('9')),
        Delivery::Dropped
    );
    assert_eq!(
        calls.signal(now, CALL, CallSignal::Confirmed),
        Delivery::Dropped
    );
    assert_eq!(count(&counter, "dtmf", "dropped"), 1);
    assert_eq!(count(&counter, "confirmed", "dropped"), 1);
    assert!(calls.is_live(CALL), "the call itself goes on");
    assert_eq!(rx.try_recv(), Ok(CallSignal::Dtmf('5')));
    calls.retry();
    assert_eq!(
        calls.signal(now, CALL, CallSignal::Dtmf('7')),
        Delivery::Queued,
        "with room again, digits are delivered"
    );
    assert_eq!(rx.try_recv(), Ok(CallSignal::Dtmf('5')));
    assert_eq!(
        rx.try_recv(),
        Ok(CallSignal::Dtmf('7')),
        "the dropped digit never waited"
    );
}

#[test]
fn directions_and_transfers_wait_in_order_and_a_newer_direction_replaces_a_waiting_one() {
    let (mut calls, mut rx, counter) = stalled_call(2);
    let now = Instant::now();
    let hold = CallSignal::Direction(Direction::SendOnly);
    let resume = CallSignal::Direction(Direction::SendRecv);
    let accepted = CallSignal::Transfer(TransferProgress::Accepted);
    assert_eq!(calls.signal(now, CALL, hold), Delivery::Waiting);
    assert_eq!(calls.signal(now, CALL, resume.clone()), Delivery::Waiting);
    assert_eq!(calls.signal(now, CALL, accepted.clone()), Delivery::Waiting);
    assert_eq!(
        calls.signal(now, CALL, CallSignal::Dtmf('1')),
        Delivery::Dropped,
        "a digit does not jump the waiting signals"
    );
    assert_eq!(count(&counter, "direction", "waiting"), 2);

    while rx.try_recv().is_ok() {}
    calls.retry();
    assert_eq!(
        rx.try_recv(),
        Ok(resume),
        "only the last direction agreed counts"
    );
    assert_eq!(rx.try_recv(), Ok(accepted));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert!(calls.is_live(CALL));
}

#[test]
fn the_backlog_is_bounded_but_a_hangup_always_waits() {
    let (mut calls, mut rx, counter) = stalled_call(1);
    let now = Instant::now();
    let trying = || CallSignal::Transfer(TransferProgress::Trying { code: 180 });
    for _ in 0..BACKLOG {
        assert_eq!(calls.signal(now, CALL, trying()), Delivery::Waiting);
    }
    assert_eq!(calls.signal(now, CALL, trying()), Delivery::Dropped);
    assert_eq!(count(&counter, "transfer", "dropped"), 1);
    assert!(calls.hang_up(now, CALL, EndReason::CallerHangup, false));

    let mut received = Vec::new();
    for _ in 0..BACKLOG + 2 {
        if let Ok(signal) = rx.try_recv() {
            received.push(signal);
        }
        calls.retry();
    }
    assert_eq!(
        received.len(),
        BACKLOG + 2,
        "the digit, the backlog, the hang-up"
    );
    assert_eq!(received.last(), Some(&hangup()));
    assert!(!calls.has_backlog());
}

#[test]
fn a_call_whose_task_is_gone_is_forgotten() {
    let (mut calls, rx, _) = stalled_call(1);
    drop(rx);
    let now = Instant::now();
    assert_eq!(
        calls.signal(now, CALL, CallSignal::Confirmed),
        Delivery::NoCall
    );
    assert!(!calls.is_live(CALL));
    assert!(!calls.hang_up(now, CALL, EndReason::CallerHangup, false));
}

#[test]
fn a_hangup_waiting_for_a_task_that_ends_is_let_go() {
    let (mut calls, rx, _) = stalled_call(1);
    assert!(calls.hang_up(Instant::now(), CALL, EndReason::CallerHangup, false));
    drop(rx);
    calls.retry();
    assert!(!calls.has_backlog());
    assert!(!calls.forget(CALL));
}

#[test]
fn shutting_down_ends_a_call_even_when_its_queue_is_full() {
    let (mut calls, mut rx, _) = stalled_call(2);
    assert_eq!(calls.shut_down(), vec![CALL.to_owned()]);
    assert_eq!(rx.try_recv(), Ok(CallSignal::Dtmf('5')));
    assert_eq!(rx.try_recv(), Ok(CallSignal::Dtmf('5')));
    // The channel is closed: the call's task reads `None` and ends.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn the_call_ending_itself_is_forgotten_with_its_backlog() {
    let (mut calls, _rx, _) = stalled_call(1);
    let now = Instant::now();
    let held = CallSignal::Direction(Direction::SendOnly);
    assert_eq!(calls.signal(now, CALL, held), Delivery::Waiting);
    assert!(calls.forget(CALL));
    assert!(!calls.has_backlog());
    assert!(!calls.is_live(CALL));
}

#[test]
fn a_call_found_full_is_reported_once_it_has_room_again() {
    let (mut calls, mut rx, _) = stalled_call(2);
    let now = Instant::now();
    assert!(calls.retry().is_empty(), "queued, not yet found full");
    assert!(!calls.has_backlog());

    assert_eq!(
        calls.signal(now, CALL, CallSignal::Dtmf('3')),
        Delivery::Dropped
    );
    assert!(
        calls.has_backlog(),
        "a full call keeps the retry timer running"
    );
    assert!(calls.retry().is_empty(), "still full");

    assert_eq!(rx.try_recv(), Ok(CallSignal::Dtmf('5')));
    assert_eq!(calls.retry(), vec![CALL.to_owned()]);
    assert!(calls.retry().is_empty(), "reported once");
    assert!(!calls.has_backlog());
}

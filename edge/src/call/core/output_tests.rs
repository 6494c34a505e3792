//! The outbox's queue stays small: entries of about a hundred bytes, and a burst's capacity given
//! back once drained.

use std::mem::size_of;

use freya_shared::model::call_payloads::CallEnded;
use freya_shared::model::{CallEventData, EndReason};

use super::*;

/// A regression guard on memory per call: an entry once held the largest event inline (392
/// bytes), and a call's queue of 8–16 entries came to 3–6 KiB.
#[test]
fn a_waiting_output_is_at_most_128_bytes() {
    eprintln!(
        "Pending {} bytes, Output {} bytes",
        size_of::<Pending>(),
        size_of::<Output<'static>>()
    );
    assert!(size_of::<Pending>() <= 128, "{}", size_of::<Pending>());
}

fn ending() -> Output<'static> {
    Output::Ended(CallEnding {
        record: CallEnded::because(EndReason::MaxDuration),
        hang_up: true,
    })
}

#[test]
fn a_drained_burst_gives_its_capacity_back() {
    let mut out = Outbox::default();
    out.begin();
    for _ in 0..100 {
        out.push(Output::PlaybackFinished);
        out.push_packet("127.0.0.1:4000".parse().unwrap(), &[0x80; 172]);
    }
    out.push(ending());
    assert!(out.queue.capacity() >= 201);
    let mut drained = 0;
    while out.pop().is_some() {
        drained += 1;
    }
    assert_eq!(drained, 201);
    out.begin();
    assert!(
        out.queue.capacity() <= KEEP_AFTER_BURST,
        "{}",
        out.queue.capacity()
    );
    assert!(out.packets.len() <= KEEP_AFTER_BURST);
    assert!(out.packets.capacity() <= KEEP_AFTER_BURST);
}

#[test]
fn boxed_outputs_come_out_as_they_went_in() {
    let mut out = Outbox::default();
    out.begin();
    out.push(Output::Event(CallEventData::Ringing(Default::default())));
    out.push_packet("127.0.0.1:4000".parse().unwrap(), &[1, 2, 3]);
    out.push(ending());
    assert!(matches!(
        out.pop(),
        Some(Output::Event(CallEventData::Ringing(_)))
    ));
    assert!(matches!(
        out.pop(),
        Some(Output::Transmit {
            packet: [1, 2, 3],
            ..
        })
    ));
    match out.pop() {
        Some(Output::Ended(ending)) => {
            assert!(ending.hang_up);
            assert_eq!(ending.record.reason, Some(EndReason::MaxDuration));
        }
        other => panic!("expected the ending, got {other:?}"),
    }
    assert!(out.pop().is_none());
}

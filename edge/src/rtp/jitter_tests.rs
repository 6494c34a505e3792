//! Tests for `jitter.rs` with simulated time, kept beside it so each file stays under ~500 lines.

use super::*;
use rand::{Rng, SeedableRng};

const SSRC: u32 = 0x5EED;
const MS: Duration = Duration::from_millis(1);

fn buffer() -> JitterBuffer {
    JitterBuffer::new(JitterConfig::default()).unwrap()
}

fn payload(seq: u16) -> [u8; 160] {
    [seq as u8; 160]
}

fn push(jb: &mut JitterBuffer, at: Instant, seq: u16) -> PushOutcome {
    let ts = u32::from(seq).wrapping_mul(160);
    jb.push(at, seq, ts, SSRC, &payload(seq))
}

/// What a pop produced, owned, so a test can collect several.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Frame(u16),
    Lost(u16),
    Nothing,
}

fn pop(jb: &mut JitterBuffer, at: Instant) -> Out {
    match jb.pop(at) {
        Some(Playout::Frame {
            sequence,
            payload: bytes,
            ..
        }) => {
            assert_eq!(bytes, &payload(sequence), "payload of {sequence}");
            Out::Frame(sequence)
        }
        Some(Playout::Lost { sequence }) => Out::Lost(sequence),
        None => Out::Nothing,
    }
}

#[test]
fn first_frame_waits_for_the_target_delay() {
    let t0 = Instant::now();
    let mut jb = buffer();
    assert_eq!(push(&mut jb, t0, 10), PushOutcome::Buffered);
    assert_eq!(pop(&mut jb, t0), Out::Nothing);
    assert_eq!(pop(&mut jb, t0 + 10 * MS), Out::Nothing);
    assert_eq!(pop(&mut jb, t0 + 20 * MS), Out::Frame(10));
    assert_eq!(jb.stats().received, 1);
}

#[test]
fn reordered_packets_come_out_in_order() {
    let t0 = Instant::now();
    let mut jb = buffer();
    push(&mut jb, t0, 0);
    assert_eq!(pop(&mut jb, t0 + 30 * MS), Out::Frame(0));
    push(&mut jb, t0 + 40 * MS, 2);
    push(&mut jb, t0 + 45 * MS, 1);
    assert_eq!(pop(&mut jb, t0 + 50 * MS), Out::Frame(1));
    assert_eq!(pop(&mut jb, t0 + 70 * MS), Out::Frame(2));
    push(&mut jb, t0 + 80 * MS, 4);
    push(&mut jb, t0 + 85 * MS, 3);
    assert_eq!(pop(&mut jb, t0 + 90 * MS), Out::Frame(3));
    assert_eq!(pop(&mut jb, t0 + 110 * MS), Out::Frame(4));
    let stats = jb.stats();
    assert_eq!((stats.reordered, stats.lost, stats.late), (2, 0, 0));
}

#[test]
fn an_earlier_packet_arriving_while_filling_plays_first() {
    let t0 = Instant::now();
    let mut jb = buffer();
    // Sent at 100 and 120 ms; 6 arrives after 1 ms, 5 after 25 ms.
    push(&mut jb, t0 + 121 * MS, 6);
    push(&mut jb, t0 + 125 * MS, 5);
    // |D| = 24 ms raises jitter to 1.5 ms, so the target is 20 + 4 × 1.5 ms.
    assert_eq!(jb.target_delay(), 26 * MS);
    assert_eq!(pop(&mut jb, t0 + 145 * MS), Out::Nothing);
    assert_eq!(pop(&mut jb, t0 + 165 * MS), Out::Frame(5));
    assert_eq!(pop(&mut jb, t0 + 185 * MS), Out::Frame(6));
}

#[test]
fn sequence_wraparound_is_not_loss() {
    let t0 = Instant::now();
    let mut jb = buffer();
    let mut seq = 65_530u16;
    let mut ts = u32::MAX - 3 * 160;
    let mut frames = Vec::new();
    for i in 0..12u32 {
        let at = t0 + i * 20 * MS;
        jb.push(at, seq, ts, SSRC, &payload(seq));
        if let Some(Playout::Frame { sequence, .. }) = jb.pop(at + 10 * MS) {
            frames.push(sequence);
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
    }
    assert_eq!(frames.first(), Some(&65_530));
    assert!(frames.contains(&65_535) && frames.contains(&0) && frames.contains(&4));
    let stats = jb.stats();
    assert_eq!((stats.lost, stats.late, stats.discarded), (0, 0, 0));
    assert_eq!(
        jb.target_delay(),
        20 * MS,
        "steady stream across the wrap has no jitter"
    );
}

/// Frames 0 and 1 played on time, then 3 arrives: 2 is played out as lost.
fn a_gap_at_2(t0: Instant) -> JitterBuffer {
    let mut jb = buffer();
    push(&mut jb, t0, 0);
    push(&mut jb, t0 + 20 * MS, 1);
    assert_eq!(pop(&mut jb, t0 + 30 * MS), Out::Frame(0));
    assert_eq!(pop(&mut jb, t0 + 50 * MS), Out::Frame(1));
    push(&mut jb, t0 + 60 * MS, 3);
    assert_eq!(pop(&mut jb, t0 + 70 * MS), Out::Lost(2));
    jb
}

#[test]
fn a_missing_packet_is_reported_as_a_gap() {
    let t0 = Instant::now();
    let mut jb = a_gap_at_2(t0);
    assert_eq!(pop(&mut jb, t0 + 90 * MS), Out::Frame(3));
    assert_eq!(jb.stats().lost, 1);
}

#[test]
fn late_packet_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut jb = a_gap_at_2(t0);
    assert_eq!(push(&mut jb, t0 + 75 * MS, 2), PushOutcome::Late);
    assert_eq!(pop(&mut jb, t0 + 90 * MS), Out::Frame(3));
    let stats = jb.stats();
    assert_eq!((stats.late, stats.lost, stats.duplicate), (1, 1, 0));
}

#[test]
fn duplicates_are_dropped_whether_queued_or_played() {
    let t0 = Instant::now();
    let mut jb = buffer();
    push(&mut jb, t0, 0);
    assert_eq!(push(&mut jb, t0 + MS, 0), PushOutcome::Duplicate);
    assert_eq!(pop(&mut jb, t0 + 20 * MS), Out::Frame(0));
    assert_eq!(push(&mut jb, t0 + 21 * MS, 0), PushOutcome::Duplicate);
    let stats = jb.stats();
    assert_eq!((stats.duplicate, stats.late, stats.received), (2, 0, 3));
    assert_eq!(
        jb.target_delay(),
        20 * MS,
        "duplicates do not feed the jitter estimate"
    );
}

#[test]
fn ssrc_change_resets_the_buffer() {
    let t0 = Instant::now();
    let mut jb = buffer();
    for seq in 0..4 {
        push(&mut jb, t0 + u32::from(seq) * MS, seq);
    }
    let outcome = jb.push(t0 + 10 * MS, 9000, 123, 0xBEEF, &payload(9000));
    assert_eq!(outcome, PushOutcome::Restarted);
    assert_eq!(jb.ssrc(), Some(0xBEEF));
    assert_eq!(
        pop(&mut jb, t0 + 20 * MS),
        Out::Nothing,
        "refills for the new source"
    );
    assert_eq!(pop(&mut jb, t0 + 30 * MS), Out::Frame(9000));
    assert_eq!(jb.stats().resets, 1);
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn a_sequence_restart_is_believed_on_the_second_packet() {
    let t0 = Instant::now();
    let mut jb = buffer();
    push(&mut jb, t0, 100);
    assert_eq!(pop(&mut jb, t0 + 20 * MS), Out::Frame(100));
    assert_eq!(push(&mut jb, t0 + 20 * MS, 30_000), PushOutcome::Late);
    assert_eq!(push(&mut jb, t0 + 40 * MS, 30_001), PushOutcome::Restarted);
    assert_eq!(pop(&mut jb, t0 + 60 * MS), Out::Frame(30_001));
}

#[test]
fn underrun_refills_before_the_next_talk_spurt() {
    let t0 = Instant::now();
    let mut jb = buffer();
    push(&mut jb, t0, 0);
    assert_eq!(pop(&mut jb, t0 + 20 * MS), Out::Frame(0));
    assert_eq!(pop(&mut jb, t0 + 40 * MS), Out::Nothing);
    // Silence suppression: a second later, sequence continuous, timestamp advanced by 1 s.
    jb.push(t0 + 1000 * MS, 1, 8000, SSRC, &payload(1));
    assert_eq!(pop(&mut jb, t0 + 1000 * MS), Out::Nothing);
    assert_eq!(pop(&mut jb, t0 + 1020 * MS), Out::Frame(1));
    assert_eq!(jb.stats().lost, 0);
    assert_eq!(jb.target_delay(), 20 * MS);
}

#[test]
fn dtmf_sequence_numbers_are_skipped_not_lost() {
    let t0 = Instant::now();
    let mut jb = buffer();
    push(&mut jb, t0, 0);
    jb.push_foreign(t0 + 20 * MS, 1, SSRC);
    assert_eq!(pop(&mut jb, t0 + 25 * MS), Out::Frame(0));
    jb.push_foreign(t0 + 40 * MS, 2, SSRC);
    // Events replace audio here: nothing to play, and nothing lost.
    assert_eq!(pop(&mut jb, t0 + 45 * MS), Out::Nothing);
    push(&mut jb, t0 + 60 * MS, 3);
    assert_eq!(pop(&mut jb, t0 + 65 * MS), Out::Nothing);
    assert_eq!(pop(&mut jb, t0 + 85 * MS), Out::Frame(3));
    assert_eq!(jb.stats().lost, 0);
}

#[test]
fn oversize_payload_is_refused() {
    let mut jb = buffer();
    let big = [0u8; 641];
    assert_eq!(
        jb.push(Instant::now(), 1, 1, SSRC, &big),
        PushOutcome::Oversize
    );
    assert_eq!(jb.stats().oversize, 1);
    assert_eq!(jb.stats().received, 0);
}

#[test]
fn target_delay_grows_with_jitter_and_shrinks_back() {
    let t0 = Instant::now();
    let mut jb = buffer();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for seq in 0..200u16 {
        push(&mut jb, t0 + u32::from(seq) * 20 * MS, seq);
    }
    assert_eq!(jb.target_delay(), 20 * MS);
    for seq in 200..400u16 {
        let wobble = rng.gen_range(0..60) * MS;
        push(&mut jb, t0 + u32::from(seq) * 20 * MS + wobble, seq);
    }
    let jittery = jb.target_delay();
    assert!(jittery >= 60 * MS && jittery <= 200 * MS, "{jittery:?}");
    assert!(jb.jitter() > 10 * MS);
    for seq in 400..800u16 {
        push(&mut jb, t0 + u32::from(seq) * 20 * MS + 100 * MS, seq);
    }
    assert!(jb.target_delay() <= 40 * MS, "{:?}", jb.target_delay());
}

#[test]
fn a_queue_above_target_is_trimmed() {
    let t0 = Instant::now();
    let mut jb = buffer();
    for seq in 0..10 {
        push(&mut jb, t0, seq);
    }
    for i in 1..=6u32 {
        pop(&mut jb, t0 + i * 20 * MS);
    }
    assert!(jb.stats().discarded >= 3);
    assert!(jb.depth() <= 3, "depth {}", jb.depth());
}

#[test]
fn invalid_config_names_the_setting() {
    let config = JitterConfig {
        capacity: 5,
        ..JitterConfig::default()
    };
    assert_eq!(
        JitterBuffer::new(config).err(),
        Some(JitterError::InvalidConfig("capacity"))
    );
}

/// A lossy, reordering, duplicating network for 20 000 packets: every sequence number is
/// played, concealed or trimmed exactly once, in order, and nothing panics.
#[test]
fn simulated_network_accounts_for_every_packet() {
    let t0 = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut jb = buffer();
    let total: u32 = 20_000;
    let mut arrivals: Vec<(Instant, u16)> = Vec::new();
    for i in 0..total {
        if rng.gen_bool(0.02) {
            continue; // lost in the network
        }
        let seq = (60_000 + i) as u16;
        let delay = rng.gen_range(0..50) * MS;
        arrivals.push((t0 + i * 20 * MS + delay, seq));
        if rng.gen_bool(0.01) {
            arrivals.push((t0 + i * 20 * MS + delay + 5 * MS, seq));
        }
    }
    arrivals.sort_by_key(|a| a.0);
    let mut next_arrival = arrivals.iter().peekable();
    let (mut frames, mut lost) = (0u64, 0u64);
    let mut last: Option<u16> = None;
    for tick in 0..total + 20 {
        let now = t0 + tick * 20 * MS + 7 * MS;
        while let Some(&&(at, seq)) = next_arrival.peek() {
            if at > now {
                break;
            }
            push(&mut jb, at, seq);
            next_arrival.next();
        }
        let seq = match jb.pop(now) {
            Some(Playout::Frame { sequence, .. }) => {
                frames += 1;
                sequence
            }
            Some(Playout::Lost { sequence }) => {
                lost += 1;
                sequence
            }
            None => continue,
        };
        if let Some(prev) = last {
            assert!(seq.wrapping_sub(prev) >= 1 && seq.wrapping_sub(prev) < 10);
        }
        last = Some(seq);
    }
    let stats = jb.stats();
    assert_eq!(stats.received, arrivals.len() as u64);
    assert_eq!(stats.lost, lost);
    assert_eq!(frames + lost + stats.discarded, u64::from(total));
    assert!(stats.duplicate > 0 && stats.reordered > 0);
    assert!(lost < u64::from(total) / 20, "lost {lost}");
}

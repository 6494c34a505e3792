//! Tests for `rtcp.rs`, kept beside it in their own file so each stays under ~500 lines.

use super::*;
use rand::{Rng, SeedableRng};

#[test]
fn jitter_matches_a_hand_computed_example() {
    // 8 kHz, 20 ms packets (160 units). Packet 3 arrives 20 units late, packet 4 on time.
    // Transits: 0, 0, 20, 0 → |D| = 0, 20, 20.
    // Float A.8: J = 0, then 0 + (20 - 0)/16 = 1.25, then 1.25 + (20 - 1.25)/16 = 2.421875.
    // Integer ×16 form: 0 → 20 → 20 + 20 - ((20 + 8) >> 4) = 39, so jitter() = 39 >> 4 = 2.
    let mut j = InterarrivalJitter::default();
    for (arrival, ts) in [(1000u32, 0u32), (1160, 160), (1340, 320)] {
        j.update(arrival, ts);
    }
    assert_eq!(j.jitter_x16(), 20);
    assert_eq!(j.jitter(), 1);
    j.update(1480, 480);
    assert_eq!(j.jitter_x16(), 39);
    assert_eq!(j.jitter(), 2);
    assert!((f64::from(j.jitter_x16()) / 16.0 - 2.421875).abs() < 0.05);
}

#[test]
fn jitter_is_unaffected_by_timestamp_wraparound() {
    let mut j = InterarrivalJitter::default();
    let mut ts = u32::MAX - 480;
    let mut arrival = 77u32;
    for _ in 0..10 {
        j.update(arrival, ts);
        ts = ts.wrapping_add(160);
        arrival = arrival.wrapping_add(160);
    }
    assert_eq!(j.jitter_x16(), 0);
}

#[test]
fn loss_statistics_follow_appendix_a3() {
    let now = Instant::now();
    let mut s = ReceiverStats::new(0xAB, 0);
    for seq in (0u16..10).filter(|s| *s != 3 && *s != 7) {
        assert!(s.update(seq, u32::from(seq) * 160, u32::from(seq) * 160));
    }
    assert_eq!(s.expected(), 10);
    assert_eq!(s.received(), 8);
    assert_eq!(s.cumulative_lost(), 2);
    let block = s.report_block(now);
    assert_eq!(block.fraction_lost, 51); // (2 << 8) / 10
    assert_eq!(block.extended_highest_sequence, 9);
    assert_eq!(block.ssrc, 0xAB);
    // Next interval: nothing lost.
    for seq in 10u16..20 {
        s.update(seq, u32::from(seq) * 160, u32::from(seq) * 160);
    }
    assert_eq!(s.report_block(now).fraction_lost, 0);
}

#[test]
fn sequence_wraparound_extends_the_highest_sequence() {
    let mut s = ReceiverStats::new(1, 65_530);
    let mut seq = 65_530u16;
    for _ in 0..12 {
        s.update(seq, 0, 0);
        seq = seq.wrapping_add(1);
    }
    assert_eq!(s.extended_highest_sequence(), 65_536 + 5);
    assert_eq!(s.cumulative_lost(), 0);
}

#[test]
fn a_huge_jump_is_believed_only_when_the_next_packet_follows() {
    let mut s = ReceiverStats::new(1, 100);
    s.update(101, 0, 0);
    assert!(!s.update(40_000, 0, 0));
    assert!(s.update(102, 0, 0));
    assert!(!s.update(50_000, 0, 0));
    assert!(s.update(50_001, 0, 0), "sender restarted its sequence");
    assert_eq!(s.extended_highest_sequence(), 50_001);
    assert_eq!(s.expected(), 1);
}

#[test]
fn delay_since_last_sr_is_in_units_of_1_65536_s() {
    let t0 = Instant::now();
    let mut s = ReceiverStats::new(1, 0);
    let ntp = ntp_from_unix(Duration::from_millis(1_700_000_000_500));
    s.on_sender_report(t0, ntp);
    let block = s.report_block(t0 + Duration::from_millis(1500));
    assert_eq!(block.delay_since_last_sr, 98_304);
    assert_eq!(block.last_sr, ntp_middle32(ntp));
    assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
    assert_eq!(ntp as u32, 1 << 31); // half a second
}

fn sample_blocks() -> [ReportBlock; 2] {
    [
        ReportBlock {
            ssrc: 1,
            fraction_lost: 25,
            cumulative_lost: -5,
            extended_highest_sequence: 70_000,
            jitter: 12,
            last_sr: 0xDEAD_BEEF,
            delay_since_last_sr: 65_536,
        },
        ReportBlock {
            ssrc: 2,
            cumulative_lost: 0x7F_FFFF,
            ..ReportBlock::default()
        },
    ]
}

#[test]
fn sender_report_round_trips() {
    let info = SenderInfo {
        ntp_timestamp: 0x0123_4567_89AB_CDEF,
        rtp_timestamp: 160_000,
        packet_count: 1000,
        octet_count: 160_000,
    };
    let mut buf = [0u8; 256];
    let len = write_sender_report(&mut buf, 0x1234, &info, &sample_blocks()).unwrap();
    assert_eq!(len, 4 + 4 + 20 + 48);
    assert_eq!(&buf[..4], &[0x82, 200, 0, 18]);
    let mut packets = parse_compound(&buf[..len]);
    match packets.next() {
        Some(Ok(RtcpPacket::SenderReport {
            ssrc,
            info: got,
            blocks,
        })) => {
            assert_eq!(ssrc, 0x1234);
            assert_eq!(got, info);
            let mut n = 0;
            for (got, want) in blocks.zip(sample_blocks()) {
                assert_eq!(got, want);
                n += 1;
            }
            assert_eq!(n, 2);
        }
        other => panic!("expected an SR, got {other:?}"),
    }
    assert!(packets.next().is_none());
}

#[test]
fn compound_receiver_report_and_sdes_parse() {
    let mut buf = [0u8; 128];
    let len = write_receiver_report(&mut buf, 9, &sample_blocks()[..1]).unwrap();
    assert_eq!(len, 32);
    // A minimal SDES (type 202) with one empty chunk: header + SSRC + 4 zero bytes.
    let sdes = [0x81, 202, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0];
    buf[len..len + sdes.len()].copy_from_slice(&sdes);
    let packets: Vec<_> = parse_compound(&buf[..len + sdes.len()]).collect();
    assert_eq!(packets.len(), 2);
    match &packets[0] {
        Ok(RtcpPacket::ReceiverReport { ssrc: 9, blocks }) => {
            assert_eq!(blocks.clone().next(), Some(sample_blocks()[0]));
        }
        other => panic!("expected an RR, got {other:?}"),
    }
    assert!(matches!(
        packets[1],
        Ok(RtcpPacket::Other {
            packet_type: 202,
            ..
        })
    ));
}

#[test]
fn writers_refuse_small_buffers_and_too_many_blocks() {
    let mut small = [0u8; 10];
    assert_eq!(
        write_receiver_report(&mut small, 1, &[]),
        Ok(8),
        "an empty RR is 8 bytes"
    );
    assert!(matches!(
        write_receiver_report(&mut small, 1, &sample_blocks()),
        Err(RtcpError::BufferTooSmall { needed: 56, .. })
    ));
    let many = [ReportBlock::default(); 32];
    let mut big = [0u8; 2048];
    assert_eq!(
        write_receiver_report(&mut big, 1, &many),
        Err(RtcpError::TooManyReportBlocks(32))
    );
}

#[test]
fn truncated_and_random_rtcp_never_panics() {
    let mut buf = [0u8; 256];
    let len = write_sender_report(&mut buf, 1, &SenderInfo::default(), &sample_blocks()).unwrap();
    for cut in 0..len {
        let results: Vec<_> = parse_compound(&buf[..cut]).collect();
        assert!(results.iter().all(|r| r.is_err()), "cut at {cut}");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut junk = [0u8; 96];
    for _ in 0..20_000 {
        let n = rng.gen_range(0..junk.len());
        rng.fill(&mut junk[..n]);
        if rng.gen_bool(0.5) {
            junk[0] = (junk[0] & 0x3F) | 0x80;
        }
        for packet in parse_compound(&junk[..n]) {
            if let Ok(RtcpPacket::SenderReport { blocks, .. }) = packet {
                let _ = blocks.count();
            }
        }
    }
}

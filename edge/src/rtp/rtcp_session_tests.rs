//! Tests for `rtcp_session.rs`: two sessions talk to each other under simulated time.

use super::*;

const MS: Duration = Duration::from_millis(1);
const WALL: Duration = Duration::from_secs(1_700_000_000);

fn session(t0: Instant, ssrc: u32, seed: u64) -> RtcpSession {
    RtcpSession::new(t0, WALL, ssrc, 8000, Duration::from_secs(5), seed)
}

/// Runs `s` until its next report and returns it with the time it was due.
fn next_report(s: &mut RtcpSession) -> (Instant, Vec<u8>) {
    let at = s.poll_timeout().expect("open session");
    s.handle_timeout(at);
    let bytes = s.poll_transmit(at).expect("a report is due").to_vec();
    (at, bytes)
}

#[test]
fn reports_come_every_half_to_one_and_a_half_intervals() {
    let t0 = Instant::now();
    for seed in 1..20u64 {
        let mut s = session(t0, 1, seed * 7919);
        let mut last = t0;
        for _ in 0..10 {
            let before = s.poll_timeout().expect("open");
            s.handle_timeout(before - MS);
            assert!(s.poll_transmit(before - MS).is_none(), "not due yet");
            let (at, _) = next_report(&mut s);
            let gap = at - last;
            assert!(
                gap >= Duration::from_millis(2500) && gap <= Duration::from_millis(7500),
                "{gap:?}"
            );
            last = at;
        }
        assert_eq!(s.stats().reports_sent, 10);
    }
}

#[test]
fn a_receiver_report_before_we_send_then_sender_reports_with_our_counts() {
    let t0 = Instant::now();
    let mut s = session(t0, 0xA1, 3);
    let (_, first) = next_report(&mut s);
    let packets: Vec<_> = parse_compound(&first).collect();
    assert!(matches!(
        packets[0],
        Ok(RtcpPacket::ReceiverReport { ssrc: 0xA1, .. })
    ));
    assert!(
        matches!(packets[1], Ok(RtcpPacket::Other { packet_type: 202, body }) if body.windows(6).any(|w| w == b"freya-")),
        "SDES CNAME follows: {packets:?}"
    );
    let at = s.poll_timeout().expect("open");
    for n in 0..50u32 {
        s.on_rtp_sent(at - MS * (1000 - 20 * n), 160 * n, 160);
    }
    let (_, second) = next_report(&mut s);
    match parse_compound(&second).next() {
        Some(Ok(RtcpPacket::SenderReport { ssrc, info, blocks })) => {
            assert_eq!(ssrc, 0xA1);
            assert_eq!((info.packet_count, info.octet_count), (50, 8000));
            assert_eq!(blocks.count(), 0, "nothing received yet");
            // The last packet (timestamp 160 × 49) left 20 ms before the report: 160 units on.
            assert_eq!(info.rtp_timestamp, 160 * 50);
        }
        other => panic!("expected an SR, got {other:?}"),
    }
}

#[test]
fn the_far_end_learns_our_loss_and_both_ends_measure_the_round_trip() {
    let t0 = Instant::now();
    let one_way = MS * 30;
    let mut edge = session(t0, 0xE, 11);
    let mut caller = session(t0, 0xC, 12);
    // The caller hears our stream with packets 3 and 7 of 0..20 lost, and sends its own.
    for seq in 0..20u16 {
        let sent = t0 + MS * 20 * u32::from(seq);
        edge.on_rtp_sent(sent, u32::from(seq) * 160, 160);
        caller.on_rtp_sent(sent, u32::from(seq) * 160, 160);
        edge.on_rtp_received(sent + one_way, 0xC, seq, u32::from(seq) * 160, true);
        if seq != 3 && seq != 7 {
            caller.on_rtp_received(sent + one_way, 0xE, seq, u32::from(seq) * 160, true);
        }
    }
    // Our SR reaches the caller; its next report echoes it, 30 ms on the wire each way.
    let (at, sr) = next_report(&mut edge);
    caller.handle_datagram(at + one_way, &sr);
    caller.next_report = caller.next_report.max(at + one_way + MS * 700);
    let (at, rr) = next_report(&mut caller);
    edge.handle_datagram(at + one_way, &rr);
    let stats = edge.stats();
    assert_eq!(stats.reports_received, 1);
    assert_eq!(stats.peer_cumulative_lost, Some(2));
    assert_eq!(stats.peer_fraction_lost, Some(25), "2 of 20, in 256ths");
    let rtt = stats.rtt_micros.expect("an RTT from the LSR/DLSR echo");
    assert!((59_900..=60_100).contains(&rtt), "{rtt} µs");
    assert_eq!(caller.stats().reports_received, 1);
    assert_eq!(
        caller.stats().rtt_micros,
        None,
        "our SR echoed nothing of theirs"
    );
}

#[test]
fn jitter_counts_audio_only_and_an_ssrc_change_starts_over() {
    let t0 = Instant::now();
    let mut s = session(t0, 1, 5);
    for seq in 0..10u16 {
        let ts = u32::from(seq) * 160;
        s.on_rtp_received(t0 + MS * 20 * u32::from(seq), 9, seq, ts, true);
    }
    // RFC 4733 packets keep their event's timestamp: loss statistics only.
    for seq in 10..14u16 {
        s.on_rtp_received(t0 + MS * 20 * u32::from(seq), 9, seq, 1600, false);
    }
    assert_eq!(s.jitter_ms(), 0);
    let source = s.source().expect("a source");
    assert_eq!((source.expected(), source.cumulative_lost()), (14, 0));
    s.on_rtp_received(t0 + MS * 400, 77, 5000, 0, true);
    assert_eq!(s.source().map(|s| (s.ssrc(), s.expected())), Some((77, 1)));
}

#[test]
fn hang_up_sends_one_final_report_with_bye_and_then_nothing() {
    let t0 = Instant::now();
    let mut s = session(t0, 0xB, 8);
    let bye = s.close(t0 + MS * 100).expect("final report").to_vec();
    let kinds: Vec<u8> = parse_compound(&bye)
        .map(|p| match p.expect("well formed") {
            RtcpPacket::SenderReport { .. } => 200,
            RtcpPacket::ReceiverReport { .. } => 201,
            RtcpPacket::Other { packet_type, .. } => packet_type,
        })
        .collect();
    assert_eq!(kinds, [201, 202, 203]);
    assert!(s.close(t0 + MS * 200).is_none());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + Duration::from_secs(60));
    assert!(s.poll_transmit(t0 + Duration::from_secs(60)).is_none());
    let mut peer = session(t0, 0xD, 9);
    peer.handle_datagram(t0, &bye);
    assert!(peer.stats().peer_bye);
    assert_eq!(s.stats().reports_sent, 1);
}

#[test]
fn junk_is_counted_and_ignored() {
    let t0 = Instant::now();
    let mut s = session(t0, 1, 1);
    let mut other = session(t0, 2, 2);
    let (_, good) = next_report(&mut other);
    s.handle_datagram(t0, b"\x80\xc8junk");
    s.handle_datagram(t0, &good[8..]); // starts with SDES
    s.handle_datagram(t0, &[]);
    s.handle_datagram(t0, &good[..good.len() - 3]); // truncated SDES after a good RR
    assert_eq!(s.stats().junk_received, 3);
    assert_eq!(
        s.stats().reports_received,
        1,
        "the RR before the cut still counts"
    );
    for end in 0..good.len() {
        s.handle_datagram(t0, &good[..end]);
    }
}

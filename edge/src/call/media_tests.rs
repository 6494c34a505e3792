//! The call media core under simulated time: continuous pacing, talk spurts, symmetric RTP
//! (and no hijack of it), RFC 4733 digits, inactivity and junk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::call::liveness::HoldChange;
use crate::rtp::dtmf::{DtmfDigit, DtmfEncoder};
use crate::rtp::packet::OutgoingHeader;
use crate::sip::sdp::Direction;

pub(crate) fn audio() -> NegotiatedAudio {
    NegotiatedAudio {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        telephone_event_rate: 8000,
        remote_rtp: "127.0.0.1:40002".parse().expect("addr"),
        ptime: 20,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        remote_rtcp: "127.0.0.1:40003".parse().expect("addr"),
    }
}

pub(crate) fn settings() -> MediaSettings {
    MediaSettings {
        codecs: Arc::from([Codec::Pcmu]),
        inactivity_timeout: Duration::from_secs(5),
        hold_timeout: Duration::from_secs(60),
        rtcp_interval: Duration::from_secs(5),
    }
}

fn media(t0: Instant) -> CallMedia {
    CallMedia::new(t0, &audio(), &settings()).expect("PCMU is supported")
}

/// Runs the clock in 20 ms steps from `from` for `frames` frames, collecting what is sent.
fn run(m: &mut CallMedia, from: Instant, frames: u32) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut sent = Vec::new();
    for n in 0..frames {
        let now = from + Duration::from_millis(20) * n;
        m.handle_timeout(now);
        while let Some((to, bytes)) = m.poll_transmit(now) {
            sent.push((to, bytes.to_vec()));
        }
    }
    sent
}

pub(crate) fn caller_packet(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Packetizer::new(7);
    let header = OutgoingHeader {
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        marker: false,
    };
    p.packetize(pt, header, payload).expect("packet").to_vec()
}

#[test]
fn a_packet_leaves_every_20_ms_even_in_silence() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let sent = run(&mut m, t0, 50);
    assert_eq!(sent.len(), 50, "one packet per frame for a second");
    let parsed: Vec<RtpPacket> = sent
        .iter()
        .map(|(_, b)| RtpPacket::parse(b).expect("rtp"))
        .collect();
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(160));
        assert_eq!(pair[1].payload.len(), 160);
    }
    assert!(
        parsed.iter().skip(1).all(|p| !p.marker),
        "no talk spurt in silence"
    );
}

#[test]
fn queued_audio_starts_a_talk_spurt_with_the_marker_and_then_reports_its_end() {
    let t0 = Instant::now();
    let mut m = media(t0);
    run(&mut m, t0, 5);
    m.play(&[1000; 480]);
    assert!(m.is_playing());
    let sent = run(&mut m, t0 + Duration::from_millis(100), 5);
    let markers: Vec<bool> = sent
        .iter()
        .map(|(_, b)| RtpPacket::parse(b).expect("rtp").marker)
        .collect();
    assert_eq!(markers, [true, false, false, false, false]);
    assert!(!m.is_playing());
    assert_eq!(m.poll_event(), Some(MediaEvent::PlaybackFinished));
}

#[test]
fn replies_follow_the_address_the_caller_really_sends_from() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let natted: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    m.handle_datagram(t0, natted, &caller_packet(1, 0, &[0xff; 160]));
    let sent = run(&mut m, t0, 1);
    assert_eq!(sent[0].0, natted);
    assert_eq!(m.stats().packets_received, 1);
}

#[test]
fn a_stranger_cannot_take_the_stream_over_once_the_caller_is_latched() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let caller: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    let stranger: SocketAddr = "127.0.0.1:50666".parse().expect("addr");
    m.handle_datagram(t0, caller, &caller_packet(1, 0, &[0xff; 160]));
    run(&mut m, t0, 1);
    assert!(m.take_received_frame().is_some(), "the caller's frame");
    // A key press and loud audio from another address, for six seconds.
    let digit = DtmfDigit::from_char('9').expect("digit");
    for (n, event) in DtmfEncoder::new(digit, 8000, 800, 160, 10).enumerate() {
        let mut p = Packetizer::new(66);
        let header = OutgoingHeader {
            sequence: 100 + n as u16,
            timestamp: event.timestamp,
            marker: event.marker,
        };
        let bytes = p.packetize(101, header, &event.payload).expect("packet");
        m.handle_datagram(t0, stranger, bytes);
    }
    let mut sent = Vec::new();
    for n in 2..300u16 {
        let now = t0 + Duration::from_millis(20) * u32::from(n);
        m.handle_datagram(now, stranger, &caller_packet(n, 0, &[0x00; 160]));
        sent.extend(run(&mut m, now, 1));
        assert!(
            m.take_received_frame().is_none(),
            "nothing of the stranger's is played out"
        );
    }
    assert!(
        sent.iter().all(|(to, _)| *to == caller),
        "our audio stays with the caller"
    );
    let stats = m.stats();
    assert_eq!(stats.packets_received, 1);
    assert!(stats.foreign_received >= 298, "{stats:?}");
    assert_eq!(m.foreign_received(), stats.foreign_received);
    let events: Vec<MediaEvent> = std::iter::from_fn(|| m.poll_event()).collect();
    assert_eq!(
        events,
        [MediaEvent::Inactive],
        "no digit, and the stranger does not keep a silent caller's call alive"
    );
}

#[test]
fn rfc_4733_packets_become_one_digit_per_press() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let digit = DtmfDigit::from_char('7').expect("digit");
    for (seq, (n, packet)) in (10u16..).zip(DtmfEncoder::new(digit, 8000, 800, 160, 10).enumerate())
    {
        let mut p = Packetizer::new(9);
        let header = OutgoingHeader {
            sequence: seq,
            timestamp: packet.timestamp,
            marker: packet.marker,
        };
        let bytes = p
            .packetize(101, header, &packet.payload)
            .expect("packet")
            .to_vec();
        m.handle_datagram(
            t0 + Duration::from_millis(20) * n as u32,
            "127.0.0.1:40002".parse().expect("addr"),
            &bytes,
        );
    }
    let events: Vec<MediaEvent> = std::iter::from_fn(|| m.poll_event()).collect();
    assert_eq!(
        events,
        [MediaEvent::Dtmf(HeardDigit {
            digit: '7',
            via: DtmfVia::Rfc4733,
            duration: Duration::from_millis(100),
        })]
    );
}

#[test]
fn a_silent_caller_is_declared_inactive_after_the_timeout() {
    let t0 = Instant::now();
    let mut m = media(t0);
    m.handle_timeout(t0 + Duration::from_secs(4));
    assert_eq!(m.poll_event(), None);
    assert!(m.poll_timeout() <= t0 + Duration::from_secs(5));
    m.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(m.poll_event(), Some(MediaEvent::Inactive));
    m.handle_timeout(t0 + Duration::from_secs(9));
    assert_eq!(m.poll_event(), None, "reported once");
}

#[test]
fn junk_and_foreign_payloads_are_counted_and_ignored() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let from: SocketAddr = "127.0.0.1:40002".parse().expect("addr");
    m.handle_datagram(t0, from, b"\x00\x01junk");
    m.handle_datagram(t0, from, &caller_packet(1, 96, &[1, 2, 3]));
    m.handle_datagram(t0, from, &[]);
    assert_eq!(m.stats().junk_received, 3);
    assert_eq!(m.stats().packets_received, 0);
    assert_eq!(run(&mut m, t0, 1).len(), 1, "sending goes on");
}

/// Runs `m` to its first RTCP report and returns where it went and what it was.
fn first_rtcp(m: &mut CallMedia, t0: Instant) -> (SocketAddr, Vec<u8>) {
    for n in 0..400u32 {
        let now = t0 + Duration::from_millis(20) * n;
        m.handle_timeout(now);
        while m.poll_transmit(now).is_some() {}
        if let Some((to, bytes)) = m.poll_rtcp_transmit(now) {
            return (to, bytes.to_vec());
        }
    }
    panic!("no RTCP report within 8 s");
}

#[test]
fn rtcp_reports_go_to_the_odd_port_and_latch_onto_where_reports_come_from() {
    use crate::rtp::rtcp::{parse_compound, write_receiver_report, ReportBlock, RtcpPacket};
    let t0 = Instant::now();
    let mut m = media(t0);
    m.handle_datagram(
        t0,
        "127.0.0.1:40002".parse().expect("addr"),
        &caller_packet(1, 0, &[0xff; 160]),
    );
    let (to, report) = first_rtcp(&mut m, t0);
    assert_eq!(to, "127.0.0.1:40003".parse().expect("addr"));
    let Some(Ok(RtcpPacket::SenderReport { ssrc, blocks, .. })) = parse_compound(&report).next()
    else {
        panic!("an SR: we have been sending");
    };
    let about_caller: Vec<ReportBlock> = blocks.collect();
    assert_eq!(about_caller.len(), 1);
    assert_eq!(about_caller[0].ssrc, 7, "the caller's stream");
    // The caller's RR about our stream, from another port than we guessed.
    let block = ReportBlock {
        ssrc,
        fraction_lost: 64,
        cumulative_lost: 12,
        ..ReportBlock::default()
    };
    let mut rr = [0u8; 64];
    let len = write_receiver_report(&mut rr, 7, &[block]).expect("rr");
    let natted: SocketAddr = "127.0.0.1:50001".parse().expect("addr");
    m.handle_rtcp(t0 + Duration::from_secs(8), natted, &rr[..len]);
    let stats = m.stats().rtcp;
    assert_eq!(stats.reports_received, 1);
    assert_eq!(
        (stats.peer_fraction_lost, stats.peer_cumulative_lost),
        (Some(64), Some(12))
    );
    let (to, bye) = m
        .close_rtcp(t0 + Duration::from_secs(9))
        .expect("final report");
    assert_eq!(to, natted);
    assert!(parse_compound(bye).any(|p| matches!(
        p,
        Ok(RtcpPacket::Other {
            packet_type: 203,
            ..
        })
    )));
    assert!(m.close_rtcp(t0 + Duration::from_secs(10)).is_none(), "once");
}

#[test]
fn multiplexed_rtcp_shares_the_rtp_address_and_is_not_junk() {
    let t0 = Instant::now();
    let mut muxed = audio();
    muxed.rtcp_mux = true;
    muxed.remote_rtcp = muxed.remote_rtp;
    let settings = MediaSettings {
        rtcp_interval: Duration::from_secs(1),
        ..settings()
    };
    let mut m = CallMedia::new(t0, &muxed, &settings).expect("PCMU");
    let natted: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    m.handle_datagram(t0, natted, &caller_packet(1, 0, &[0xff; 160]));
    let (to, report) = first_rtcp(&mut m, t0);
    assert_eq!(to, natted, "with the RTP stream, after latching");
    // Our own report, looped back on the RTP port, parses as RTCP and counts as one.
    m.handle_datagram(t0, natted, &report);
    assert_eq!(m.stats().junk_received, 0);
    assert_eq!(m.stats().rtcp.reports_received, 1);
}

#[test]
fn an_opus_call_runs_on_the_48_khz_clock_and_repairs_a_lost_packet_with_fec() {
    use crate::call::codec::CallCodec;
    let t0 = Instant::now();
    let opus = NegotiatedAudio {
        codec: Codec::Opus,
        payload_type: 111,
        telephone_event: None,
        ..audio()
    };
    let mut m = CallMedia::new(t0, &opus, &settings()).expect("Opus is carried");
    // The caller's Opus stream: a tone, packet 12 lost on the way.
    let mut caller = CallCodec::new(Codec::Opus).expect("opus");
    let mut payload = [0u8; crate::call::codec::MAX_PAYLOAD];
    let mut p = Packetizer::new(7);
    let from: SocketAddr = "127.0.0.1:40002".parse().expect("addr");
    let mut heard = 0;
    let mut sent = Vec::new();
    for n in 0..40u16 {
        let now = t0 + Duration::from_millis(20) * u32::from(n);
        let mut pcm = [0i16; FRAME_SAMPLES];
        for (i, s) in pcm.iter_mut().enumerate() {
            let t = (usize::from(n) * FRAME_SAMPLES + i) as f64 / 8000.0;
            *s = (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16;
        }
        let len = caller.encode(&pcm, &mut payload);
        if n != 12 {
            let header = OutgoingHeader {
                sequence: n,
                timestamp: u32::from(n) * 960,
                marker: n == 0,
            };
            let bytes = p
                .packetize(111, header, &payload[..len])
                .expect("packet")
                .to_vec();
            m.handle_datagram(now, from, &bytes);
        }
        m.handle_timeout(now);
        while let Some((_, bytes)) = m.poll_transmit(now) {
            sent.push(bytes.to_vec());
            if m.take_received_frame()
                .is_some_and(|(_, f)| f.iter().any(|&s| s != 0))
            {
                heard += 1;
            }
        }
    }
    let stats = m.stats();
    assert_eq!(stats.jitter.lost, 1);
    assert_eq!(stats.repair.recovered, 1, "{:?}", stats.repair);
    assert!(heard >= 35, "the tone is heard in {heard} frames");
    let parsed: Vec<RtpPacket> = sent
        .iter()
        .map(|b| RtpPacket::parse(b).expect("rtp"))
        .collect();
    assert!(parsed.iter().all(|p| p.payload_type == 111));
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(960));
    }
}

#[test]
fn digits_go_out_as_telephone_events_in_our_stream_while_the_voice_waits() {
    let t0 = Instant::now();
    let mut m = media(t0);
    m.play(&[1000; 160 * 20]);
    let mut sent = run(&mut m, t0, 2);
    m.send_dtmf("5").expect("telephone-event was negotiated");
    sent.extend(run(&mut m, t0 + Duration::from_millis(40), 20));
    assert_eq!(sent.len(), 22, "one packet per 20 ms, events included");
    let packets: Vec<RtpPacket> = sent
        .iter()
        .map(|(_, b)| RtpPacket::parse(b).expect("rtp"))
        .collect();
    assert!(
        packets.iter().all(|p| p.ssrc == packets[0].ssrc),
        "one SSRC"
    );
    for pair in packets.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
    }
    let kinds: String = packets
        .iter()
        .map(|p| if p.payload_type == 101 { 'e' } else { 'v' })
        .collect();
    assert_eq!(kinds, "vveeeeeeevvvvvvvvvvvvv");
    let events = &packets[2..9];
    assert!(events[0].marker && events[1..].iter().all(|p| !p.marker));
    assert!(events.iter().all(|p| p.timestamp == events[0].timestamp));
    assert_eq!(events[0].timestamp, packets[1].timestamp.wrapping_add(160));
    let last = crate::rtp::dtmf::TelephoneEvent::parse(events[6].payload).expect("event");
    assert_eq!((last.event, last.end, last.duration), (5, true, 800));
    assert!(packets[9].marker, "the voice resumes as a new talk spurt");
    assert_eq!(
        packets[9].timestamp,
        events[0].timestamp.wrapping_add(7 * 160)
    );
    // The agent's audio waited: nothing of it was skipped.
    assert_eq!(m.playback_position(), 15 * 160);
}

#[test]
fn without_telephone_event_digits_are_refused_for_sip_info() {
    let t0 = Instant::now();
    let mut m = CallMedia::new(
        t0,
        &NegotiatedAudio {
            telephone_event: None,
            ..audio()
        },
        &settings(),
    )
    .expect("media");
    assert_eq!(m.send_dtmf("1"), Err(SendDtmfError::NoTelephoneEvent));
    let mut m = media(t0);
    assert!(matches!(m.send_dtmf("1x"), Err(SendDtmfError::Digits(_))));
}

#[test]
fn stream_payloads_play_out_through_the_jitter_buffer_like_rtp() {
    let t0 = Instant::now();
    let mut m = media(t0);
    // Frames 2 and 1 arrive out of order, numbered by the stream rather than by RTP.
    let loud = [0x10u8; FRAME_SAMPLES];
    m.handle_payload(t0, 2, 2 * 160, &loud);
    m.handle_payload(t0, 1, 160, &loud);
    let mut heard = 0;
    for n in 0..10u32 {
        let now = t0 + Duration::from_millis(20) * n;
        m.handle_timeout(now);
        while m.poll_transmit(now).is_some() {
            if let Some((_, frame)) = m.take_received_frame() {
                assert!(frame.iter().any(|&s| s != 0), "decoded audio");
                heard += 1;
            }
        }
    }
    assert_eq!(heard, 2);
    assert_eq!(m.stats().packets_received, 2);
}

#[test]
fn cutting_queued_playback_is_an_event_and_stopping_nothing_is_not() {
    let t0 = Instant::now();
    let mut m = media(t0);
    m.stop_playback();
    assert_eq!(m.poll_event(), None);
    m.play(&[1000; 800]);
    m.stop_playback();
    assert_eq!(m.poll_event(), Some(MediaEvent::PlaybackCut));
    assert!(!m.is_playing());
}

/// The caller's receiver report (it sends nothing itself: it holds the call).
fn held_phones_report() -> Vec<u8> {
    let mut rr = [0u8; 64];
    let len = crate::rtp::rtcp::write_receiver_report(&mut rr, 7, &[]).expect("rr");
    rr[..len].to_vec()
}

#[test]
fn a_held_call_sends_no_rtp_while_rtcp_goes_on_and_resumes_where_it_left_off() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let before = run(&mut m, t0, 10);
    assert_eq!(before.len(), 10);
    let last = RtpPacket::parse(&before[9].1).expect("rtp");
    let held_at = t0 + Duration::from_millis(200);
    assert_eq!(
        m.set_direction(held_at, Direction::RecvOnly),
        Some(HoldChange::Held)
    );
    assert!(m.held());
    m.play(&[1000; 1600]);
    let mut rtcp = 0;
    for n in 0..500u32 {
        let now = held_at + Duration::from_millis(20) * n;
        m.handle_timeout(now);
        assert!(
            m.poll_transmit(now).is_none(),
            "no RTP at all while held (frame {n})"
        );
        if m.poll_rtcp_transmit(now).is_some() {
            rtcp += 1;
        }
    }
    assert!(rtcp >= 1, "RTCP goes on while held");
    assert!(m.is_playing(), "queued speech waits for the resume");
    let back = held_at + Duration::from_secs(10);
    assert_eq!(
        m.set_direction(back, Direction::SendRecv),
        Some(HoldChange::Resumed)
    );
    let after = run(&mut m, back, 5);
    assert_eq!(after.len(), 5);
    let first = RtpPacket::parse(&after[0].1).expect("rtp");
    assert_eq!(
        first.sequence,
        last.sequence.wrapping_add(1),
        "no gap in sequence"
    );
    assert!(first.marker, "a new talk spurt after the hold");
    assert!(
        first.timestamp.wrapping_sub(last.timestamp) >= 8000 * 10,
        "the timestamp kept real time across the hold"
    );
}

#[test]
fn rtcp_keeps_a_held_call_past_the_rtp_timeout_until_the_hold_timeout() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let caller_rtcp: SocketAddr = "127.0.0.1:40003".parse().expect("addr");
    m.set_direction(t0, Direction::Inactive);
    // Two minutes held (RTP timeout 5 s, hold timeout 60 s), a report every 5 s.
    let mut now = t0;
    for n in 1..=24u32 {
        now = t0 + Duration::from_secs(5) * n;
        m.handle_rtcp(now, caller_rtcp, &held_phones_report());
        m.handle_timeout(now);
        assert_eq!(m.poll_event(), None, "alive at {n}×5 s");
    }
    assert_eq!(m.stats().rtcp.reports_received, 24);
    // The phone goes quiet: it is dead a hold timeout after its last report, not before.
    m.handle_timeout(now + Duration::from_secs(59));
    assert_eq!(m.poll_event(), None);
    assert!(m.poll_timeout() <= now + Duration::from_secs(60));
    m.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(m.poll_event(), Some(MediaEvent::HoldTimeout));
}

#[test]
fn without_hold_rtcp_alone_does_not_keep_the_call() {
    let t0 = Instant::now();
    let mut m = media(t0);
    let caller_rtcp: SocketAddr = "127.0.0.1:40003".parse().expect("addr");
    m.handle_rtcp(
        t0 + Duration::from_secs(4),
        caller_rtcp,
        &held_phones_report(),
    );
    m.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(m.poll_event(), Some(MediaEvent::Inactive));
}

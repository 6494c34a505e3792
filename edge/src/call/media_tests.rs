//! The call media core under simulated time: continuous pacing, talk spurts, symmetric RTP,
//! RFC 4733 digits, inactivity and junk.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::rtp::dtmf::{DtmfDigit, DtmfEncoder};
use crate::rtp::packet::OutgoingHeader;
use crate::sip::sdp::Direction;

fn audio() -> NegotiatedAudio {
    NegotiatedAudio {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        remote_rtp: "127.0.0.1:40002".parse().expect("addr"),
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

fn media(t0: Instant) -> CallMedia {
    CallMedia::new(
        t0,
        &audio(),
        MediaSettings {
            inactivity_timeout: Duration::from_secs(5),
        },
    )
    .expect("PCMU is supported")
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

fn caller_packet(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
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
    assert_eq!(events, [MediaEvent::Dtmf('7')]);
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
        MediaSettings {
            inactivity_timeout: Duration::from_secs(5),
        },
    )
    .expect("media");
    assert_eq!(m.send_dtmf("1"), Err(SendDtmfError::NoTelephoneEvent));
    let mut m = media(t0);
    assert!(matches!(m.send_dtmf("1x"), Err(SendDtmfError::Digits(_))));
}

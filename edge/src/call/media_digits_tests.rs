//! The caller's digits and ours through the media core: telephone-event at 8000 on an Opus
//! call both ways, and keypad tones in the caller's audio when no telephone-event was
//! negotiated — and not when one was.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::call::codec::CallCodec;
use crate::media::dtmf_tones::key_frequencies;
use crate::rtp::dtmf::{DtmfDigit, DtmfEncoder, TelephoneEvent};
use crate::rtp::packet::OutgoingHeader;
use crate::sip::sdp::Direction;

const CALLER: &str = "127.0.0.1:40002";

fn audio(codec: Codec, telephone_event: Option<u8>, rate: u32) -> NegotiatedAudio {
    NegotiatedAudio {
        codec,
        payload_type: if codec == Codec::Opus { 111 } else { 0 },
        telephone_event,
        telephone_event_rate: rate,
        remote_rtp: CALLER.parse().expect("addr"),
        ptime: 20,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        remote_rtcp: "127.0.0.1:40003".parse().expect("addr"),
    }
}

fn settings() -> MediaSettings {
    MediaSettings {
        codecs: Arc::from([Codec::Opus, Codec::Pcmu]),
        inactivity_timeout: Duration::from_secs(60),
        hold_timeout: Duration::from_secs(60),
        rtcp_interval: Duration::from_secs(5),
    }
}

/// The digits among the media core's events.
fn digits(m: &mut CallMedia) -> Vec<(char, DtmfVia, Duration)> {
    std::iter::from_fn(|| m.poll_event())
        .filter_map(|e| match e {
            MediaEvent::Dtmf(heard) => Some((heard.digit, heard.via, heard.duration)),
            _ => None,
        })
        .collect()
}

/// The caller presses `keys` as tones (100 ms on, 100 ms off) in its audio, encoded with the
/// call's codec; the core runs its 20 ms clock throughout. Returns the digits it reported.
fn caller_plays_tones(m: &mut CallMedia, codec: Codec, keys: &str) -> Vec<(char, DtmfVia)> {
    let t0 = Instant::now();
    let mut signal = vec![0i16; 800];
    for key in keys.chars() {
        let (low, high) = key_frequencies(DtmfDigit::from_char(key).expect("key"));
        for _ in 0..800 {
            let t = signal.len() as f64 / 8000.0;
            let two_pi = 2.0 * std::f64::consts::PI;
            let s = 7000.0
                * ((two_pi * f64::from(low) * t).sin() + (two_pi * f64::from(high) * t).sin());
            signal.push(s as i16);
        }
        signal.extend([0; 800]);
    }
    let mut caller = CallCodec::new(codec).expect("codec");
    let mut payload = [0u8; crate::call::codec::MAX_PAYLOAD];
    let mut p = Packetizer::new(7);
    let samples_per_frame = codec.clock_rate() / 50;
    let from: SocketAddr = CALLER.parse().expect("addr");
    let mut heard = Vec::new();
    for (n, frame) in signal.chunks_exact(FRAME_SAMPLES).enumerate() {
        let n = n as u32;
        let now = t0 + Duration::from_millis(20) * n;
        let mut pcm = [0i16; FRAME_SAMPLES];
        pcm.copy_from_slice(frame);
        let len = caller.encode(&pcm, &mut payload);
        let header = OutgoingHeader {
            sequence: n as u16,
            timestamp: n * samples_per_frame,
            marker: n == 0,
        };
        let pt = if codec == Codec::Opus { 111 } else { 0 };
        let bytes = p
            .packetize(pt, header, &payload[..len])
            .expect("packet")
            .to_vec();
        m.handle_datagram(now, from, &bytes);
        m.handle_timeout(now);
        while m.poll_transmit(now).is_some() {}
        heard.extend(digits(m).into_iter().map(|(d, via, _)| (d, via)));
    }
    heard
}

/// A call's media core starting now, on `codec` with telephone-event `events` at `rate`.
fn media_now(codec: Codec, events: Option<u8>, rate: u32) -> CallMedia {
    CallMedia::new(Instant::now(), &audio(codec, events, rate), &settings()).expect("carried")
}

/// `digits` as heard in the audio, each once.
fn inband(digits: &str) -> Vec<(char, DtmfVia)> {
    digits.chars().map(|c| (c, DtmfVia::Inband)).collect()
}

#[test]
fn an_event_at_8000_on_an_opus_call_is_one_digit_of_the_right_duration() {
    let t0 = Instant::now();
    let mut m = CallMedia::new(t0, &audio(Codec::Opus, Some(101), 8000), &settings())
        .expect("Opus is carried");
    let digit = DtmfDigit::from_char('7').expect("digit");
    // baresip's press: durations in 8 kHz units (100 ms = 800), the timestamp from its
    // 48 kHz stream.
    let packets = DtmfEncoder::new(digit, 96_000, 800, 160, 10);
    for (seq, (n, packet)) in (10u16..).zip(packets.enumerate()) {
        let header = OutgoingHeader {
            sequence: seq,
            timestamp: packet.timestamp,
            marker: packet.marker,
        };
        let bytes = Packetizer::new(9)
            .packetize(101, header, &packet.payload)
            .expect("packet")
            .to_vec();
        let now = t0 + Duration::from_millis(20) * n as u32;
        m.handle_datagram(now, CALLER.parse().expect("addr"), &bytes);
    }
    assert_eq!(
        digits(&mut m),
        [('7', DtmfVia::Rfc4733, Duration::from_millis(100))]
    );
    assert_eq!(m.stats().junk_received, 0);
}

#[test]
fn our_digits_on_an_opus_call_use_the_event_payload_type_and_its_8000_clock() {
    let t0 = Instant::now();
    let mut m = CallMedia::new(t0, &audio(Codec::Opus, Some(101), 8000), &settings())
        .expect("Opus is carried");
    let mut sent = Vec::new();
    for n in 0..20u32 {
        let now = t0 + Duration::from_millis(20) * n;
        if n == 2 {
            m.send_dtmf("5").expect("telephone-event was negotiated");
        }
        m.handle_timeout(now);
        while let Some((_, bytes)) = m.poll_transmit(now) {
            sent.push(bytes.to_vec());
        }
    }
    let packets: Vec<RtpPacket> = sent
        .iter()
        .map(|b| RtpPacket::parse(b).expect("rtp"))
        .collect();
    let kinds: String = packets
        .iter()
        .map(|p| match p.payload_type {
            101 => 'e',
            111 => 'v',
            _ => '?',
        })
        .collect();
    assert_eq!(kinds, "vveeeeeeevvvvvvvvvvv");
    let events = &packets[2..9];
    let durations: Vec<u16> = events
        .iter()
        .map(|p| TelephoneEvent::parse(p.payload).expect("event").duration)
        .collect();
    // 20 ms steps and 100 ms in all, counted at 8 kHz as the rtpmap says.
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    // The timestamps stay on the stream's 48 kHz timeline: the press starts where the next
    // voice frame would have, and the voice resumes 7 frames of 960 later.
    assert!(events.iter().all(|p| p.timestamp == events[0].timestamp));
    assert_eq!(events[0].timestamp, packets[1].timestamp.wrapping_add(960));
    assert_eq!(
        packets[9].timestamp,
        events[0].timestamp.wrapping_add(7 * 960)
    );
}

#[test]
fn tones_in_a_pcmu_call_without_telephone_event_are_digits_once_each() {
    let mut m = media_now(Codec::Pcmu, None, 8000);
    assert!(m.listens_for_tones());
    let heard = caller_plays_tones(&mut m, Codec::Pcmu, "159#");
    assert_eq!(heard, inband("159#"));
}

#[test]
fn tones_in_an_opus_call_without_telephone_event_are_digits_too() {
    let mut m = media_now(Codec::Opus, None, 48000);
    let heard = caller_plays_tones(&mut m, Codec::Opus, "2580");
    assert_eq!(heard, inband("2580"));
}

#[test]
fn tones_are_not_digits_when_telephone_event_was_negotiated_or_the_peer_used_info() {
    let mut m = media_now(Codec::Pcmu, Some(101), 8000);
    assert!(!m.listens_for_tones());
    assert_eq!(caller_plays_tones(&mut m, Codec::Pcmu, "123"), []);
    let mut m = media_now(Codec::Pcmu, None, 8000);
    m.stop_listening_for_tones();
    assert_eq!(caller_plays_tones(&mut m, Codec::Pcmu, "123"), []);
}

#[test]
fn odd_event_clock_rates_neither_panic_nor_stop_the_stream() {
    for rate in [1, 16_000, u32::MAX] {
        let t0 = Instant::now();
        let mut m = CallMedia::new(t0, &audio(Codec::Opus, Some(101), rate), &settings())
            .expect("Opus is carried");
        m.send_dtmf("9").expect("queued");
        let mut sent = 0;
        for n in 0..20u32 {
            let now = t0 + Duration::from_millis(20) * n;
            let event = TelephoneEvent {
                event: 9,
                end: n % 4 == 3,
                volume: 10,
                duration: u16::MAX,
            };
            let bytes = Packetizer::new(9)
                .packetize(
                    101,
                    OutgoingHeader {
                        sequence: n as u16,
                        timestamp: n / 4,
                        marker: false,
                    },
                    &event.to_bytes(),
                )
                .expect("packet")
                .to_vec();
            m.handle_datagram(now, CALLER.parse().expect("addr"), &bytes);
            m.handle_timeout(now);
            while m.poll_transmit(now).is_some() {
                sent += 1;
            }
        }
        assert_eq!(sent, 20, "one packet per tick at rate {rate}");
        assert_eq!(digits(&mut m).len(), 5, "rate {rate}");
    }
}

#[test]
fn speech_waits_while_our_digits_go_out_and_resumes_after_the_last() {
    let t0 = Instant::now();
    let mut m =
        CallMedia::new(t0, &audio(Codec::Pcmu, Some(101), 8000), &settings()).expect("PCMU");
    // Two seconds of loud speech queued, then the agent presses two keys.
    let speech: Vec<i16> = (0..16_000)
        .map(|i| if i % 2 == 0 { 8000 } else { -8000 })
        .collect();
    m.play(&speech);
    let mut kinds = String::new();
    for n in 0..60u32 {
        let now = t0 + Duration::from_millis(20) * n;
        if n == 3 {
            m.send_dtmf("12").expect("telephone-event was negotiated");
        }
        m.handle_timeout(now);
        while let Some((_, bytes)) = m.poll_transmit(now) {
            let packet = RtpPacket::parse(bytes).expect("rtp");
            kinds.push(match packet.payload_type {
                101 => 'e',
                _ => {
                    let mut pcm = [0i16; FRAME_SAMPLES];
                    let n = crate::media::g711::decode_ulaw(packet.payload, &mut pcm);
                    if pcm[..n].iter().any(|s| s.unsigned_abs() > 500) {
                        'v'
                    } else {
                        '.'
                    }
                }
            });
        }
    }
    let first = kinds.find('e').expect("digits went out");
    let last = kinds.rfind('e').expect("digits went out");
    assert!(
        !kinds[first..last].contains('v'),
        "no speech between the first and the last digit: {kinds}"
    );
    assert!(kinds[..first].contains('v'), "speech before: {kinds}");
    assert_eq!(
        kinds[last + 1..].chars().next(),
        Some('v'),
        "speech resumes right after the last digit's end: {kinds}"
    );
    assert_eq!(
        kinds[first..last].matches('.').count(),
        5,
        "the gap between keys: {kinds}"
    );
    assert_eq!(
        m.playback_position(),
        (kinds.matches('v').count() * FRAME_SAMPLES) as u64,
        "no speech was skipped, only delayed"
    );
}

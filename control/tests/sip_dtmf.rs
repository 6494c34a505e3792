//! A caller's digits end to end, from sipp (a foreign SIP peer) through a real edge to the
//! control plane's call record: RFC 4733 events at 8000 on an Opus call (what baresip,
//! Asterisk and FreeSWITCH offer), and keypad tones in the audio of a PCMU call that offered no
//! telephone-event. The media each sipp plays is a pcap written by the test.

use crate::support::caller::sipp_with_media;
use crate::support::pcap::{pcap_every_20_ms, rtp};
use crate::support::world::World;
use freya_control::store::StoredEvent;
use freya_edge::call::codec::{CallCodec, MAX_PAYLOAD};
use freya_edge::media::dtmf_tones::key_frequencies;
use freya_edge::media::g711::G711;
use freya_edge::rtp::dtmf::{DtmfDigit, DtmfEncoder};
use freya_edge::sip::sdp::Codec;

/// A baresip-like Opus stream (payload type 96, 48 kHz timestamps) of quiet audio in which
/// `keys` are pressed as RFC 4733 events (payload type 101) at 8 kHz: each 100 ms long (800
/// units), its timestamp the stream's 48 kHz position.
fn opus_with_events(keys: &str) -> Vec<Vec<u8>> {
    let mut encoder = CallCodec::new(Codec::Opus).expect("Opus encoder");
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut packets = Vec::new();
    let mut frame = 0u32;
    let mut audio = |packets: &mut Vec<Vec<u8>>, frame: &mut u32, count: u32| {
        for _ in 0..count {
            let len = encoder.encode(&[0i16; 160], &mut payload);
            let seq = *frame as u16;
            packets.push(rtp(96, *frame == 0, seq, *frame * 960, &payload[..len]));
            *frame += 1;
        }
    };
    audio(&mut packets, &mut frame, 25);
    for key in keys.chars() {
        let digit = DtmfDigit::from_char(key).expect("key");
        for event in DtmfEncoder::new(digit, frame * 960, 800, 160, 10) {
            let seq = frame as u16;
            packets.push(rtp(101, event.marker, seq, event.timestamp, &event.payload));
            frame += 1;
        }
        audio(&mut packets, &mut frame, 10);
    }
    audio(&mut packets, &mut frame, 25);
    packets
}

/// A PCMU stream in which `keys` are pressed as the keypad's tones (each tone at about
/// -8 dBm0): 100 ms on, 100 ms off, between half a second of silence before and after.
fn pcmu_with_tones(keys: &str) -> Vec<Vec<u8>> {
    let mut samples = vec![0i16; 4000];
    for key in keys.chars() {
        let (low, high) = key_frequencies(DtmfDigit::from_char(key).expect("key"));
        for _ in 0..800 {
            let t = samples.len() as f64 / 8000.0;
            let two_pi = 2.0 * std::f64::consts::PI;
            let s = 7000.0
                * ((two_pi * f64::from(low) * t).sin() + (two_pi * f64::from(high) * t).sin());
            samples.push(s as i16);
        }
        samples.extend([0; 800]);
    }
    samples.extend([0; 4000]);
    samples
        .chunks_exact(160)
        .enumerate()
        .map(|(i, frame)| {
            let mut payload = [0u8; 160];
            G711::Ulaw.encode(frame, &mut payload);
            let i = u32::try_from(i).expect("index");
            rtp(0, i == 0, i as u16, i * 160, &payload)
        })
        .collect()
}

/// sipp calls `demo` on a fresh world's edge with `scenario`, playing `packets` as `pcap_name`
/// from its working directory, and hangs up (`scripted` says what its script checked); the
/// call's events and its `call.dtmf` records, in order.
async fn dialled_digits(
    scenario: &str,
    pcap_name: &str,
    packets: &[Vec<u8>],
    scripted: &str,
) -> (Vec<StoredEvent>, Vec<StoredEvent>) {
    let world = World::builder().workspace("Digits").start().await;
    let pcap = pcap_every_20_ms(packets);
    let code = sipp_with_media(world.edge.sip_addr, "demo", scenario, &[(pcap_name, &pcap)]).await;
    let (call, events) = world.ended_call().await;
    assert_eq!(
        code, 0,
        "sipp's call went as scripted: {scripted}; {events:#?}"
    );
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    world.teardown().await;
    let pressed = events
        .iter()
        .filter(|e| e.kind == "call.dtmf")
        .cloned()
        .collect();
    (events, pressed)
}

/// The keys of `pressed`, in order.
fn keys(pressed: &[StoredEvent]) -> Vec<&str> {
    pressed
        .iter()
        .filter_map(|e| e.payload["digit"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_4733_digits_at_8000_on_an_opus_call_reach_the_call_record() {
    let (events, pressed) = dialled_digits(
        "uac_opus_rfc4733.xml",
        "opus_dtmf.pcap",
        &opus_with_events("42"),
        "Opus and telephone-event/8000 answered",
    )
    .await;
    let started = events
        .iter()
        .find(|e| e.kind == "call.started")
        .expect("started");
    assert_eq!(started.payload["codec"], "Opus");
    assert_eq!(keys(&pressed), ["4", "2"], "{events:#?}");
    for e in &pressed {
        assert_eq!(e.payload["via"], "rfc4733");
        // 800 units of the 8 kHz event clock, not of Opus's 48 kHz.
        assert_eq!(e.payload["duration_ms"], 100, "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_tones_in_a_pcmu_call_without_telephone_event_are_digits_via_inband() {
    let (events, pressed) = dialled_digits(
        "uac_inband_tones.xml",
        "tones.pcap",
        &pcmu_with_tones("7#3"),
        "PCMU answered, no telephone-event",
    )
    .await;
    assert_eq!(keys(&pressed), ["7", "#", "3"], "{events:#?}");
    for e in &pressed {
        assert_eq!(e.payload["via"], "inband");
        // 100 ms of tone, less a frame or two if the jitter buffer gave some up as late
        // (a lost G.711 frame is skipped, not heard as silence) on a busy machine.
        let held = e.payload["duration_ms"].as_u64().expect("duration");
        assert!((40..=115).contains(&held), "{e:?}");
    }
}

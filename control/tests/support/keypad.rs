//! A caller that presses keys the way a gateway does: each key both as an RFC 4733 event and
//! as its tones in the PCMU audio, between stretches of a 1 kHz tone; a pcap of that stream for
//! sipp's `play_pcap_audio`, and a tone detector to find keys in a recording afterwards.

use freya_edge::media::dtmf_tones::{key_frequencies, ToneDetector};
use freya_edge::media::g711::G711;
use freya_edge::rtp::dtmf::{DtmfDigit, DtmfEncoder};

use freya_control::store::{CallRecord, StoredEvent};

use super::caller::sipp_with_media;
use super::pcap::{pcap, rtp};
use super::world::World;

/// 20 ms of `freqs` summed, at sample `start` of the stream.
fn tone_frame(freqs: &[f64], start: usize) -> [i16; 160] {
    let mut frame = [0i16; 160];
    for (i, s) in frame.iter_mut().enumerate() {
        let t = (start + i) as f64 / 8000.0;
        let v: f64 = freqs
            .iter()
            .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
            .sum();
        *s = (7000.0 * v) as i16;
    }
    frame
}

/// The pcap of a caller pressing `keys` (100 ms each, 300 ms apart, after 500 ms of a 1 kHz
/// tone), as PCMU frames every 20 ms with each press's RFC 4733 events (payload type 101) 5 ms
/// after its frames: for `uac_pcmu_rfc4733_tones.xml`, as `pcmu_dtmf.pcap`.
pub fn pressing(keys: &str) -> Vec<u8> {
    pressing_between(keys, 25, 25)
}

/// As [`pressing`], with `lead` 20 ms frames of the 1 kHz tone before the first key and
/// `tail` after the last key's 300 ms.
pub fn pressing_between(keys: &str, lead: usize, tail: usize) -> Vec<u8> {
    let mut plan: Vec<(Vec<f64>, Option<DtmfDigit>)> = vec![(vec![1000.0], None); lead];
    for key in keys.chars() {
        let digit = DtmfDigit::from_char(key).expect("key");
        let (low, high) = key_frequencies(digit);
        plan.push((vec![f64::from(low), f64::from(high)], Some(digit)));
        plan.extend(vec![(vec![f64::from(low), f64::from(high)], None); 4]);
        plan.extend(vec![(vec![1000.0], None); 15]);
    }
    plan.extend(vec![(vec![1000.0], None); tail]);
    let mut packets = Vec::new();
    let mut sequence = 0u16;
    let mut pending = Vec::new();
    let mut events_sent = 0;
    for (frame, (freqs, press)) in plan.iter().enumerate() {
        let timestamp = u32::try_from(frame * 160).expect("timestamp");
        if let Some(digit) = press {
            pending.extend(DtmfEncoder::new(*digit, timestamp, 800, 160, 10));
        }
        let mut payload = [0u8; 160];
        G711::Ulaw.encode(&tone_frame(freqs, frame * 160), &mut payload);
        let micros = u32::try_from(frame).expect("frame") * 20_000;
        packets.push((micros, rtp(0, frame == 0, sequence, timestamp, &payload)));
        sequence = sequence.wrapping_add(1);
        if !pending.is_empty() {
            let event = pending.remove(0);
            let packet = rtp(101, event.marker, sequence, event.timestamp, &event.payload);
            packets.push((micros + 5_000, packet));
            sequence = sequence.wrapping_add(1);
            events_sent += 1;
        }
    }
    assert!(events_sent >= keys.len() * 5, "every press is sent");
    pcap(&packets)
}

/// sipp calls `world`'s number pressing `keys` (see [`pressing`]) and hangs up; the ended call
/// and its events, once sipp's call went as scripted.
pub async fn call_pressing(world: &World, keys: &str) -> (CallRecord, Vec<StoredEvent>) {
    let pcap = pressing(keys);
    let code = sipp_with_media(
        world.edge.sip_addr,
        &world.number,
        "uac_pcmu_rfc4733_tones.xml",
        &[("pcmu_dtmf.pcap", &pcap)],
    )
    .await;
    let (call, events) = world.ended_call().await;
    assert_eq!(code, 0, "sipp's call went as scripted; {events:#?}");
    (call, events)
}

/// The keys a tone detector hears in `samples` (8 kHz).
pub fn keys_heard(samples: &[i16]) -> String {
    let mut detector = ToneDetector::new();
    let mut keys = String::new();
    for frame in samples.chunks(160) {
        detector.push(frame);
        while let Some(tone) = detector.poll_digit() {
            keys.push(tone.digit.as_char());
        }
    }
    keys
}

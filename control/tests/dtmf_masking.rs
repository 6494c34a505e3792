//! Key presses kept out of a recorded call's record when the agent redacts card numbers: sipp
//! calls as a gateway that sends each key both ways — an RFC 4733 event and the keypad's tones
//! in its PCMU audio — between stretches of an ordinary 1 kHz tone. With `privacy.redact`
//! listing `card_number`, the recording downloaded through the API has the 1 kHz tone but no
//! key tone anywhere in the caller's channel (a tone detector run over it finds none), and the
//! `call.dtmf` records read `[digit]`. The same call to an agent that does not redact keeps
//! the key tones in the recording and the keys in the record, so the test can tell.

mod support;

use std::time::Duration;

use serde_json::{json, Value};

use freya_control::store::Role;
use freya_edge::media::dtmf_tones::{key_frequencies, ToneDetector};
use freya_edge::media::g711::G711;
use freya_edge::rtp::dtmf::{DtmfDigit, DtmfEncoder};
use support::caller::sipp_with_media;
use support::eventually;
use support::http::Api;
use support::pcap::pcap;
use support::world::World;

const KEYS: &str = "411";

/// One RTP packet: version 2, `pt` with the marker bit when `marker`, SSRC 0x5eed.
fn rtp(pt: u8, marker: bool, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&0x5eed_u32.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

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

/// The caller's stream: PCMU frames every 20 ms (a 1 kHz tone, or a key's tones while it is
/// pressed for 100 ms) and, 5 ms after each audio frame of a press and the frames after it,
/// the press's RFC 4733 event packets (payload type 101).
fn stream() -> Vec<(u32, Vec<u8>)> {
    let mut plan: Vec<(Vec<f64>, Option<DtmfDigit>)> = vec![(vec![1000.0], None); 25];
    for key in KEYS.chars() {
        let digit = DtmfDigit::from_char(key).expect("key");
        let (low, high) = key_frequencies(digit);
        plan.push((vec![f64::from(low), f64::from(high)], Some(digit)));
        plan.extend(vec![(vec![f64::from(low), f64::from(high)], None); 4]);
        plan.extend(vec![(vec![1000.0], None); 15]);
    }
    plan.extend(vec![(vec![1000.0], None); 25]);
    let mut events: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut packets = Vec::new();
    let mut sequence = 0u16;
    let mut pending = Vec::new();
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
            events.push((frame, event.payload.to_vec()));
        }
    }
    assert!(events.len() >= KEYS.len() * 5, "every press is sent");
    packets
}

/// Places the call, waits for its recording, and returns the `call.dtmf` digits and the
/// caller's channel of the recording as the API serves it.
async fn recorded_call(world: &World) -> (Vec<String>, Vec<i16>) {
    let pcap = pcap(&stream());
    let code = sipp_with_media(
        world.edge.sip_addr,
        &world.number,
        "uac_pcmu_rfc4733_tones.xml",
        &[("pcmu_dtmf.pcap", &pcap)],
    )
    .await;
    let (call, events) = world.ended_call().await;
    assert_eq!(code, 0, "sipp's call went as scripted; {events:#?}");
    let digits = events
        .iter()
        .filter(|e| e.kind == "call.dtmf")
        .filter_map(|e| e.payload["digit"].as_str().map(str::to_owned))
        .collect();
    let api = Api::of(&world.control);
    let key = world.key(Role::Viewer).await;
    let path = format!("/v1/calls/{}", call.id);
    let url = eventually(Duration::from_secs(60), "the recording", || async {
        let detail: Value = api.expect(200, "GET", &path, &key, None).await;
        detail["recording"]["url"].as_str().map(str::to_owned)
    })
    .await;
    let wav = api
        .http
        .get(format!("{}{url}", api.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&wav[..4], b"RIFF");
    let caller = wav[44..]
        .chunks_exact(4)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .collect();
    (digits, caller)
}

/// The keys a tone detector hears in `samples`.
fn keys_heard(samples: &[i16]) -> String {
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

async fn world(privacy: Value) -> World {
    World::builder()
        .workspace("Payments")
        .agent(json!({"record": true, "privacy": privacy}))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_redacting_card_numbers_records_silence_for_key_presses_and_masks_the_digits() {
    let masked = world(json!({"redact": ["card_number"]})).await;
    let (digits, caller) = recorded_call(&masked).await;
    assert_eq!(
        digits,
        vec!["[digit]"; KEYS.len()],
        "the keys are not on record"
    );
    let loud = caller.iter().filter(|s| s.unsigned_abs() > 3_000).count();
    assert!(
        loud > 4_000,
        "the caller's 1 kHz tone is recorded: {loud} loud samples of {}",
        caller.len()
    );
    assert_eq!(keys_heard(&caller), "", "no key tone in the recording");
    masked.teardown().await;

    // The same call to an agent that does not redact: the keys are there to find.
    let plain = world(json!({})).await;
    let (digits, caller) = recorded_call(&plain).await;
    assert_eq!(digits.concat(), KEYS);
    assert_eq!(
        keys_heard(&caller),
        KEYS,
        "the detector finds unmasked keys"
    );
    plain.teardown().await;
}

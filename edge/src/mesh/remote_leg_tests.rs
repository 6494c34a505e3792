//! A remote leg's playout in simulated time: losses concealed, G.711 decoded.

use std::time::Duration;

use super::*;
use crate::mesh::codec::LegKey;

fn header(sequence: u16) -> AudioHeader {
    AudioHeader {
        key: LegKey {
            call: uuid::Uuid::nil(),
            leg: 1,
        },
        kind: PayloadKind::L16,
        sequence,
        timestamp: u32::from(sequence) * 160,
    }
}

fn l16(level: i16) -> Vec<u8> {
    std::iter::repeat_n(level.to_le_bytes(), FRAME_SAMPLES)
        .flatten()
        .collect()
}

#[test]
fn a_lost_frame_is_concealed_by_a_fading_repeat() {
    let mut leg = RemoteLegAudio::new(JitterConfig::default()).expect("leg");
    let start = Instant::now();
    let tick = Duration::from_millis(20);
    // Frames 0..10 but 4, each arriving on its tick, played as the tick runs.
    let mut out = [0i16; FRAME_SAMPLES];
    let mut played = Vec::new();
    for n in 0..14u32 {
        let now = start + tick * n;
        if n < 10 && n != 4 {
            leg.push(now, &header(n as u16), &l16(8_000 + n as i16));
        }
        let what = leg.pop(now, &mut out);
        if what != RemotePlayout::Silent {
            played.push((what, out[0]));
        }
    }
    assert_eq!(played[0], (RemotePlayout::Frame, 8_000), "{played:?}");
    assert_eq!(played[3], (RemotePlayout::Frame, 8_003));
    assert_eq!(played[4], (RemotePlayout::Concealed, 8_003 >> 1));
    assert_eq!(played[5], (RemotePlayout::Frame, 8_005));
    assert_eq!(leg.stats().concealed, 1);
    assert_eq!(leg.stats().played, 9);
}

#[test]
fn g711_decodes_and_repeated_losses_fade_to_silence() {
    let mut leg = RemoteLegAudio::new(JitterConfig::default()).expect("leg");
    let start = Instant::now();
    let tick = Duration::from_millis(20);
    let mut ulaw = [0u8; FRAME_SAMPLES];
    g711::encode_ulaw(&[4_000; FRAME_SAMPLES], &mut ulaw);
    let mut h = header(0);
    h.kind = PayloadKind::Pcmu;
    let mut out = [0i16; FRAME_SAMPLES];
    let mut first = None;
    for n in 0..4u32 {
        h.sequence = n as u16;
        h.timestamp = n * 160;
        leg.push(start + tick * n, &h, &ulaw);
        if leg.pop(start + tick * n, &mut out) == RemotePlayout::Frame {
            first.get_or_insert(out[0]);
        }
    }
    let first = first.expect("a frame played");
    assert!((3_900..4_200).contains(&first), "{first}");
    let levels: Vec<i16> = (0..5)
        .map(|_| {
            leg.conceal(&mut out);
            out[0]
        })
        .collect();
    assert_eq!(levels, vec![first >> 1, first >> 2, first >> 3, 0, 0]);
}

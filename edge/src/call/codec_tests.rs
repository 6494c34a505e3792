//! The call codec: Opus through its resamplers keeps a tone, repairs loss with FEC or PLC, and
//! survives junk; G.711 silences a loss.

use super::*;

/// 20 ms frames of a `hz` tone at 8 kHz, amplitude 8000.
fn tone(hz: f64, frames: usize) -> Vec<[i16; FRAME_SAMPLES]> {
    (0..frames)
        .map(|f| {
            let mut frame = [0i16; FRAME_SAMPLES];
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (f * FRAME_SAMPLES + i) as f64 / 8000.0;
                *s = (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            }
            frame
        })
        .collect()
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

fn zero_crossings(samples: &[i16]) -> usize {
    samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count()
}

fn encode_all(codec: &mut CallCodec, frames: &[[i16; FRAME_SAMPLES]]) -> Vec<Vec<u8>> {
    let mut out = [0u8; MAX_PAYLOAD];
    frames
        .iter()
        .map(|f| {
            let n = codec.encode(f, &mut out);
            assert!(n > 0, "encoded");
            out[..n].to_vec()
        })
        .collect()
}

#[test]
fn opus_at_48_khz_carries_an_8_khz_tone_at_its_frequency_and_level() {
    let mut sender = CallCodec::new(Codec::Opus).expect("opus");
    let mut receiver = CallCodec::new(Codec::Opus).expect("opus");
    let packets = encode_all(&mut sender, &tone(440.0, 50));
    let mut heard = Vec::new();
    let mut frame = [0i16; FRAME_SAMPLES];
    for p in &packets {
        assert!(receiver.decode(p, &mut frame));
        heard.extend_from_slice(&frame);
    }
    // Skip the first 200 ms (codec and resampler warm-up), judge the next 600 ms.
    let steady = &heard[1600..6400];
    let level = rms(steady) / (8000.0 / 2f64.sqrt());
    assert!((0.7..1.3).contains(&level), "level ratio {level}");
    // 440 Hz for 0.6 s: 528 zero crossings.
    let crossings = zero_crossings(steady) as f64;
    assert!((crossings - 528.0).abs() < 12.0, "{crossings} crossings");
}

#[test]
fn a_lost_opus_frame_is_rebuilt_from_fec_when_the_next_packet_is_there_else_concealed() {
    let mut sender = CallCodec::new(Codec::Opus).expect("opus");
    let mut receiver = CallCodec::new(Codec::Opus).expect("opus");
    let packets = encode_all(&mut sender, &tone(300.0, 30));
    let mut frame = [0i16; FRAME_SAMPLES];
    for p in &packets[..20] {
        receiver.decode(p, &mut frame);
    }
    receiver.lost(Some(&packets[21]), &mut frame);
    assert!(rms(&frame) > 1000.0, "rebuilt audio, not silence");
    receiver.decode(&packets[21], &mut frame);
    receiver.lost(None, &mut frame);
    assert!(rms(&frame) > 500.0, "concealment continues the tone");
    let repair = receiver.repair();
    assert_eq!((repair.recovered, repair.concealed), (1, 1));
}

#[test]
fn junk_in_an_opus_packet_is_refused_and_concealed() {
    let mut receiver = CallCodec::new(Codec::Opus).expect("opus");
    let mut frame = [1i16; FRAME_SAMPLES];
    assert!(!receiver.decode(&[], &mut frame));
    assert!(!receiver.decode(&[0xFF; 3], &mut frame));
    assert_eq!(receiver.repair().refused, 2);
    assert_eq!(receiver.repair().concealed, 2);
}

#[test]
fn g711_round_trips_and_silences_a_loss() {
    let mut codec = CallCodec::new(Codec::Pcmu).expect("pcmu");
    let frames = tone(1000.0, 1);
    let packets = encode_all(&mut codec, &frames);
    assert_eq!(packets[0].len(), FRAME_SAMPLES);
    let mut frame = [0i16; FRAME_SAMPLES];
    assert!(codec.decode(&packets[0], &mut frame));
    assert!((rms(&frame) - rms(&frames[0])).abs() < 100.0);
    codec.lost(Some(&packets[0]), &mut frame);
    assert!(frame.iter().all(|&s| s == 0));
    assert_eq!(codec.repair().silenced, 1);
}

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

/// 20 ms frames of a voiced, speech-like sound at 8 kHz: a 140 Hz fundamental with nine
/// harmonics, its loudness swaying at 3 Hz like syllables. A steady sine will not do: the Opus
/// (SILK) encoder's voice activity detector takes it for background noise after a while, and
/// sends FEC only for frames it believes are speech.
fn voiced(frames: usize) -> Vec<[i16; FRAME_SAMPLES]> {
    use std::f64::consts::PI;
    (0..frames)
        .map(|f| {
            let mut frame = [0i16; FRAME_SAMPLES];
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (f * FRAME_SAMPLES + i) as f64 / 8000.0;
                let envelope = 0.6 + 0.4 * (2.0 * PI * 3.0 * t).sin();
                let wave: f64 = (1..=10)
                    .map(|k| (2.0 * PI * 140.0 * k as f64 * t).sin() / k as f64)
                    .sum();
                *s = (4000.0 * envelope * wave) as i16;
            }
            frame
        })
        .collect()
}

/// For a receiver that gets every packet but every 5th, each lost frame's audio next to what a
/// receiver that lost nothing heard at the same tick: `(level ratio, error ratio)`, the error
/// being the RMS of the difference over the RMS of the lossless frame. With `fec`, a lost frame
/// is rebuilt from the packet after it (which the jitter buffer holds); without, concealed.
fn lost_frames(fec: bool) -> Vec<(f64, f64)> {
    let frames = voiced(150);
    let mut sender = CallCodec::new(Codec::Opus).expect("opus");
    if let CallCodec::Opus(opus) = &mut sender {
        // What a far end does for a receiver that declared `useinbandfec=1` on a lossy path.
        opus.encoder.set_expected_loss(20).expect("loss");
    }
    let packets = encode_all(&mut sender, &frames);
    let mut lossless = CallCodec::new(Codec::Opus).expect("opus");
    let mut receiver = CallCodec::new(Codec::Opus).expect("opus");
    let (mut reference, mut frame) = ([0i16; FRAME_SAMPLES], [0i16; FRAME_SAMPLES]);
    let mut lost = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        assert!(lossless.decode(p, &mut reference));
        if i % 5 == 4 && i + 1 < packets.len() {
            let next = packets.get(i + 1).filter(|_| fec);
            receiver.lost(next.map(Vec::as_slice), &mut frame);
            // Past the codec's and resamplers' warm-up.
            if i >= 20 {
                let error: Vec<i16> = frame
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| a.saturating_sub(*b))
                    .collect();
                let level = rms(&reference);
                lost.push((rms(&frame) / level, rms(&error) / level));
            }
        } else {
            receiver.decode(p, &mut frame);
        }
    }
    lost
}

#[test]
fn with_every_fifth_opus_packet_dropped_fec_rebuilds_the_lost_frames_at_the_originals_level() {
    let recovered = lost_frames(true);
    let concealed = lost_frames(false);
    assert!(
        recovered.len() >= 20,
        "{} lost frames judged",
        recovered.len()
    );
    let mean = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        v.iter().map(pick).sum::<f64>() / v.len() as f64
    };
    let fec_level = mean(&recovered, |&(level, _)| level);
    let fec_error = mean(&recovered, |&(_, error)| error);
    let plc_error = mean(&concealed, |&(_, error)| error);
    let plc_level = mean(&concealed, |&(level, _)| level);
    println!(
        "every 5th packet lost, {} frames judged: FEC level {fec_level:.2} error {fec_error:.2}; \
         concealment level {plc_level:.2} error {plc_error:.2}",
        recovered.len()
    );
    // Measured: FEC level 0.97, error 0.48; concealment error 0.69 (libopus is deterministic).
    assert!(
        (0.7..1.3).contains(&fec_level),
        "FEC frames at {fec_level:.2} of the lossless level"
    );
    for &(level, _) in &recovered {
        assert!(level > 0.4, "a rebuilt frame near silence: {level:.2}");
    }
    assert!(
        fec_error < 0.85 * plc_error,
        "FEC (error {fec_error:.2}) is clearly closer to what was sent than concealment \
         (error {plc_error:.2})"
    );
    let (mut receiver, mut frame) = (CallCodec::new(Codec::Opus).expect("opus"), [0; 160]);
    receiver.lost(None, &mut frame);
    assert_eq!(receiver.repair().concealed, 1);
}

//! The in-band detector against synthetic audio: every key once, held keys, short gaps, and the
//! things that must not be digits (single tones, noise, a voice's harmonics, quiet or twisted
//! pairs), all through a μ-law round trip as a G.711 call would carry them.

use super::*;
use crate::media::g711::{decode_ulaw, encode_ulaw};
use rand::{Rng, SeedableRng};

const KEYS: &str = "0123456789*#ABCD";

/// -10 dBm0 per tone, as a fraction of full scale.
const LEVEL: f32 = 0.22;

fn ms(n: u32) -> usize {
    (n * SAMPLE_RATE / 1000) as usize
}

/// Appends `len` samples of two sines at `level` each (a key when `pair` is its frequencies).
fn tones(out: &mut Vec<f32>, pair: (f32, f32), levels: (f32, f32), len: usize) {
    let start = out.len();
    for n in 0..len {
        let t = (start + n) as f32 / SAMPLE_RATE as f32;
        let two_pi = 2.0 * std::f32::consts::PI;
        out.push(levels.0 * (two_pi * pair.0 * t).sin() + levels.1 * (two_pi * pair.1 * t).sin());
    }
}

fn key(out: &mut Vec<f32>, c: char, len: usize) {
    let pair = key_frequencies(DtmfDigit::from_char(c).unwrap());
    tones(out, pair, (LEVEL, LEVEL), len);
}

fn silence(out: &mut Vec<f32>, len: usize) {
    out.extend(std::iter::repeat_n(0.0, len));
}

/// Through μ-law and back, as the call's decoder would hand it over.
fn through_ulaw(signal: &[f32]) -> Vec<i16> {
    let linear: Vec<i16> = signal
        .iter()
        .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect();
    let mut coded = vec![0u8; linear.len()];
    encode_ulaw(&linear, &mut coded);
    let mut decoded = vec![0i16; linear.len()];
    decode_ulaw(&coded, &mut decoded);
    decoded
}

/// Everything the detector reports for `signal`, fed in 20 ms frames.
fn detect(signal: &[f32]) -> Vec<ToneDigit> {
    let mut detector = ToneDetector::new();
    let mut digits = Vec::new();
    for frame in through_ulaw(signal).chunks(160) {
        detector.push(frame);
        digits.extend(std::iter::from_fn(|| detector.poll_digit()));
    }
    digits
}

fn keys_of(digits: &[ToneDigit]) -> String {
    digits.iter().map(|d| d.digit.as_char()).collect()
}

#[test]
fn each_of_the_sixteen_keys_is_heard_once() {
    for c in KEYS.chars() {
        let mut signal = Vec::new();
        silence(&mut signal, ms(100));
        key(&mut signal, c, ms(100));
        silence(&mut signal, ms(100));
        let digits = detect(&signal);
        assert_eq!(keys_of(&digits), c.to_string(), "key {c}");
        let duration = digits[0].duration.as_millis();
        assert!((80..=115).contains(&duration), "key {c}: {duration} ms");
    }
}

#[test]
fn a_dialled_sequence_is_heard_in_order_whatever_the_alignment() {
    for offset in [0, 17, 51, 101] {
        let mut signal = Vec::new();
        silence(&mut signal, offset);
        for c in KEYS.chars() {
            key(&mut signal, c, ms(100));
            silence(&mut signal, ms(100));
        }
        assert_eq!(keys_of(&detect(&signal)), KEYS, "offset {offset}");
    }
}

#[test]
fn a_key_held_for_a_second_is_one_press() {
    let mut signal = Vec::new();
    key(&mut signal, '5', ms(1000));
    silence(&mut signal, ms(100));
    let digits = detect(&signal);
    assert_eq!(keys_of(&digits), "5");
    let held = digits[0].duration.as_millis();
    assert!((970..=1010).contains(&held), "{held} ms");
}

/// Asserts that the detector hears `keys` in `steps` (each a key, or `None` for silence, and
/// how many milliseconds it lasts) wherever the stream starts against its blocks.
fn assert_heard_at_every_offset(steps: &[(Option<char>, u32)], keys: &str) {
    for offset in 0..BLOCK_SAMPLES {
        let mut signal = Vec::new();
        silence(&mut signal, offset);
        for (pressed, millis) in steps {
            match pressed {
                Some(c) => key(&mut signal, *c, ms(*millis)),
                None => silence(&mut signal, ms(*millis)),
            }
        }
        assert_eq!(keys_of(&detect(&signal)), keys, "offset {offset}");
    }
}

#[test]
fn two_presses_fifty_milliseconds_apart_are_two_digits() {
    let steps = [(Some('8'), 100), (None, 50), (Some('8'), 100), (None, 60)];
    assert_heard_at_every_offset(&steps, "88");
}

#[test]
fn forty_milliseconds_of_tone_is_a_press_and_twenty_is_not() {
    let steps = [(Some('3'), 40), (None, 60), (Some('9'), 20), (None, 60)];
    assert_heard_at_every_offset(&steps, "3");
}

#[test]
fn a_lost_frame_in_the_middle_of_a_press_does_not_split_it() {
    // The media core skips a lost G.711 frame rather than feeding silence, so the detector
    // hears the tone resume with a jump in phase: one odd block at most.
    let mut signal = Vec::new();
    key(&mut signal, '1', ms(200));
    let cut = signal.split_off(ms(90));
    signal.extend_from_slice(&cut[ms(20)..]);
    silence(&mut signal, ms(100));
    assert_eq!(keys_of(&detect(&signal)), "1");
}

#[test]
fn single_tones_are_not_keys() {
    for f in ROWS.iter().chain(COLUMNS.iter()).chain([&1000.0, &440.0]) {
        let mut signal = Vec::new();
        tones(&mut signal, (*f, 0.0), (0.5, 0.0), ms(500));
        assert_eq!(keys_of(&detect(&signal)), "", "{f} Hz");
    }
    // Dial tone and ringback are two tones too, but not a key's.
    for pair in [(350.0, 440.0), (440.0, 480.0), (480.0, 620.0)] {
        let mut signal = Vec::new();
        tones(&mut signal, pair, (LEVEL, LEVEL), ms(2000));
        assert_eq!(keys_of(&detect(&signal)), "", "{pair:?}");
    }
}

#[test]
fn noise_is_not_a_key() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for level in [0.01f32, 0.1, 0.5] {
        let signal: Vec<f32> = (0..ms(5000))
            .map(|_| rng.gen_range(-level..level))
            .collect();
        assert_eq!(keys_of(&detect(&signal)), "", "noise at {level}");
    }
}

/// Vowel-like: a glottal pulse train's harmonics (pitch gliding 90–260 Hz, with vibrato)
/// shaped by formants that move between vowels — one of them sits on the '1' key's two
/// frequencies. `tilt` is how fast the source falls with the harmonic's number (a real voice
/// falls about 6 dB an octave, `tilt` 1; a bright, buzzy one less).
fn voice(tilt: f32, seconds: u32) -> Vec<f32> {
    let formants = [
        (700.0, 1220.0),
        (300.0, 2300.0),
        (500.0, 900.0),
        (650.0, 1700.0),
    ];
    let mut signal = Vec::new();
    let mut phase = 0.0f32;
    for i in 0..ms(1000 * seconds) {
        let t = i as f32 / SAMPLE_RATE as f32;
        let pitch = 90.0 + 170.0 * (0.5 + 0.5 * (t * 0.7).sin()) + 4.0 * (t * 30.0).sin();
        phase += 2.0 * std::f32::consts::PI * pitch / SAMPLE_RATE as f32;
        let (f1, f2) = formants[(i / ms(400)) % formants.len()];
        let mut s = 0.0;
        for h in 1..(3600.0 / pitch) as usize {
            let f = pitch * h as f32;
            let gain = 1.0 / (1.0 + ((f - f1) / 120.0).powi(2))
                + 0.6 / (1.0 + ((f - f2) / 150.0).powi(2))
                + 0.05;
            s += gain / (h as f32).powf(tilt) * (phase * h as f32).sin();
        }
        signal.push(0.08 * s);
    }
    signal
}

#[test]
fn a_voice_is_not_a_key() {
    // Its harmonics sweep through every key's frequencies, but never carry the sound alone.
    assert_eq!(keys_of(&detect(&voice(1.0, 8))), "");
    // Nor in a buzzy voice whose formants make two harmonics stand out at a key's frequencies:
    // the rest of its energy is what gives it away.
    assert_eq!(keys_of(&detect(&voice(0.0, 8))), "");
}

#[test]
fn a_key_under_speech_level_noise_is_still_heard() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut signal = Vec::new();
    silence(&mut signal, ms(100));
    key(&mut signal, '#', ms(120));
    silence(&mut signal, ms(100));
    // Noise 20 dB under each tone.
    for s in signal.iter_mut() {
        *s += rng.gen_range(-0.038f32..0.038);
    }
    assert_eq!(keys_of(&detect(&signal)), "#");
}

#[test]
fn quiet_or_twisted_pairs_are_refused_and_ordinary_twist_is_not() {
    let four = DtmfDigit::from_char('4').unwrap();
    let pair = key_frequencies(four);
    let heard = |levels: (f32, f32)| {
        let mut signal = Vec::new();
        tones(&mut signal, pair, levels, ms(100));
        silence(&mut signal, ms(100));
        keys_of(&detect(&signal))
    };
    let db = |d: f32| 10f32.powf(d / 20.0);
    // -30 dBm0 per tone is heard, -45 dBm0 is not.
    assert_eq!(heard((0.69 * db(-30.0), 0.69 * db(-30.0))), "4");
    assert_eq!(heard((0.69 * db(-45.0), 0.69 * db(-45.0))), "");
    // The column 3 dB above the row, or 6 dB below it, is a keypad's twist.
    assert_eq!(heard((LEVEL, LEVEL * db(3.0))), "4");
    assert_eq!(heard((LEVEL, LEVEL * db(-6.0))), "4");
    // 6 dB above, or 12 dB below, is not.
    assert_eq!(heard((LEVEL, LEVEL * db(6.0))), "");
    assert_eq!(heard((LEVEL, LEVEL * db(-12.0))), "");
}

#[test]
fn frequencies_a_keypad_may_drift_to_are_heard_and_far_ones_are_not() {
    let six = key_frequencies(DtmfDigit::from_char('6').unwrap());
    let heard = |scale: f32| {
        let mut signal = Vec::new();
        tones(
            &mut signal,
            (six.0 * scale, six.1 * scale),
            (LEVEL, LEVEL),
            ms(100),
        );
        silence(&mut signal, ms(100));
        keys_of(&detect(&signal))
    };
    assert_eq!(heard(1.015), "6");
    assert_eq!(heard(0.985), "6");
    assert_eq!(heard(1.06), "");
}

#[test]
fn how_the_audio_is_cut_into_frames_does_not_matter() {
    let mut signal = Vec::new();
    for c in "147*".chars() {
        key(&mut signal, c, ms(80));
        silence(&mut signal, ms(80));
    }
    let samples = through_ulaw(&signal);
    let mut detector = ToneDetector::new();
    let mut rest = samples.as_slice();
    let mut step = 1;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(step.min(rest.len()));
        detector.push(chunk);
        rest = tail;
        step = step % 300 + 37;
    }
    let digits: Vec<ToneDigit> = std::iter::from_fn(|| detector.poll_digit()).collect();
    assert_eq!(keys_of(&digits), "147*");
}

//! The recorder's WAV: its header after every flush, a repair after a crash, both directions by tick.

use super::*;
use std::io::Cursor;

/// A strict reader: the header must state the true lengths of what follows it.
fn read_wav(bytes: &[u8]) -> (u16, u32, Vec<i16>) {
    assert_eq!(&bytes[0..4], b"RIFF");
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    assert_eq!(riff as usize, bytes.len() - 8, "RIFF length");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([bytes[20], bytes[21]]), 1, "PCM");
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]);
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let byte_rate = u32::from_le_bytes(bytes[28..32].try_into().unwrap());
    assert_eq!(byte_rate, rate * u32::from(channels) * 2);
    assert_eq!(u16::from_le_bytes([bytes[34], bytes[35]]), 16);
    assert_eq!(&bytes[36..40], b"data");
    let data = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
    assert_eq!(data, bytes.len() - 44, "data length");
    let samples = bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (channels, rate, samples)
}

fn frame(value: i16) -> [i16; 160] {
    [value; 160]
}

fn recorder(layout: RecordingLayout) -> CallRecorder<WavFile<Cursor<Vec<u8>>>> {
    CallRecorder::new(
        WavFile::new(Cursor::new(Vec::new())),
        SampleRate::Hz8000,
        layout,
    )
    .unwrap()
}

#[test]
fn stereo_puts_the_caller_left_and_the_agent_right() {
    let mut rec = recorder(RecordingLayout::Stereo);
    for i in 0..120u64 {
        rec.push(Side::Caller, i, &frame(i as i16)).unwrap();
        rec.push(Side::Agent, i, &frame(-(i as i16))).unwrap();
    }
    let (wav, stats) = rec.finish().unwrap();
    let (channels, rate, samples) = read_wav(wav.get_ref().get_ref());
    assert_eq!((channels, rate), (2, 8_000));
    assert_eq!(samples.len(), 120 * 160 * 2);
    for (i, pair) in samples.chunks_exact(2).enumerate() {
        let tick = (i / 160) as i16;
        assert_eq!(pair, [tick, -tick], "sample frame {i}");
    }
    assert_eq!(stats.frames, 120);
    assert_eq!(
        (stats.caller_gaps, stats.agent_gaps, stats.dropped),
        (0, 0, 0)
    );
}

#[test]
fn mono_mixes_both_sides_with_saturation() {
    let mut rec = recorder(RecordingLayout::MixedMono);
    rec.push(Side::Caller, 0, &frame(1_000)).unwrap();
    rec.push(Side::Agent, 0, &frame(234)).unwrap();
    rec.push(Side::Caller, 1, &frame(30_000)).unwrap();
    rec.push(Side::Agent, 1, &frame(30_000)).unwrap();
    let (wav, _) = rec.finish().unwrap();
    let (channels, _, samples) = read_wav(wav.get_ref().get_ref());
    assert_eq!(channels, 1);
    assert_eq!(samples.len(), 320);
    assert!(samples[..160].iter().all(|&s| s == 1_234));
    assert!(samples[160..].iter().all(|&s| s == i16::MAX));
}

#[test]
fn sides_arriving_out_of_step_are_aligned_by_index() {
    let mut rec = recorder(RecordingLayout::Stereo);
    // The agent runs three ticks ahead of the caller, then the caller catches up.
    for i in 0..3u64 {
        rec.push(Side::Agent, i, &frame(100 + i as i16)).unwrap();
    }
    for i in 0..10u64 {
        rec.push(Side::Caller, i, &frame(i as i16)).unwrap();
        if i + 3 < 10 {
            rec.push(Side::Agent, i + 3, &frame(100 + i as i16 + 3))
                .unwrap();
        }
    }
    let (wav, stats) = rec.finish().unwrap();
    let (_, _, samples) = read_wav(wav.get_ref().get_ref());
    for tick in 0..10usize {
        let pair = &samples[tick * 320..tick * 320 + 2];
        assert_eq!(pair, [tick as i16, 100 + tick as i16], "tick {tick}");
    }
    assert_eq!((stats.caller_gaps, stats.agent_gaps), (0, 0));
}

#[test]
fn a_missing_side_becomes_silence_and_late_frames_are_dropped() {
    let mut rec = recorder(RecordingLayout::Stereo);
    // The caller's jitter buffer was refilling: no caller frames for ticks 0..20.
    for i in 0..20u64 {
        rec.push(Side::Agent, i, &frame(7)).unwrap();
    }
    // Tick 0 was written as silence on the left once the agent was a window ahead.
    rec.push(Side::Caller, 0, &frame(5)).unwrap();
    rec.push(Side::Agent, 19, &frame(7)).unwrap();
    let (wav, stats) = rec.finish().unwrap();
    let (_, _, samples) = read_wav(wav.get_ref().get_ref());
    assert_eq!(samples.len(), 20 * 320);
    assert!(samples.chunks_exact(2).all(|p| p == [0, 7]));
    assert_eq!(stats.caller_gaps, 20);
    assert_eq!(stats.dropped, 2);
}

#[test]
fn a_jump_in_index_keeps_time_with_silence() {
    let mut rec = recorder(RecordingLayout::Stereo);
    rec.push(Side::Caller, 0, &frame(1)).unwrap();
    rec.push(Side::Agent, 0, &frame(1)).unwrap();
    rec.push(Side::Caller, 100, &frame(2)).unwrap();
    rec.push(Side::Agent, 100, &frame(2)).unwrap();
    let (wav, stats) = rec.finish().unwrap();
    let (_, _, samples) = read_wav(wav.get_ref().get_ref());
    assert_eq!(samples.len(), 101 * 320);
    assert_eq!(samples[100 * 320], 2);
    assert_eq!(stats.frames, 101);
}

#[test]
fn the_header_is_valid_after_every_flush_and_repair_covers_the_rest() {
    let mut rec = recorder(RecordingLayout::Stereo);
    for i in 0..(FLUSH_FRAMES as u64 * 2 + 7) {
        rec.push(Side::Caller, i, &frame(3)).unwrap();
        rec.push(Side::Agent, i, &frame(4)).unwrap();
    }
    // The process dies here: what is on "disk" is a valid WAV of the first two seconds.
    let on_disk = rec.writer.get_ref().get_ref().clone();
    let (_, _, samples) = read_wav(&on_disk);
    assert_eq!(samples.len(), FLUSH_FRAMES * 2 * 320);

    // A crash between a data write and its header rewrite: more data than the header says.
    let mut torn = Cursor::new(on_disk);
    torn.seek(SeekFrom::End(0)).unwrap();
    torn.write_all(&[9u8; 3 * 640 + 3]).unwrap();
    let data = repair(&mut torn).unwrap();
    assert_eq!(data as usize, (FLUSH_FRAMES * 2 + 3) * 640);
    let bytes = torn.into_inner();
    let (_, _, repaired) = read_wav(&bytes[..44 + data as usize]);
    assert_eq!(repaired.len(), (FLUSH_FRAMES * 2 + 3) * 320);
    // `repair` touches only files that start with the header this recorder writes.
    assert!(matches!(
        repair(&mut Cursor::new(b"RIFF....WAVEjunk".to_vec())),
        Err(RecordingError::NotARecording(_))
    ));
}

#[test]
fn a_file_on_disk_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let file = std::fs::File::create(&path).unwrap();
    let mut rec = CallRecorder::new(
        WavFile::new(file),
        SampleRate::Hz8000,
        RecordingLayout::Stereo,
    )
    .unwrap();
    for i in 0..75u64 {
        let tone: Vec<i16> = (0..160).map(|n| ((n + i as usize) % 50) as i16).collect();
        rec.push(Side::Caller, i, &tone).unwrap();
        rec.push(Side::Agent, i, &frame(0)).unwrap();
    }
    rec.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (channels, rate, samples) = read_wav(&bytes);
    assert_eq!((channels, rate, samples.len()), (2, 8_000, 75 * 320));
    // Our own speech-stack reader agrees on the format.
    let audio = crate::speech::wav::decode_wav(&bytes).unwrap();
    assert_eq!((audio.sample_rate, audio.channels), (8_000, 2));
    assert_eq!(audio.duration(), std::time::Duration::from_millis(1_500));
}

#[test]
fn a_wrong_frame_length_is_an_error() {
    let mut rec = recorder(RecordingLayout::Stereo);
    assert!(matches!(
        rec.push(Side::Caller, 0, &[0; 320]),
        Err(RecordingError::WrongFrameLength {
            expected: 160,
            actual: 320,
            ..
        })
    ));
}

use std::time::{Duration, Instant};

use super::*;

/// Waits (bounded, generously) for the writer thread to finish the only recording.
fn finished_recording(outbox: &RecordingOutbox) -> RecordingManifest {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = outbox.pending().expect("pending");
        if let Some(m) = pending.into_iter().next() {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the recording was never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn both_directions_reach_the_file_aligned_by_tick() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    let mut recording = CallRecording::start(&outbox, "abc@host", "ws-1").expect("start");
    let ticks = BATCH_TICKS as u64 * 2 + 13;
    for tick in 0..ticks {
        let sent = [tick as i16; FRAME_SAMPLES];
        let heard = [-(tick as i16); FRAME_SAMPLES];
        // Every fifth tick the caller's packet was lost.
        let received = (tick % 5 != 0).then_some(&heard);
        recording.on_tick(&sent, received);
    }
    recording.finish();
    let manifest = finished_recording(&outbox);
    assert_eq!(
        (manifest.call_id.as_str(), manifest.workspace_id.as_str()),
        ("abc@host", "ws-1")
    );
    let finished = manifest.finished.expect("finished");
    assert_eq!(finished.duration_ms, ticks * 20);
    let bytes = std::fs::read(outbox.wav_path(&manifest.recording_id)).expect("read");
    assert_eq!(finished.bytes, bytes.len() as u64);
    let audio = crate::speech::wav::decode_wav(&bytes).expect("valid WAV");
    assert_eq!((audio.sample_rate, audio.channels), (8_000, 2));
    let samples: Vec<i16> = bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    for tick in 0..ticks as usize {
        let at = tick * FRAME_SAMPLES * 2;
        let caller = if tick % 5 == 0 { 0 } else { -(tick as i16) };
        assert_eq!(&samples[at..at + 2], [caller, tick as i16], "tick {tick}");
    }
}

#[test]
fn a_call_without_a_single_tick_still_leaves_a_valid_empty_recording() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    CallRecording::start(&outbox, "c", "w")
        .expect("start")
        .finish();
    let manifest = finished_recording(&outbox);
    let finished = manifest.finished.expect("finished");
    assert_eq!((finished.bytes, finished.duration_ms), (44, 0));
}

#[cfg(unix)]
#[test]
fn a_recording_and_its_manifest_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("recordings");
    let outbox = RecordingOutbox::open(&dir).expect("open");
    let mut recording = CallRecording::start(&outbox, "abc@host", "ws-1").expect("start");
    recording.on_tick(&[1; FRAME_SAMPLES], None);
    recording.finish();
    let manifest = finished_recording(&outbox);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&outbox.wav_path(&manifest.recording_id)), 0o600);
    assert_eq!(
        mode(&dir.join(format!("{}.json", manifest.recording_id))),
        0o600
    );
}

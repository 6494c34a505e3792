use std::time::{Duration, Instant};

use super::*;
use freya_shared::recording_spool::{RecordingSecretKey, SpoolReader};

/// The control plane's private recording key, in these tests.
fn control_key() -> RecordingSecretKey {
    RecordingSecretKey::from_bytes([3; 32])
}

/// The WAV a finished spool holds, opened as the control plane does.
fn opened(bytes: &[u8], recording_id: &str) -> Vec<u8> {
    let mut reader = SpoolReader::new(vec![control_key()], recording_id, bytes.len() as u64, false)
        .expect("a spool");
    let mut wav = Vec::new();
    reader.push(bytes, &mut wav).expect("opens");
    reader.finish().expect("whole");
    wav
}

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
    let mut recording =
        CallRecording::start(&outbox, "abc@host", "ws-1", control_key().public()).expect("start");
    let ticks = BATCH_TICKS as u64 * 2 + 13;
    for tick in 0..ticks {
        let sent = [tick as i16; FRAME_SAMPLES];
        let heard = [-(tick as i16); FRAME_SAMPLES];
        // Every fifth tick the caller's packet was lost.
        let received = (tick % 5 != 0).then_some(&heard);
        recording.on_tick(0, &sent, received);
    }
    recording.finish();
    let manifest = finished_recording(&outbox);
    assert_eq!(
        (manifest.call_id.as_str(), manifest.workspace_id.as_str()),
        ("abc@host", "ws-1")
    );
    let finished = manifest.finished.expect("finished");
    assert_eq!(finished.duration_ms, ticks * 20);
    let path = outbox.audio_path(&manifest.recording_id, &manifest.format);
    let spool = std::fs::read(&path).expect("read");
    assert_eq!(finished.bytes, spool.len() as u64);
    assert!(!finished.interrupted);
    // On the disk: no WAV header and none of the audio (tick 100's agent frame, 320 bytes).
    assert_ne!(&spool[..4], b"RIFF");
    let frame: Vec<u8> = [100i16; FRAME_SAMPLES]
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    assert!(!spool.windows(8).any(|w| w == &frame[..8]));
    // The control plane opens it: the recorder's header (lengths still empty) and the PCM.
    let bytes = opened(&spool, &manifest.recording_id);
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(bytes.len() as u64, 44 + ticks * FRAME_SAMPLES as u64 * 4);
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
    CallRecording::start(&outbox, "c", "w", control_key().public())
        .expect("start")
        .finish();
    let manifest = finished_recording(&outbox);
    let finished = manifest.finished.expect("finished");
    assert_eq!(finished.duration_ms, 0);
    let spool =
        std::fs::read(outbox.audio_path(&manifest.recording_id, &manifest.format)).expect("read");
    assert_eq!(opened(&spool, &manifest.recording_id).len(), 44);
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
    let mut recording =
        CallRecording::start(&outbox, "abc@host", "ws-1", control_key().public()).expect("start");
    recording.on_tick(0, &[1; FRAME_SAMPLES], None);
    recording.finish();
    let manifest = finished_recording(&outbox);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        mode(&outbox.audio_path(&manifest.recording_id, &manifest.format)),
        0o600
    );
    assert_eq!(
        mode(&dir.join(format!("{}.json", manifest.recording_id))),
        0o600
    );
}

#[test]
fn a_stall_the_edge_skipped_is_silence_in_the_recording_which_keeps_the_calls_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    let mut recording =
        CallRecording::start(&outbox, "stall@host", "ws-1", control_key().public()).expect("start");
    // 30 ticks, a stall of 70 skipped ticks, 20 more; then a pause longer than the cap.
    for tick in 0..50u64 {
        let gap = if tick == 30 { 70 } else { 0 };
        recording.on_tick(gap, &[7; FRAME_SAMPLES], Some(&[9; FRAME_SAMPLES]));
    }
    recording.on_tick(MAX_GAP_TICKS + 500, &[7; FRAME_SAMPLES], None);
    recording.finish();
    let manifest = finished_recording(&outbox);
    let ticks = 50 + 70 + MAX_GAP_TICKS + 1;
    assert_eq!(manifest.finished.expect("finished").duration_ms, ticks * 20);
    let path = outbox.audio_path(&manifest.recording_id, &manifest.format);
    let bytes = opened(&std::fs::read(&path).expect("read"), &manifest.recording_id);
    let sample = |tick: u64, channel: u64| {
        let at = 44 + (tick * FRAME_SAMPLES as u64 * 2 + channel) as usize * 2;
        i16::from_le_bytes([bytes[at], bytes[at + 1]])
    };
    assert_eq!((sample(29, 0), sample(29, 1)), (9, 7), "before the stall");
    assert_eq!(
        (sample(30, 0), sample(99, 1)),
        (0, 0),
        "the stall is silence"
    );
    assert_eq!(
        (sample(100, 0), sample(100, 1)),
        (9, 7),
        "after it, in time"
    );
}

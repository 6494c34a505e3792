use super::*;
use crate::media::frame::SampleRate;
use crate::media::recording::{CallRecorder, RecordingLayout, Side, WavFile};
use freya_shared::recording_spool::{RecordingSecretKey, SpoolReader, SPOOL_CHUNK};

fn manifest(id: &str) -> RecordingManifest {
    RecordingManifest {
        recording_id: id.to_owned(),
        call_id: "call-1@example".into(),
        workspace_id: "ws".into(),
        format: WAV.into(),
        sample_rate: 8_000,
        channels: 2,
        finished: None,
    }
}

#[test]
fn a_spool_left_unfinished_by_a_crash_is_cut_to_whole_chunks_and_queued_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    let key = RecordingSecretKey::from_bytes([4; 32]);
    let id = freya_shared::ids::new_id();
    let mut sealed = manifest(&id);
    sealed.format = SEALED_WAV.into();
    outbox.save_manifest(&sealed).expect("manifest");
    let path = outbox.audio_path(&id, SEALED_WAV);
    let spool = spool::SealedSpool::create(&path, &key.public(), &id).expect("spool");
    let mut recorder =
        CallRecorder::new(spool, SampleRate::Hz8000, RecordingLayout::Stereo).expect("recorder");
    for tick in 0..120u64 {
        recorder.push(Side::Caller, tick, &[5; 160]).expect("push");
        recorder.push(Side::Agent, tick, &[-5; 160]).expect("push");
    }
    // The process dies: the spool is never finished, and a torn write trails its chunks.
    drop(recorder);
    {
        let mut f = OpenOptions::new().append(true).open(&path).expect("append");
        f.write_all(&[1, 2, 3]).expect("torn write");
    }
    let reopened = RecordingOutbox::open(dir.path()).expect("reopen");
    let pending = reopened.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    let finished = pending[0].finished.clone().expect("finished");
    assert!(finished.interrupted);
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(finished.bytes, bytes.len() as u64);
    assert_eq!(finished.sha256, hex::encode(Sha256::digest(&bytes)));
    // Two seconds were flushed (64,044 bytes with the header): three whole chunks are kept.
    let kept = 3 * SPOOL_CHUNK as u64;
    assert_eq!(finished.duration_ms, (kept - HEADER_LEN) / 32);
    let mut reader = SpoolReader::new(vec![key], &id, bytes.len() as u64, true).expect("a spool");
    let mut wav = Vec::new();
    reader.push(&bytes, &mut wav).expect("opens");
    reader.finish().expect("whole");
    assert_eq!(wav.len() as u64, kept);
    assert!(wav[44..].chunks_exact(4).all(|f| f == [5, 0, 0xFB, 0xFF]));
}

#[test]
fn a_recording_left_unfinished_by_a_crash_is_repaired_and_queued_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    let id = freya_shared::ids::new_id();
    outbox.save_manifest(&manifest(&id)).expect("manifest");
    let file = std::fs::File::create(outbox.audio_path(&id, WAV)).expect("wav");
    let mut recorder = CallRecorder::new(
        WavFile::new(file),
        SampleRate::Hz8000,
        RecordingLayout::Stereo,
    )
    .expect("recorder");
    for tick in 0..120u64 {
        recorder.push(Side::Caller, tick, &[5; 160]).expect("push");
        recorder.push(Side::Agent, tick, &[-5; 160]).expect("push");
    }
    // The process dies: the recorder is never finished, and a torn write trails the data.
    drop(recorder);
    {
        let mut f = OpenOptions::new()
            .append(true)
            .open(outbox.audio_path(&id, WAV))
            .expect("append");
        f.write_all(&[1, 2, 3]).expect("torn write");
    }
    assert!(
        outbox.pending().expect("pending").is_empty(),
        "not finished yet"
    );

    let reopened = RecordingOutbox::open(dir.path()).expect("reopen");
    let pending = reopened.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    let finished = pending[0].finished.clone().expect("finished");
    // Two whole flushes (one second each) reached the disk, plus the torn bytes.
    assert_eq!(finished.duration_ms, 2_000);
    let bytes = std::fs::read(reopened.audio_path(&id, WAV)).expect("read");
    assert_eq!(finished.bytes, bytes.len() as u64);
    assert_eq!(finished.sha256, hex::encode(Sha256::digest(&bytes)));
    let audio = crate::speech::wav::decode_wav(&bytes).expect("a valid WAV");
    assert_eq!(audio.duration(), std::time::Duration::from_secs(2));
}

#[test]
fn a_manifest_whose_audio_is_gone_is_dropped_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    let id = freya_shared::ids::new_id();
    outbox.save_manifest(&manifest(&id)).expect("manifest");
    let reopened = RecordingOutbox::open(dir.path()).expect("reopen");
    assert!(reopened.manifests().expect("manifests").is_empty());
}

#[test]
fn removed_recordings_are_gone_and_rejected_ones_kept_aside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = RecordingOutbox::open(dir.path()).expect("open");
    let (a, b) = (freya_shared::ids::new_id(), freya_shared::ids::new_id());
    for id in [&a, &b] {
        std::fs::write(outbox.audio_path(id, WAV), b"RIFF").expect("wav");
        outbox.save_manifest(&manifest(id)).expect("manifest");
    }
    outbox.remove(&a).expect("remove");
    let aside = outbox.reject(&b).expect("reject");
    assert!(outbox.manifests().expect("manifests").is_empty());
    assert!(!outbox.audio_path(&a, WAV).exists() && !outbox.audio_path(&b, WAV).exists());
    assert!(aside.join(format!("{b}.wav")).exists());
    assert!(aside.join(format!("{b}.json")).exists());
}

#[cfg(unix)]
#[test]
fn recordings_left_readable_by_others_are_corrected_at_open() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let loosen = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("left-behind.wav");
    std::fs::write(&wav, b"RIFF").expect("wav");
    loosen(&wav, 0o644);
    loosen(dir.path(), 0o755);
    RecordingOutbox::open(dir.path()).expect("open");
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&wav), 0o600);
}

//! Recording uploads, on SQLite and PostgreSQL: what an edge sends over gRPC is checked
//! before it is stored (an unknown call, another workspace's call, a path escape, a wrong
//! digest, a short or long body each refused with its own status, nothing noted and no partial
//! file left), a repeated upload changes nothing, a second recording is refused, and what is
//! stored is sealed at rest, served whole and by range, and a file altered on disk is a clear
//! error while a plaintext WAV from an earlier version still downloads. A spool sealed to the
//! recording key is opened on arrival and stored as a playable WAV; one with a flipped byte, cut
//! short, with reordered chunks or sealed to another key is refused, nothing noted or kept, and
//! one error line names the recording, its call and the reason. `freya secrets
//! rotate-recording-key`, run as the binary, makes a new key: a spool sealed to the old one
//! still opens, and a new one sealed to the new key opens too.

use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::logs::CapturedLogs;
use crate::support::on_both_engines;
use crate::support::recorded::{get_bytes, header, recorded_world};
use crate::support::{local_snapshot, Backend, SECRET};
use freya_control::config::ControlConfig;
use freya_control::server::ControlPlane;
use freya_proto::v1::{recording_chunk::Part, RecordingChunk, RecordingHeader};
use freya_shared::recording_spool::{
    RecordingPublicKey, RecordingSecretKey, SpoolSealer, SEALED_CHUNK, SEALED_WAV, SPOOL_CHUNK,
    SPOOL_HEADER_LEN,
};

const VIEWER: usize = 3;

/// Uploads `wav` for `call_id` straight over gRPC, as an edge would, with `header` adjusted.
async fn upload(
    control: &ControlPlane,
    call_id: &str,
    workspace_id: &str,
    wav: &[u8],
    adjust: impl FnOnce(&mut RecordingHeader),
) -> Result<u64, tonic::Status> {
    let client = freya_edge::control_link::client(
        &format!("http://{}", control.grpc_addr),
        SECRET,
        "edge-test",
        Duration::from_secs(2),
    )
    .expect("client");
    let mut header = RecordingHeader {
        recording_id: freya_shared::ids::new_id(),
        call_id: call_id.into(),
        workspace_id: workspace_id.into(),
        format: "wav".into(),
        bytes: wav.len() as u64,
        duration_ms: 0,
        sha256: hex::encode(Sha256::digest(wav)),
        interrupted: false,
    };
    adjust(&mut header);
    let mut messages = vec![RecordingChunk {
        part: Some(Part::Header(header)),
    }];
    messages.extend(wav.chunks(10).map(|c| RecordingChunk {
        part: Some(Part::Data(c.to_vec())),
    }));
    let mut client = client;
    client
        .upload_recording(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner().bytes)
}

async fn uploads_are_checked_before_they_are_stored(backend: Backend) {
    let w = recorded_world(backend).await;
    let call_id = w.outbound_call("edge-test", "").await;
    let wav: Vec<u8> = [b"RIFF".as_slice(), &[7u8; 96]].concat();
    let ws = w.scope.workspace_id.clone();
    let code = |r: Result<u64, tonic::Status>| r.err().map(|s| s.code());

    let unknown = upload(&w.control, "no-such-call", &ws, &wav, |_| {}).await;
    assert_eq!(code(unknown), Some(tonic::Code::FailedPrecondition));
    let (other_ws, _) = workspace_with_keys(&w.control, "Other").await;
    let foreign = upload(&w.control, &call_id, &other_ws, &wav, |_| {}).await;
    assert_eq!(code(foreign), Some(tonic::Code::PermissionDenied));
    let escape = upload(&w.control, &call_id, "../../etc", &wav, |_| {}).await;
    assert_eq!(code(escape), Some(tonic::Code::InvalidArgument));
    let corrupt = upload(&w.control, &call_id, &ws, &wav, |h| {
        h.sha256 = "0".repeat(64)
    })
    .await;
    assert_eq!(code(corrupt), Some(tonic::Code::DataLoss));
    let short = upload(&w.control, &call_id, &ws, &wav, |h| h.bytes += 1).await;
    assert_eq!(code(short), Some(tonic::Code::DataLoss));
    let long = upload(&w.control, &call_id, &ws, &wav, |h| h.bytes -= 1).await;
    assert_eq!(code(long), Some(tonic::Code::InvalidArgument));
    let scope = w.scope.clone();
    assert_eq!(
        w.control
            .store
            .call_recording(&scope, &call_id)
            .await
            .expect("call"),
        None,
        "nothing refused was noted on the call"
    );
    let folder = w.recordings.path().join(&ws);
    let leftovers = std::fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "no partial file is left behind");

    // A good upload is stored; sending it again (a lost acknowledgement) changes nothing, and a
    // second, different recording for the same call is refused.
    let recording_id = freya_shared::ids::new_id();
    let id = recording_id.clone();
    let stored = upload(&w.control, &call_id, &ws, &wav, |h| h.recording_id = id).await;
    assert_eq!(stored.expect("stored"), wav.len() as u64);
    let id = recording_id.clone();
    let again = upload(&w.control, &call_id, &ws, &wav, |h| h.recording_id = id).await;
    assert_eq!(again.expect("stored again"), wav.len() as u64);
    let other = upload(&w.control, &call_id, &ws, &wav, |_| {}).await;
    assert_eq!(code(other), Some(tonic::Code::AlreadyExists));
    // Sealed at rest: no WAV header and none of the audio on disk; the API gives the audio.
    let path = folder.join(format!("{recording_id}.wav"));
    let on_disk = std::fs::read(&path).expect("file");
    assert_ne!(&on_disk[..4], b"RIFF", "no WAV header on disk");
    assert!(
        !on_disk.windows(8).any(|w| w == [7u8; 8]),
        "none of the audio is on disk in the clear"
    );
    let api = Api::of(&w.control);
    let url = format!("/v1/calls/{call_id}/recording");
    let viewer = &w.keys[VIEWER];
    let (status, headers, body) = get_bytes(&api, &url, viewer, None).await;
    assert_eq!((status, body), (StatusCode::OK, wav.clone()));
    assert_eq!(header(&headers, "content-type"), "audio/wav");
    let (status, headers, part) = get_bytes(&api, &url, viewer, Some("bytes=2-9")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&headers, "content-range"), "bytes 2-9/100");
    assert_eq!(part, wav[2..10]);
    let (status, headers, _) = get_bytes(&api, &url, viewer, Some("bytes=100-")).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&headers, "content-range"), "bytes */100");

    // One bit flipped on disk: a clear error, never audio.
    let mut tampered = on_disk.clone();
    let at = tampered.len() - 30;
    tampered[at] ^= 0x01;
    std::fs::write(&path, &tampered).expect("tamper");
    let (status, _, body) = get_bytes(&api, &url, viewer, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("a problem document");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("integrity check")),
        "{problem}"
    );
    // A plaintext WAV left by an earlier version is still served.
    std::fs::write(&path, &wav).expect("legacy file");
    let (status, _, body) = get_bytes(&api, &url, viewer, None).await;
    assert_eq!((status, body), (StatusCode::OK, wav));
    w.control.stop().await;
    w.db.cleanup().await;
}

/// A canonical 16-bit stereo 8 kHz WAV header with empty lengths, as the edge's recorder
/// writes it first, followed by `pcm`.
fn unfinished_wav(pcm: &[u8]) -> Vec<u8> {
    let mut wav = Vec::with_capacity(44 + pcm.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&36u32.to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&8_000u32.to_le_bytes());
    wav.extend_from_slice(&32_000u32.to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&0u32.to_le_bytes());
    wav.extend_from_slice(pcm);
    wav
}

/// `wav` sealed as an edge seals its spool for `recording_id`, to `key`.
fn sealed_spool(key: &RecordingPublicKey, recording_id: &str, wav: &[u8]) -> Vec<u8> {
    let (mut sealer, mut spool) =
        SpoolSealer::new(key, recording_id, rand::random(), rand::random()).expect("sealer");
    sealer.push(wav, &mut spool).expect("push");
    sealer.finish(&mut spool).expect("finish");
    spool
}

/// Runs `freya secrets rotate-recording-key` against `config`'s database, as an operator would
/// (a configuration file with the database and the secrets key), and reads the new public key
/// from what it prints.
async fn rotate_recording_key_by_command(config: &ControlConfig) -> RecordingPublicKey {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("control.toml");
    let text = format!(
        "[database]\nurl = \"{}\"\n[edges]\nshared_secret = \"{SECRET}\"\n[auth]\njwt_secret = \"{}\"\nencryption_key = \"{}\"\n",
        config.database.url, config.auth.jwt_secret, config.auth.encryption_key
    );
    std::fs::write(&path, text).expect("config written");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["secrets", "rotate-recording-key", "--config"])
        .arg(&path)
        .env_remove("FREYA_DATABASE_URL")
        .output()
        .await
        .expect("freya runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = stdout
        .split_whitespace()
        .skip_while(|w| *w != "key")
        .nth(1)
        .unwrap_or_else(|| panic!("the new key is printed: {stdout}"));
    RecordingPublicKey::from_hex(hex).unwrap_or_else(|| panic!("a public key: {hex}"))
}

async fn sealed_spools_open_on_arrival_and_altered_ones_are_refused(backend: Backend) {
    let logs = CapturedLogs::install(tracing::Level::INFO);
    let w = recorded_world(backend).await;
    let call_id = w.outbound_call("edge-test", "").await;
    let ws = w.scope.workspace_id.clone();
    let key = w
        .control
        .store
        .current_recording_key()
        .await
        .expect("store")
        .expect("the control plane made its recording key at start");
    // Three and a half chunks of audio with a recognisable run in it.
    let pcm: Vec<u8> = (0..3 * SPOOL_CHUNK + SPOOL_CHUNK / 2)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let wav = unfinished_wav(&pcm);
    let recording_id = freya_shared::ids::new_id();
    let spool = sealed_spool(&key, &recording_id, &wav);
    assert!(
        !spool.windows(64).any(|w| w == &pcm[20_000..20_064]),
        "the spool holds none of the audio"
    );
    let sealed = |h: &mut RecordingHeader, id: &str| {
        h.recording_id = id.to_owned();
        h.format = SEALED_WAV.into();
    };
    let code = |r: Result<u64, tonic::Status>| r.err().map(|s| (s.code(), s.message().to_owned()));

    let mut flipped = spool.clone();
    flipped[SPOOL_HEADER_LEN + SEALED_CHUNK + 100] ^= 0x01;
    let mut reordered = spool.clone();
    let (a, b) = (SPOOL_HEADER_LEN, SPOOL_HEADER_LEN + SEALED_CHUNK);
    reordered[a..b].copy_from_slice(&spool[b..b + SEALED_CHUNK]);
    reordered[b..b + SEALED_CHUNK].copy_from_slice(&spool[a..b]);
    let cut = spool[..SPOOL_HEADER_LEN + 3 * SEALED_CHUNK].to_vec();
    let stranger = RecordingSecretKey::from_bytes(rand::random()).public();
    let foreign = sealed_spool(&stranger, &recording_id, &wav);
    let other_recording = sealed_spool(&key, &freya_shared::ids::new_id(), &wav);
    for (what, bytes, expected, says) in [
        (
            "a flipped byte",
            &flipped,
            tonic::Code::InvalidArgument,
            "integrity check at chunk 1",
        ),
        (
            "reordered chunks",
            &reordered,
            tonic::Code::InvalidArgument,
            "integrity check at chunk 0",
        ),
        (
            "a spool cut short",
            &cut,
            tonic::Code::InvalidArgument,
            "cut short",
        ),
        (
            "another key",
            &foreign,
            tonic::Code::NotFound,
            "does not hold",
        ),
        (
            "another recording's spool",
            &other_recording,
            tonic::Code::InvalidArgument,
            "content key does not open",
        ),
    ] {
        logs.clear();
        let refused = upload(&w.control, &call_id, &ws, bytes, |h| {
            sealed(h, &recording_id)
        })
        .await;
        let (status, message) = code(refused).unwrap_or_else(|| panic!("{what} was stored"));
        assert_eq!(status, expected, "{what}: {message}");
        assert!(message.contains(says), "{what}: {message}");
        // The operator's log names the recording, its call and why it was refused.
        let named = format!("recording={recording_id}");
        let call = format!("call={call_id}");
        let lines = logs.lines_with(&["ERROR", "refused a sealed recording", &named, &call, says]);
        assert_eq!(
            lines.len(),
            1,
            "{what}: one refusal line in {}",
            logs.text()
        );
    }
    assert_eq!(
        w.control
            .store
            .call_recording(&w.scope, &call_id)
            .await
            .expect("call"),
        None,
        "nothing refused was noted on the call"
    );
    let folder = w.recordings.path().join(&ws);
    let leftovers = std::fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "nothing refused is kept");

    // The recording key is rotated by the operator's command, while the control plane runs:
    // edges get the new one, and the old one still opens.
    let rotated = rotate_recording_key_by_command(&w.config).await;
    assert_ne!(rotated, key);
    assert_eq!(
        w.control
            .store
            .current_recording_key()
            .await
            .expect("store"),
        Some(rotated),
        "the command's key is the one recordings are sealed to now"
    );
    let snapshot = local_snapshot(&w.control).await;
    assert_eq!(snapshot.recording_key, Some(rotated.to_hex()));

    // The spool as the edge wrote it: opened, given its lengths, sealed at rest, served.
    let stored = upload(&w.control, &call_id, &ws, &spool, |h| {
        sealed(h, &recording_id)
    })
    .await;
    assert_eq!(stored.expect("stored"), spool.len() as u64);
    let again = upload(&w.control, &call_id, &ws, &spool, |h| {
        sealed(h, &recording_id)
    })
    .await;
    assert_eq!(
        again.expect("stored again"),
        spool.len() as u64,
        "a lost acknowledgement"
    );
    let api = Api::of(&w.control);
    let (status, _, served) = get_bytes(
        &api,
        &format!("/v1/calls/{call_id}/recording"),
        &w.keys[VIEWER],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data_len = pcm.len() as u32;
    let mut expected = wav.clone();
    expected[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    expected[40..44].copy_from_slice(&data_len.to_le_bytes());
    assert!(served == expected, "the WAV with its true lengths");
    let noted = w
        .control
        .store
        .call_recording(&w.scope, &call_id)
        .await
        .expect("call")
        .expect("a recording");
    assert_eq!(noted.sha256, hex::encode(Sha256::digest(&expected)));
    let on_disk = std::fs::read(folder.join(format!("{recording_id}.wav"))).expect("file");
    assert!(!on_disk.windows(64).any(|w| w == &pcm[20_000..20_064]));

    // A new recording, sealed to the new key as edges now do, opens too.
    let second_call = w.outbound_call("edge-test", "").await;
    let second_id = freya_shared::ids::new_id();
    let newer = sealed_spool(&rotated, &second_id, &wav);
    let stored = upload(&w.control, &second_call, &ws, &newer, |h| {
        sealed(h, &second_id)
    })
    .await;
    assert_eq!(stored.expect("stored"), newer.len() as u64);
    let (status, _, served) = get_bytes(
        &api,
        &format!("/v1/calls/{second_call}/recording"),
        &w.keys[VIEWER],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(served == expected, "the new key's recording plays");
    w.control.stop().await;
    w.db.cleanup().await;
}

on_both_engines!(
    uploads_are_checked_before_they_are_stored,
    sealed_spools_open_on_arrival_and_altered_ones_are_refused,
);

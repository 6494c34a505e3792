//! Recording uploads, on SQLite and PostgreSQL: what an edge sends over gRPC is checked
//! before it is stored (an unknown call, another workspace's call, a path escape, a wrong
//! digest, a short or long body each refused with its own status, nothing noted and no partial
//! file left), a repeated upload changes nothing, a second recording is refused, and what is
//! stored is sealed at rest, served whole and by range, and a file altered on disk is a clear
//! error while a plaintext WAV from an earlier version still downloads.

use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::recorded::{get_bytes, header, recorded_world};
use crate::support::{Backend, SECRET};
use freya_control::server::ControlPlane;
use freya_control::store::NewOutboundCall;
use freya_proto::v1::{recording_chunk::Part, RecordingChunk, RecordingHeader};

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
    let call_id = freya_shared::ids::new_id();
    w.control
        .store
        .create_outbound_call(
            &w.scope,
            "test",
            &NewOutboundCall {
                id: call_id.clone(),
                edge_id: "edge-test".into(),
                from_number: "demo".into(),
                to_number: "+4712345678".into(),
                agent_id: String::new(),
            },
        )
        .await
        .expect("call");
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

on_both_engines!(uploads_are_checked_before_they_are_stored);

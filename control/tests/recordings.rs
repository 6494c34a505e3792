//! Call recordings end to end: a control plane and an edge in-process, an agent with
//! `record: true` whose speech and model are the fake OpenAI servers, and the project's own UAC
//! placing a real SIP call and speaking real espeak-ng audio. The recording is made on the
//! edge, uploaded over gRPC, noted on the call and downloaded through the REST API — whole and
//! by byte range — on SQLite and PostgreSQL; and one made while the control plane is down (with
//! the edge restarted in between) arrives once it is back; so does one whose edge, a
//! `freya edge` process, was killed mid-call and started again. On the edge's disk the
//! recording waits sealed to the control plane's recording key, and on the control plane's it
//! is sealed at rest: no WAV header and no audio in the clear on either. (`recording_uploads.rs`
//! checks what an upload must be.)
//! Nothing here asserts on speed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::recorded::{get_bytes, header, recorded_world, RecordedWorld};
use crate::support::tones::audible_ms;
use crate::support::voice_call::place_spoken_call;
use crate::support::{edge_config, eventually, until_routed, Backend, SECRET};
use freya_control::server::ControlPlane;
use freya_control::store::CallRecord;
use freya_edge::sip::sdp::Codec;
use freya_edge::Edge;
use freya_loadtest::uac::{CallReport, TalkerConfig};
use freya_shared::recording_spool::{SEALED_CHUNK, SPOOL_HEADER_LEN};

const OWNER: usize = 0;
const ADMIN: usize = 1;
const VIEWER: usize = 3;

async fn start_edge(w: &RecordedWorld, dir: &Path) -> Edge {
    let edge = Edge::start(&edge_config(dir, w.control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    until_routed(&edge, "demo").await;
    edge
}

/// One call that waits for the greeting, says one sentence (espeak-ng) and hangs up.
async fn call(target: std::net::SocketAddr) -> CallReport {
    let talker = TalkerConfig {
        first_turn_after: Duration::from_millis(2_500),
        reply_timeout: Duration::from_secs(3),
        pause_after_reply: Duration::from_millis(300),
        barge_in_after: None,
        ..TalkerConfig::default()
    };
    let turn = "Hello, I would like to book a table for two tonight.";
    place_spoken_call(target, Codec::Pcmu, &[turn], talker, Duration::from_secs(7)).await
}

/// The one call of the world, once it has a recording.
async fn recorded_call(w: &RecordedWorld, limit: Duration) -> CallRecord {
    eventually(limit, "the call's recording to be stored", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            calls.into_iter().find(|c| c.recording.is_some())
        }
    })
    .await
}

/// The one call's recording once it has arrived (within a minute), as noted on the call, and
/// as the API serves it: whole, and matching the digest noted.
async fn arrived_recording(
    w: &RecordedWorld,
) -> (freya_control::store::CallRecordingInfo, Vec<u8>) {
    let call = recorded_call(w, Duration::from_secs(60)).await;
    let recording = call.recording.expect("recording");
    let api = Api::of(&w.control);
    let path = format!("/v1/calls/{}/recording", urlencode(&call.id));
    let (status, _, wav) = get_bytes(&api, &path, &w.keys[VIEWER], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hex::encode(Sha256::digest(&wav)), recording.sha256);
    (recording, wav)
}

/// Recording manifests still on the edge's disk.
fn pending_on_edge(edge_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(edge_dir.join("recordings"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default()
}

/// The two channels of a 16-bit stereo WAV (strictly checked header) at 8 kHz.
fn channels(wav: &[u8]) -> (Vec<i16>, Vec<i16>) {
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(
        u32::from_le_bytes(wav[4..8].try_into().expect("4 bytes")) as usize,
        wav.len() - 8
    );
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    assert_eq!(
        u32::from_le_bytes(wav[24..28].try_into().expect("4 bytes")),
        8_000
    );
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(
        u32::from_le_bytes(wav[40..44].try_into().expect("4 bytes")) as usize,
        wav.len() - 44
    );
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

async fn a_recorded_call_downloads_with_both_sides_and_honours_ranges(backend: Backend) {
    let w = recorded_world(backend).await;
    let edge_dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(&w, edge_dir.path()).await;
    let report = call(edge.sip_addr).await;
    assert!(report.succeeded(), "{:?}", report.failure);
    assert!(report.first_audio_ms.is_some(), "the greeting was heard");

    let call = recorded_call(&w, Duration::from_secs(30)).await;
    let api = Api::of(&w.control);
    let viewer = &w.keys[VIEWER];
    let detail = api
        .call(
            "GET",
            &format!("/v1/calls/{}", urlencode(&call.id)),
            viewer,
            None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let recording = &detail.body["recording"];
    assert_eq!(recording["format"], "wav");
    let url = recording["url"]
        .as_str()
        .expect("a recording url")
        .to_owned();
    let bytes = recording["bytes"].as_u64().expect("bytes");
    let duration_ms = recording["duration_ms"].as_u64().expect("duration");
    assert!(
        (5_000..60_000).contains(&duration_ms),
        "the recording spans the call: {duration_ms} ms"
    );

    let (status, headers, wav) = get_bytes(&api, &url, viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "audio/wav");
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    assert_eq!(wav.len() as u64, bytes);
    assert_eq!(
        hex::encode(Sha256::digest(&wav)),
        call.recording.as_ref().expect("recording").sha256
    );
    // On disk the recording is sealed: no WAV header, none of its PCM in the clear.
    let stored = call.recording.as_ref().expect("recording");
    let on_disk = std::fs::read(
        w.recordings
            .path()
            .join(&w.scope.workspace_id)
            .join(format!("{}.wav", stored.recording_id)),
    )
    .expect("the recording's file");
    assert_ne!(&on_disk[..4], b"RIFF", "no WAV header on disk");
    let pcm = &wav[wav.len() / 2..wav.len() / 2 + 64];
    assert!(
        !on_disk.windows(64).any(|w| w == pcm),
        "no PCM in the clear on disk"
    );
    let (caller, agent) = channels(&wav);
    assert_eq!(caller.len() as u64 * 1000 / 8_000, duration_ms);
    // The caller spoke a sentence (well over a second of espeak-ng); the agent played its
    // 1.5 s greeting (and perhaps a reply).
    assert!(
        audible_ms(&caller) > 500,
        "the caller is audible: {} ms",
        audible_ms(&caller)
    );
    assert!(
        audible_ms(&agent) > 1_000,
        "the agent is audible: {} ms",
        audible_ms(&agent)
    );
    // The agent's greeting comes before the caller's first word.
    let first = |s: &[i16]| s.iter().position(|x| x.unsigned_abs() > 1_000);
    assert!(
        first(&agent) < first(&caller),
        "greeting first, then the caller"
    );

    let (status, headers, part) = get_bytes(&api, &url, viewer, Some("bytes=100-1123")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 100-1123/{bytes}")
    );
    assert_eq!(part, wav[100..1124]);
    let (status, _, tail) = get_bytes(&api, &url, viewer, Some("bytes=-10")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail, wav[wav.len() - 10..]);
    let beyond = format!("bytes={}-", bytes + 10);
    let (status, headers, _) = get_bytes(&api, &url, viewer, Some(&beyond)).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes */{bytes}")
    );

    // Another workspace does not see it; a call without a recording is a 404 problem.
    let (_, other_keys) = workspace_with_keys(&w.control, "Other").await;
    let (status, _, _) = get_bytes(&api, &url, &other_keys[OWNER], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let agent_id = call.agent_id.clone().unwrap_or_default();
    let unrecorded = w.outbound_call(&edge.id, &agent_id).await;
    let none = api
        .expect(
            404,
            "GET",
            &format!("/v1/calls/{unrecorded}/recording"),
            viewer,
            None,
        )
        .await;
    assert_eq!(none["detail"], "this call has no recording");
    let unrecorded_detail = api
        .call("GET", &format!("/v1/calls/{unrecorded}"), viewer, None)
        .await;
    assert!(unrecorded_detail.body["recording"].is_null());

    // The edge kept nothing once the control plane had it.
    eventually(Duration::from_secs(10), "the edge to drop its copy", || {
        let left = pending_on_edge(edge_dir.path());
        async move { left.is_empty().then_some(()) }
    })
    .await;

    // An admin deletes it: audited, the file gone, the call without a recording.
    let file = w
        .recordings
        .path()
        .join(&w.scope.workspace_id)
        .join(format!(
            "{}.wav",
            call.recording.as_ref().expect("recording").recording_id
        ));
    assert!(file.exists());
    let deleted = api.call("DELETE", &url, &w.keys[ADMIN], None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(!file.exists(), "the file is deleted");
    let (status, _, _) = get_bytes(&api, &url, viewer, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = api.call("GET", "/v1/audit-log", &w.keys[ADMIN], None).await;
    assert!(
        audit.body["data"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["action"] == "call.recording_deleted"),
        "{}",
        audit.body
    );

    edge.stop().await;
    w.control.stop().await;
    w.db.cleanup().await;
}

async fn a_recording_made_during_an_outage_arrives_after_it(backend: Backend) {
    let mut w = recorded_world(backend).await;
    let edge_dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(&w, edge_dir.path()).await;
    let placed = tokio::spawn(call(edge.sip_addr));
    // The call is answered (and known to the control plane); then the control plane goes away.
    eventually(Duration::from_secs(15), "the call to be answered", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            calls
                .iter()
                .any(|c| c.answered_at_ms.is_some())
                .then_some(())
        }
    })
    .await;
    // The world's control plane stops, and a new one takes its place further down.
    w.control.stop().await;
    let report = placed.await.expect("call task");
    assert!(report.succeeded(), "{:?}", report.failure);

    // The finished recording waits on the edge's disk, across a restart of the edge.
    eventually(
        Duration::from_secs(15),
        "the recording to be finished",
        || {
            let dir = edge_dir.path().to_owned();
            async move {
                pending_on_edge(&dir)
                    .into_iter()
                    .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"sha256\"")))
            }
        },
    )
    .await;
    let spool_on_edge = spools_on_edge(edge_dir.path());
    edge.stop().await;
    w.control = ControlPlane::start(&w.config)
        .await
        .expect("control restarts");
    let edge = Edge::start(&edge_config(edge_dir.path(), w.control.grpc_addr, SECRET))
        .await
        .expect("edge restarts");
    let (_, wav) = arrived_recording(&w).await;
    let (caller, agent) = channels(&wav);
    assert!(audible_ms(&caller) > 500 && audible_ms(&agent) > 1_000);
    // While it waited on the edge's disk, none of its audio was there in the clear.
    assert_none_of_the_audio(&spool_on_edge, &wav);
    eventually(Duration::from_secs(10), "the edge to drop its copy", || {
        let left = pending_on_edge(edge_dir.path());
        async move { left.is_empty().then_some(()) }
    })
    .await;
    edge.stop().await;
    w.control.stop().await;
    w.db.cleanup().await;
}

/// The sealed spools waiting on an edge's disk, read.
fn spools_on_edge(edge_dir: &Path) -> Vec<u8> {
    let spools: Vec<u8> = std::fs::read_dir(edge_dir.join("recordings"))
        .expect("the edge's recordings")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .flat_map(|p| std::fs::read(p).expect("a spool"))
        .collect();
    assert!(!spools.is_empty(), "a spool waits on the edge's disk");
    assert_ne!(&spools[..4], b"RIFF", "no WAV header on the edge's disk");
    spools
}

/// Checks that no 64-byte run of `wav`'s audio (taken every 4 KiB where it is not silence) is
/// in `on_disk`.
fn assert_none_of_the_audio(on_disk: &[u8], wav: &[u8]) {
    let mut checked = 0;
    for at in (44..wav.len().saturating_sub(64)).step_by(4_096) {
        let run = &wav[at..at + 64];
        if run.iter().all(|&b| b == 0) {
            continue;
        }
        checked += 1;
        assert!(
            !on_disk.windows(64).any(|w| w == run),
            "audio at byte {at} is in the clear on the edge's disk"
        );
    }
    assert!(checked > 10, "only {checked} audible runs to look for");
}

/// A `freya edge` process (so it can be killed) with its data in `dir`, SIP on `sip_port`,
/// linked to `w`'s control plane.
fn edge_process(w: &RecordedWorld, dir: &Path, sip_port: u16) -> std::process::Child {
    let config = dir.join("edge.toml");
    let text = format!(
        "id = \"edge-killed\"\nregion = \"local\"\ndata_dir = \"{dir}\"\ncapacity = 10\n\
         [control]\nurl = \"http://{grpc}\"\nshared_secret = \"{SECRET}\"\n\
         connect_timeout_ms = 1000\nmax_backoff_ms = 400\n\
         [sip]\naddr = \"127.0.0.1:{sip_port}\"\nring_ms = 0\noptions_interval_ms = 0\n\
         [http]\naddr = \"127.0.0.1:0\"\n[egress]\nallow_private_targets = true\n",
        dir = dir.join("data").display(),
        grpc = w.control.grpc_addr,
    );
    std::fs::write(&config, text).expect("edge config");
    Command::new(env!("CARGO_BIN_EXE_freya"))
        .arg("edge")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya edge")
}

/// A UDP port free on 127.0.0.1 just now.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

async fn a_recording_whose_edge_was_killed_mid_call_arrives_after_a_restart(backend: Backend) {
    let w = recorded_world(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let sip_port = free_udp_port();
    let mut process = edge_process(&w, dir.path(), sip_port);
    eventually(
        Duration::from_secs(30),
        "the edge process's configuration",
        || {
            let cached = std::fs::read_to_string(data.join("config-snapshot.json"));
            async move {
                cached
                    .is_ok_and(|c| c.contains("recording_key") && c.contains("\"demo\""))
                    .then_some(())
            }
        },
    )
    .await;
    let placed = tokio::spawn(call(format!("127.0.0.1:{sip_port}").parse().expect("addr")));
    // Three seconds of the call reach the edge's disk, sealed; then the edge dies (SIGKILL).
    let enough = (SPOOL_HEADER_LEN + 6 * SEALED_CHUNK) as u64;
    eventually(
        Duration::from_secs(30),
        "three seconds of the call on disk",
        || {
            let spools = std::fs::read_dir(data.join("recordings")).ok();
            async move {
                spools?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
                    .any(|e| e.metadata().is_ok_and(|m| m.len() >= enough))
                    .then_some(())
            }
        },
    )
    .await;
    process.kill().expect("SIGKILL the edge");
    process.wait().expect("the edge is gone");
    let _ = placed.await;
    let unfinished = pending_on_edge(&data);
    assert_eq!(unfinished.len(), 1, "one manifest left behind");
    let spool_on_edge = spools_on_edge(&data);

    // Started again on the same disk: the spool is cut to its whole chunks and uploaded as it is.
    let edge = Edge::start(&edge_config(&data, w.control.grpc_addr, SECRET))
        .await
        .expect("edge restarts");
    let (recording, wav) = arrived_recording(&w).await;
    let (_, agent) = channels(&wav);
    assert!(
        recording.duration_ms >= 2_500,
        "the recording holds what reached the disk: {} ms",
        recording.duration_ms
    );
    assert!(
        audible_ms(&agent) > 500,
        "the agent's greeting is in it: {} ms",
        audible_ms(&agent)
    );
    assert_none_of_the_audio(&spool_on_edge, &wav);
    eventually(Duration::from_secs(10), "the edge to drop its copy", || {
        let left = pending_on_edge(&data);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    edge.stop().await;
    w.control.stop().await;
    w.db.cleanup().await;
}

/// Percent-encodes a call id for a path (SIP Call-IDs may hold characters a path may not).
fn urlencode(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

on_both_engines!(
    multi_thread;
    a_recorded_call_downloads_with_both_sides_and_honours_ranges,
    a_recording_made_during_an_outage_arrives_after_it,
    a_recording_whose_edge_was_killed_mid_call_arrives_after_a_restart,
);

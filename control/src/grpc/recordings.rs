//! Receiving a call recording from an edge: the header is checked (ids, format, length,
//! checksum) and the call looked up before a byte is written; the file is streamed to a
//! temporary name beside its final place while its SHA-256 is computed, then synced, renamed
//! and the directory synced, and only then noted on the call and acknowledged — the edge
//! deletes its copy on that answer, so an answer is never given for a file that could be lost.
//!
//! Files live at `recordings.dir/<workspace_id>/<recording_id>.wav`; both names are UUIDs,
//! checked, so an edge cannot write outside that tree. Files are 0600 and directories 0700:
//! recordings are customer data. The audio is sealed as it is written, under a data key of its
//! own wrapped by `auth.encryption_key` (`recording_seal.rs`).
//!
//! An edge sends its spool as it lies on its disk, sealed to the control plane's recording key
//! (`wav-sealed`); it is opened chunk by chunk as it arrives (`spool_ingest.rs`) and anything
//! altered, reordered, cut short or sealed to another key is refused, nothing kept. A plaintext
//! WAV (`wav`) from an edge of an earlier release is taken as it is. The checksum and length in
//! the upload's header are of the bytes sent; the call's record notes the WAV's own.

use std::path::{Path, PathBuf};

use freya_shared::private_files;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::spool_ingest::SpoolIngest;
use crate::recording_seal::{SealError, SealingWriter};
use crate::store::{CallRecordingInfo, RecordingTarget, Store};
use freya_proto::v1::{recording_chunk::Part, RecordingChunk, RecordingHeader, RecordingStored};
use freya_shared::ids::is_uuid;
use freya_shared::recording_spool::SEALED_WAV;

/// The format of the files kept (and of plaintext uploads from edges of earlier releases).
const WAV: &str = "wav";
/// The largest file accepted: a WAV's 32-bit lengths cannot describe more.
const MAX_BYTES: u64 = u32::MAX as u64 + 8;
/// Length of a WAV header; no recording is shorter.
const MIN_BYTES: u64 = 44;

/// Where a workspace's recording is (or will be) kept below `root`. Both ids must be UUIDs.
pub(crate) fn recording_path(root: &Path, workspace_id: &str, recording_id: &str) -> PathBuf {
    root.join(workspace_id)
        .join(format!("{recording_id}.{WAV}"))
}

/// Serves one `UploadRecording` call.
pub(super) async fn receive(
    store: &Store,
    root: &Path,
    edge_id: &str,
    mut inbound: Streaming<RecordingChunk>,
    shutdown: &CancellationToken,
) -> Result<RecordingStored, Status> {
    let first = next_part(&mut inbound, shutdown).await?;
    let Some(Part::Header(header)) = first else {
        return Err(Status::invalid_argument(
            "the first message of an upload must carry `header`",
        ));
    };
    check_header(&header)?;
    let sealed = header.format == SEALED_WAV;
    // A sealed upload of a recording already stored is compared once opened: its checksum is
    // the spool's, the stored one the WAV's.
    let mut stored_before = None;
    match store
        .recording_target(&header.call_id, &header.workspace_id)
        .await
        .map_err(super::status_of)?
    {
        RecordingTarget::UnknownCall => {
            return Err(Status::failed_precondition(
                "the call is not known yet; send the recording after its events",
            ))
        }
        RecordingTarget::Erased => {
            // Acknowledged so the edge drops its copy; nothing of it is kept here.
            tracing::info!(edge = %edge_id, call = %header.call_id, "discarded the recording of an erased call");
            return Ok(RecordingStored {
                bytes: header.bytes,
            });
        }
        RecordingTarget::OtherWorkspace => {
            tracing::warn!(edge = %edge_id, call = %header.call_id, "refused a recording claiming the wrong workspace");
            return Err(Status::permission_denied(
                "the call belongs to another workspace",
            ));
        }
        RecordingTarget::Call(Some(existing))
            if existing.recording_id == header.recording_id && sealed =>
        {
            stored_before = Some(existing);
        }
        RecordingTarget::Call(Some(existing)) if existing.recording_id == header.recording_id => {
            if existing.sha256 == header.sha256 {
                // Stored before; the acknowledgement was lost on the way back.
                return Ok(RecordingStored {
                    bytes: u64::try_from(existing.bytes).unwrap_or_default(),
                });
            }
            return Err(Status::already_exists(
                "this recording id is stored with another checksum",
            ));
        }
        RecordingTarget::Call(Some(_)) => {
            return Err(Status::already_exists(
                "the call already has another recording",
            ))
        }
        RecordingTarget::Call(None) => {}
    }
    let final_path = recording_path(root, &header.workspace_id, &header.recording_id);
    let folder = root.join(&header.workspace_id);
    let private_folder = folder.clone();
    tokio::task::spawn_blocking(move || private_files::create_dir(&private_folder))
        .await
        .map_err(std::io::Error::other)
        .and_then(|created| created)
        .map_err(|e| disk_error(&folder, &e))?;
    let temp = folder.join(format!(
        "{}.{}.part",
        header.recording_id,
        uuid::Uuid::new_v4().simple()
    ));
    let written = write_file(store, &mut inbound, &header, &temp, edge_id, shutdown).await;
    let wav = match written {
        Ok(wav) => wav,
        Err(status) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(status);
        }
    };
    if let Some(existing) = stored_before {
        let _ = tokio::fs::remove_file(&temp).await;
        if existing.sha256 == wav.sha256 {
            // Stored before; the acknowledgement was lost on the way back.
            return Ok(RecordingStored {
                bytes: header.bytes,
            });
        }
        return Err(Status::already_exists(
            "this recording id is stored with another checksum",
        ));
    }
    tokio::fs::rename(&temp, &final_path)
        .await
        .map_err(|e| disk_error(&final_path, &e))?;
    sync_dir(folder).await?;
    let info = CallRecordingInfo {
        recording_id: header.recording_id.clone(),
        format: WAV.to_owned(),
        bytes: i64::try_from(wav.bytes).unwrap_or(i64::MAX),
        duration_ms: i64::try_from(header.duration_ms).unwrap_or(i64::MAX),
        sha256: wav.sha256,
    };
    store
        .attach_recording(&header.call_id, &header.workspace_id, &info)
        .await
        .map_err(super::status_of)?;
    tracing::info!(edge = %edge_id, call = %header.call_id, recording = %header.recording_id,
        bytes = header.bytes, "call recording stored");
    Ok(RecordingStored {
        bytes: header.bytes,
    })
}

fn check_header(h: &RecordingHeader) -> Result<(), Status> {
    let problem = if !is_uuid(&h.recording_id) {
        Some("`recording_id` must be a UUID")
    } else if !is_uuid(&h.workspace_id) {
        Some("`workspace_id` must be a UUID")
    } else if h.call_id.is_empty() || h.call_id.len() > 1024 {
        Some("`call_id` must be 1-1024 characters")
    } else if h.format != WAV && h.format != SEALED_WAV {
        Some("`format` must be `wav-sealed` (or `wav`)")
    } else if !(MIN_BYTES..=MAX_BYTES).contains(&h.bytes) {
        Some("`bytes` must be between 44 and 4 GiB")
    } else if h.sha256.len() != 64
        || !h
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Some("`sha256` must be 64 lowercase hex characters")
    } else {
        None
    };
    match problem {
        Some(message) => Err(Status::invalid_argument(message)),
        None => Ok(()),
    }
}

/// The WAV a stored upload holds.
struct StoredWav {
    bytes: u64,
    /// SHA-256 of the WAV, lowercase hex.
    sha256: String,
}

/// Streams the data messages — opened first when they are a sealed spool — sealed at rest
/// into `path`, checking length and checksum, and syncs the file.
async fn write_file(
    store: &Store,
    inbound: &mut Streaming<RecordingChunk>,
    header: &RecordingHeader,
    path: &Path,
    edge_id: &str,
    shutdown: &CancellationToken,
) -> Result<StoredWav, Status> {
    let mut spool = if header.format == SEALED_WAV {
        let keys = store
            .recording_secret_keys()
            .await
            .map_err(super::status_of)?;
        Some(SpoolIngest::new(keys, header, edge_id)?)
    } else {
        None
    };
    let mut sealing = store
        .sealer()
        .and_then(|sealer| SealingWriter::new(sealer, &header.recording_id))
        .map_err(super::status_of)?;
    let mut file = tokio::fs::OpenOptions::from(private_files::open_options())
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| disk_error(path, &e))?;
    file.write_all(sealing.header())
        .await
        .map_err(|e| disk_error(path, &e))?;
    let mut sealed = Vec::with_capacity(2 * crate::recording_seal::CHUNK);
    let mut hasher = Sha256::new();
    let mut wav_hasher = Sha256::new();
    let mut opened = Vec::new();
    let mut total = 0u64;
    while let Some(part) = next_part(inbound, shutdown).await? {
        let Part::Data(data) = part else {
            return Err(Status::invalid_argument(
                "only the first message may carry `header`",
            ));
        };
        total += data.len() as u64;
        if total > header.bytes {
            return Err(Status::invalid_argument(
                "more bytes than the header announced",
            ));
        }
        hasher.update(&data);
        let wav: &[u8] = match &mut spool {
            Some(spool) => {
                opened.clear();
                spool.push(&data, &mut opened)?;
                &opened
            }
            None => &data,
        };
        wav_hasher.update(wav);
        sealed.clear();
        sealing.push(wav, &mut sealed).map_err(seal_error)?;
        file.write_all(&sealed)
            .await
            .map_err(|e| disk_error(path, &e))?;
    }
    if total != header.bytes {
        return Err(Status::data_loss(format!(
            "the upload ended after {total} of {} bytes",
            header.bytes
        )));
    }
    if hex::encode(hasher.finalize()) != header.sha256 {
        return Err(Status::data_loss(
            "the file's SHA-256 differs from the header's",
        ));
    }
    let wav_bytes = match spool {
        Some(spool) => {
            let len = spool.wav_len();
            spool.finish()?;
            len
        }
        None => total,
    };
    sealed.clear();
    sealing.finish(&mut sealed).map_err(seal_error)?;
    file.write_all(&sealed)
        .await
        .map_err(|e| disk_error(path, &e))?;
    file.flush().await.map_err(|e| disk_error(path, &e))?;
    file.sync_all().await.map_err(|e| disk_error(path, &e))?;
    Ok(StoredWav {
        bytes: wav_bytes,
        sha256: hex::encode(wav_hasher.finalize()),
    })
}

/// The next part of the upload, `None` at its end.
async fn next_part(
    inbound: &mut Streaming<RecordingChunk>,
    shutdown: &CancellationToken,
) -> Result<Option<Part>, Status> {
    loop {
        let message = tokio::select! {
            message = inbound.message() => message?,
            _ = shutdown.cancelled() => return Err(Status::unavailable("the control plane is shutting down")),
        };
        match message {
            Some(RecordingChunk { part: Some(part) }) => return Ok(Some(part)),
            // An empty message carries nothing; skip it.
            Some(RecordingChunk { part: None }) => continue,
            None => return Ok(None),
        }
    }
}

fn seal_error(error: SealError) -> Status {
    tracing::error!(%error, "cannot seal a call recording");
    Status::internal("the control plane cannot seal recordings")
}

fn disk_error(path: &Path, error: &std::io::Error) -> Status {
    tracing::error!(error = %error, path = %path.display(), "cannot store a call recording");
    Status::unavailable("the control plane cannot store recordings right now")
}

/// Makes the rename in `dir` durable.
async fn sync_dir(dir: PathBuf) -> Result<(), Status> {
    let synced = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| disk_error(&dir, &e))
    })
    .await;
    match synced {
        Ok(result) => result,
        Err(_) => Err(Status::internal("syncing the recordings folder failed")),
    }
}

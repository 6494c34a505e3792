//! The recording uploader: sends each finished recording in the outbox to the control plane
//! (`UploadRecording`, the file in chunks after a header with its length and SHA-256) — a
//! sealed spool exactly as it lies on the disk, which the control plane opens — and
//! deletes the edge's copy only when the control plane answers that it has stored and synced
//! it. Anything else — the control plane down, its disk or database failing, the call's events
//! not there yet — leaves the file where it is and tries again after a backoff, across restarts
//! of either side. Only a refusal that no retry can change (the header is invalid, the spool
//! does not open whole, the call belongs to another workspace or already has another recording)
//! moves the recording aside, kept for an operator. A spool sealed to a key the control plane
//! does not hold (`NOT_FOUND`) stays and is retried: that key may come back from a backup.

use futures::stream::{self, Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tonic::{Code, Status};

use super::{log_failure, LinkContext};
use crate::recordings::{RecordingManifest, RecordingOutbox};
use freya_proto::v1::{recording_chunk::Part, RecordingChunk, RecordingHeader};

/// Bytes of audio per message.
const CHUNK_BYTES: usize = 64 * 1024;

/// How one attempt ended.
enum Outcome {
    Stored,
    /// Worth trying again later.
    Retry,
    /// Never worth trying again.
    Refused,
    /// Nothing left to send (the audio is gone).
    Dropped,
}

pub(crate) async fn run(link: LinkContext, outbox: RecordingOutbox) {
    let mut backoff = link.backoff();
    loop {
        let pending = match outbox.pending() {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "cannot list recordings to upload");
                Vec::new()
            }
        };
        let mut must_retry = false;
        for manifest in pending {
            if link.shutdown.is_cancelled() {
                return;
            }
            match upload(&link, &outbox, &manifest).await {
                Outcome::Stored => {
                    backoff.reset();
                    if let Err(e) = outbox.remove(&manifest.recording_id) {
                        tracing::warn!(error = %e, "cannot delete an uploaded recording; it may be sent twice");
                    }
                }
                Outcome::Refused => match outbox.reject(&manifest.recording_id) {
                    Ok(aside) => {
                        tracing::error!(recording = %manifest.recording_id, call = %manifest.call_id,
                            kept_in = %aside.display(), "the control plane refused a recording for good; it is kept aside")
                    }
                    Err(e) => tracing::error!(error = %e, "cannot set a refused recording aside"),
                },
                Outcome::Dropped => {}
                Outcome::Retry => {
                    must_retry = true;
                    break;
                }
            }
        }
        if must_retry {
            // A new recording does not cut the pause short: the control plane is the problem.
            if !link.pause(backoff.next_delay()).await {
                return;
            }
        } else {
            tokio::select! {
                _ = outbox.ready() => {}
                _ = link.shutdown.cancelled() => return,
            }
        }
    }
}

/// One attempt at uploading `manifest`'s recording.
async fn upload(
    link: &LinkContext,
    outbox: &RecordingOutbox,
    manifest: &RecordingManifest,
) -> Outcome {
    let Some(finished) = &manifest.finished else {
        return Outcome::Retry;
    };
    let path = outbox.audio_path(&manifest.recording_id, &manifest.format);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(file = %path.display(), "a finished recording's audio is missing; dropping its manifest");
            let _ = outbox.remove(&manifest.recording_id);
            return Outcome::Dropped;
        }
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot read a recording to upload");
            return Outcome::Retry;
        }
    };
    let header = RecordingChunk {
        part: Some(Part::Header(RecordingHeader {
            recording_id: manifest.recording_id.clone(),
            call_id: manifest.call_id.clone(),
            workspace_id: manifest.workspace_id.clone(),
            format: manifest.format.clone(),
            bytes: finished.bytes,
            duration_ms: finished.duration_ms,
            sha256: finished.sha256.clone(),
            interrupted: finished.interrupted,
        })),
    };
    let body = stream::iter([header]).chain(file_chunks(file));
    let mut client = link.client.clone();
    let answer = tokio::select! {
        answer = client.upload_recording(body) => answer,
        _ = link.shutdown.cancelled() => return Outcome::Retry,
    };
    match answer {
        Ok(stored) => {
            tracing::info!(recording = %manifest.recording_id, call = %manifest.call_id,
                bytes = stored.into_inner().bytes, "recording stored by the control plane");
            Outcome::Stored
        }
        Err(status) => outcome_of(&status),
    }
}

fn outcome_of(status: &Status) -> Outcome {
    match status.code() {
        Code::InvalidArgument | Code::PermissionDenied | Code::AlreadyExists => {
            tracing::error!(%status, "the control plane refused a recording");
            Outcome::Refused
        }
        Code::FailedPrecondition => {
            tracing::debug!(%status, "the control plane does not know the call yet");
            Outcome::Retry
        }
        _ => {
            log_failure("uploading a recording", status);
            Outcome::Retry
        }
    }
}

/// The file as `data` messages. A read error ends the stream early; the control plane then
/// sees fewer bytes than announced and refuses to store it, so the upload is retried.
fn file_chunks(file: tokio::fs::File) -> impl Stream<Item = RecordingChunk> {
    stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    RecordingChunk {
                        part: Some(Part::Data(buf)),
                    },
                    Some(file),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a recording failed mid-upload");
                None
            }
        }
    })
}

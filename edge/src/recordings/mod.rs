//! Call recordings on the edge's disk, from the first frame until the control plane has stored
//! them: the per-call writer ([`writer`]) fills `<id>.spool` off the media loop, sealed to the
//! control plane's recording key as it is written ([`spool`]), and the uploader
//! (`control_link::recording_upload`) sends each finished spool as it is and deletes it once
//! acknowledged. The edge never reads a spool's audio again (it could not: it holds no key).
//!
//! Every recording is two files in `data_dir/recordings`: `<id>.spool` and `<id>.json`, its
//! [`RecordingManifest`] (which call and workspace it belongs to, and — once finished — its
//! length, duration and SHA-256). The manifest is written before the first sample and replaced
//! atomically (write, sync, rename, sync the directory) when the file is finished, so after a
//! crash or restart [`RecordingOutbox::open`] knows every recording: an unfinished one (the edge
//! died mid-call) is cut to its last whole chunk, marked interrupted and queued like the rest. A
//! plaintext `<id>.wav` left by an earlier release is repaired up to the last sample that reached
//! the disk and uploaded as it is. A file without a manifest cannot be attributed and is left
//! alone (logged).
//!
//! Recordings are customer data: every file is 0600 and every directory 0700, and whatever an
//! earlier run left looser is corrected (with a warning) at open.

/// The sealed spool a recording is written to.
pub(crate) mod spool;
/// Writing a call's recording: `freya-control`'s recording tests make one like an edge.
pub mod writer;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::media::recording::{repair, HEADER_LEN};
use freya_shared::private_files;
use freya_shared::recording_spool::{SpoolLayout, SEALED_WAV};

/// The format of plaintext recordings left by earlier releases.
pub const WAV: &str = "wav";
/// The file name extension of a sealed spool.
const SPOOL: &str = "spool";
/// Where recordings whose upload the control plane refused for good are kept for an operator.
const REJECTED: &str = "rejected";

/// Why the recording directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("recordings {path}: {source}")]
pub struct OutboxError {
    path: PathBuf,
    source: std::io::Error,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError {
        path: path.to_owned(),
        source,
    }
}

/// What the edge knows about one recording, kept beside it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingManifest {
    /// UUIDv7, also the file's name: time-ordered, so uploads go oldest first.
    pub recording_id: String,
    pub call_id: String,
    pub workspace_id: String,
    pub format: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// Set when the file is complete and synced; until then the call is still being recorded
    /// (or the edge died while it was).
    pub finished: Option<FinishedRecording>,
}

/// A complete recording file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedRecording {
    pub bytes: u64,
    pub duration_ms: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// The edge died while recording: the spool ends at its last whole chunk, without the
    /// last-chunk flag (the upload says so).
    #[serde(default)]
    pub interrupted: bool,
}

/// The edge's recordings directory and the signal that a recording is ready to upload.
#[derive(Clone)]
pub struct RecordingOutbox {
    dir: Arc<Path>,
    ready: Arc<Notify>,
}

impl RecordingOutbox {
    /// Opens (or creates) `dir`, finishing recordings an earlier run left unfinished. Call it
    /// before any call starts: every unfinished manifest found here is an orphan.
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        private_files::create_dir(dir).map_err(io_err(dir))?;
        private_files::restrict_tree(dir).map_err(io_err(dir))?;
        let outbox = Self {
            dir: Arc::from(dir),
            ready: Arc::new(Notify::new()),
        };
        for manifest in outbox.manifests()? {
            if manifest.finished.is_some() {
                continue;
            }
            let wav = outbox.audio_path(&manifest.recording_id, &manifest.format);
            match outbox.recover(manifest) {
                Ok(Some(m)) => {
                    tracing::info!(recording = %m.recording_id, call = %m.call_id,
                        "recovered a recording left unfinished by the last run")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, file = %wav.display(), "cannot recover a recording")
                }
            }
        }
        Ok(outbox)
    }

    /// The directory recordings are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the audio of recording `id` in `format` lives: `<id>.spool` sealed, `<id>.wav` a
    /// plaintext recording of an earlier release.
    pub fn audio_path(&self, id: &str, format: &str) -> PathBuf {
        let extension = if format == SEALED_WAV { SPOOL } else { WAV };
        self.dir.join(format!("{id}.{extension}"))
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes `manifest` atomically and durably (a crash leaves the old one or the new one).
    pub fn save_manifest(&self, manifest: &RecordingManifest) -> Result<(), OutboxError> {
        let path = self.manifest_path(&manifest.recording_id);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(manifest).map_err(|e| OutboxError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut file = private_files::create_file(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&body).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }

    /// Every manifest in the directory, oldest first. Unreadable ones are logged and skipped.
    pub fn manifests(&self) -> Result<Vec<RecordingManifest>, OutboxError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = entry.map_err(io_err(&self.dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<RecordingManifest>(&b).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(m) if freya_shared::ids::is_uuid(&m.recording_id) => found.push(m),
                Ok(_) => {
                    tracing::error!(file = %path.display(), "a recording manifest without a UUID id; ignored")
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable recording manifest; ignored")
                }
            }
        }
        found.sort_by(|a, b| a.recording_id.cmp(&b.recording_id));
        Ok(found)
    }

    /// Finished recordings waiting for the control plane, oldest first.
    pub fn pending(&self) -> Result<Vec<RecordingManifest>, OutboxError> {
        Ok(self
            .manifests()?
            .into_iter()
            .filter(|m| m.finished.is_some())
            .collect())
    }

    /// Marks `manifest` finished (`interrupted`: its writer died): syncs nothing itself (the
    /// writer synced the file) but measures and hashes the file as it is on disk — a spool's
    /// sealed bytes, never its audio — then saves the manifest.
    pub fn finish(
        &self,
        mut manifest: RecordingManifest,
        interrupted: bool,
    ) -> Result<RecordingManifest, OutboxError> {
        let path = self.audio_path(&manifest.recording_id, &manifest.format);
        let (bytes, sha256) = hash_file(&path)?;
        let wav_len = if manifest.format == SEALED_WAV {
            SpoolLayout::of(bytes, interrupted)
                .map(|layout| layout.plain_len)
                .unwrap_or(0)
        } else {
            bytes
        };
        let bytes_per_ms =
            u64::from(manifest.sample_rate) * u64::from(manifest.channels) * 2 / 1000;
        let duration_ms = wav_len.saturating_sub(HEADER_LEN) / bytes_per_ms.max(1);
        manifest.finished = Some(FinishedRecording {
            bytes,
            duration_ms,
            sha256,
            interrupted,
        });
        self.save_manifest(&manifest)?;
        Ok(manifest)
    }

    /// Wakes the uploader: a recording was finished.
    pub fn notify_ready(&self) {
        self.ready.notify_one();
    }

    /// Resolves when [`notify_ready`](Self::notify_ready) was called (now or since the last wait).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Forgets recording `id` once the control plane holds it: the audio first, then the
    /// manifest, so a crash in between leaves a manifest whose audio is gone (dropped at the
    /// next look) rather than audio nobody can attribute.
    pub fn remove(&self, id: &str) -> Result<(), OutboxError> {
        for format in [SEALED_WAV, WAV] {
            let audio = self.audio_path(id, format);
            match std::fs::remove_file(&audio) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&audio)(e)),
            }
        }
        let manifest = self.manifest_path(id);
        std::fs::remove_file(&manifest).map_err(io_err(&manifest))?;
        sync_dir(&self.dir)
    }

    /// Moves recording `id` aside, where it is kept but never sent again.
    pub fn reject(&self, id: &str) -> Result<PathBuf, OutboxError> {
        let aside = self.dir.join(REJECTED);
        private_files::create_dir(&aside).map_err(io_err(&aside))?;
        let paths = [
            self.audio_path(id, SEALED_WAV),
            self.audio_path(id, WAV),
            self.manifest_path(id),
        ];
        for path in paths.into_iter().filter(|p| p.exists()) {
            if let Some(name) = path.file_name() {
                std::fs::rename(&path, aside.join(name)).map_err(io_err(&path))?;
            }
        }
        sync_dir(&self.dir)?;
        Ok(aside)
    }

    /// Finishes a recording whose writer died with the process; `None` when its audio is gone.
    fn recover(
        &self,
        manifest: RecordingManifest,
    ) -> Result<Option<RecordingManifest>, OutboxError> {
        if manifest.format == SEALED_WAV {
            return self.recover_spool(manifest);
        }
        let wav = self.audio_path(&manifest.recording_id, &manifest.format);
        let mut file = match OpenOptions::new().read(true).write(true).open(&wav) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.remove(&manifest.recording_id)?;
                return Ok(None);
            }
            Err(e) => return Err(io_err(&wav)(e)),
        };
        match repair(&mut file) {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, file = %wav.display(), "an unfinished recording cannot be repaired; it is set aside");
                drop(file);
                self.reject(&manifest.recording_id)?;
                return Ok(None);
            }
        }
        file.sync_all().map_err(io_err(&wav))?;
        drop(file);
        self.finish(manifest, false).map(Some)
    }

    /// Finishes a sealed spool whose writer died: its torn tail cut off by length (no key
    /// needed), marked interrupted. One without a whole WAV header's worth of audio is dropped.
    fn recover_spool(
        &self,
        manifest: RecordingManifest,
    ) -> Result<Option<RecordingManifest>, OutboxError> {
        let path = self.audio_path(&manifest.recording_id, &manifest.format);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.remove(&manifest.recording_id)?;
                return Ok(None);
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let audio = spool::cut_torn_tail(&file).map_err(io_err(&path))?;
        drop(file);
        if audio.is_none_or(|plain| plain <= HEADER_LEN) {
            tracing::warn!(recording = %manifest.recording_id, call = %manifest.call_id,
                "a recording interrupted before its first whole chunk holds no audio; dropped");
            self.remove(&manifest.recording_id)?;
            return Ok(None);
        }
        self.finish(manifest, true).map(Some)
    }
}

/// Length and SHA-256 (hex) of the file at `path`.
pub fn hash_file(path: &Path) -> Result<(u64, String), OutboxError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;

//! Re-wrapping recordings' data keys after a secrets-key rotation: every sealed recording file
//! under `recordings.dir` (`<workspace>/<recording>.wav`) gets its header rewritten so that its
//! data key is wrapped by the current `auth.encryption_key`; the audio chunks are copied as they
//! are (the data key does not change). A file is replaced by a complete copy (written beside it,
//! synced, then renamed over it), so a crash leaves either the old file or the new one, each
//! readable while both keys are configured, and a second run skips what is done. Every file is
//! checked before any is rewritten: one whose key opens under none of the keys stops the run
//! with its path, and nothing is changed. Plaintext WAVs from before sealing are left alone.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::recording_seal::{rewrapped_header, wrapped_len, SealError, HEADER_START, MAGIC};
use crate::store::Sealer;

/// What a re-wrap did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    /// Files whose data key is now wrapped by the current key (this run).
    pub rewrapped: u64,
    /// Sealed files already under it.
    pub already_current: u64,
    /// Files without the sealed marker (plaintext WAVs from before sealing).
    pub plaintext: u64,
}

/// Why the recordings could not be re-wrapped.
#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    #[error("while reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recording {path}: {source}; no recording was changed")]
    Unopened { path: PathBuf, source: SealError },
}

/// Re-wraps every sealed recording below `dir` under `sealer`'s current key. A missing `dir`
/// (no recording ever stored) is nothing to do.
pub fn rewrap_recordings(dir: &Path, sealer: &Sealer) -> Result<RewrapReport, RewrapError> {
    let mut report = RewrapReport::default();
    let mut pending = Vec::new();
    for path in recording_files(dir)? {
        match new_header(&path, sealer)? {
            Header::Plaintext => report.plaintext += 1,
            Header::Current => report.already_current += 1,
            Header::Rewrap { old_len, header } => pending.push((path, old_len, header)),
        }
    }
    for (path, old_len, header) in pending {
        replace_header(&path, old_len, &header).map_err(|source| RewrapError::Io {
            path: path.clone(),
            source,
        })?;
        report.rewrapped += 1;
    }
    Ok(report)
}

enum Header {
    Plaintext,
    Current,
    Rewrap { old_len: usize, header: Vec<u8> },
}

/// The `.wav` files one folder (a workspace) below `dir`.
fn recording_files(dir: &Path) -> Result<Vec<PathBuf>, RewrapError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RewrapError::Io { path, source }
    };
    let mut files = Vec::new();
    let workspaces = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(io(dir)(e)),
    };
    for workspace in workspaces {
        let workspace = workspace.map_err(io(dir))?.path();
        if !workspace.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&workspace).map_err(io(&workspace))? {
            let path = entry.map_err(io(&workspace))?.path();
            if path.extension().is_some_and(|e| e == "wav") && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// What `path`'s header becomes under `sealer`.
fn new_header(path: &Path, sealer: &Sealer) -> Result<Header, RewrapError> {
    let io = |source| RewrapError::Io {
        path: path.to_owned(),
        source,
    };
    let unopened = |source| RewrapError::Unopened {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut start = [0u8; HEADER_START];
    match file.read_exact(&mut start) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Header::Plaintext),
        Err(e) => return Err(io(e)),
    }
    if &start[..MAGIC.len()] != MAGIC {
        return Ok(Header::Plaintext);
    }
    let rest_len = wrapped_len(&start).map_err(unopened)?;
    let mut header = start.to_vec();
    header.resize(HEADER_START + rest_len, 0);
    file.read_exact(&mut header[HEADER_START..])
        .map_err(|_| unopened(SealError::BadHeader))?;
    let recording_id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| unopened(SealError::BadHeader))?;
    Ok(
        match rewrapped_header(sealer, recording_id, &header).map_err(unopened)? {
            None => Header::Current,
            Some(new) => Header::Rewrap {
                old_len: header.len(),
                header: new,
            },
        },
    )
}

/// Writes `header` and the chunks after the first `old_len` bytes of `path` to a file beside
/// it, syncs it, and renames it over `path`.
fn replace_header(path: &Path, old_len: usize, header: &[u8]) -> std::io::Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".rewrap");
    let temp = PathBuf::from(temp_name);
    let mut source = File::open(path)?;
    source.seek(SeekFrom::Start(old_len as u64))?;
    let mut out = freya_shared::private_files::create_file(&temp)?;
    out.write_all(header)?;
    std::io::copy(&mut source, &mut out)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&temp, path)?;
    if let Some(folder) = path.parent() {
        File::open(folder)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "recording_rewrap_tests.rs"]
mod tests;

//! A recording's file on the edge's disk, sealed as it is written to the control plane's
//! recording key (`freya_shared::recording_spool`): a fresh random content key per recording,
//! held only by the [`SealedSpool`] in the writer thread and gone with it, so nothing on this
//! disk opens the audio — not after the call, not after a crash. The recorder's bytes are
//! appended chunk by chunk; the WAV's lengths are left to the control plane, which knows them
//! from the spool's length when it opens it.
//!
//! A spool whose writer died ends with whole chunks and perhaps a torn one:
//! [`cut_torn_tail`] cuts that off by length alone (no key needed) and the upload says the
//! spool was interrupted.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use freya_shared::recording_spool::{RecordingPublicKey, SpoolLayout, SpoolSealer};

use crate::media::recording::RecordingSink;

/// The recorder's sink on the edge: a spool file and the sealer of its chunks.
pub(crate) struct SealedSpool {
    file: File,
    sealer: SpoolSealer,
    /// Sealed bytes waiting to be written (reused).
    out: Vec<u8>,
}

impl SealedSpool {
    /// Creates the spool of recording `recording_id` at `path` (0600, never over an existing
    /// file), sealed to `key`, and writes its header.
    pub(crate) fn create(
        path: &Path,
        key: &RecordingPublicKey,
        recording_id: &str,
    ) -> io::Result<Self> {
        let (sealer, header) = SpoolSealer::new(key, recording_id, rand::random(), rand::random())
            .map_err(io::Error::other)?;
        let mut file = freya_shared::private_files::open_options()
            .write(true)
            .create_new(true)
            .open(path)?;
        file.write_all(&header)?;
        Ok(Self {
            file,
            sealer,
            out: Vec::with_capacity(2 * freya_shared::recording_spool::SEALED_CHUNK),
        })
    }

    /// Seals and writes the last chunk and syncs the file; the content key is forgotten.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.out.clear();
        self.sealer
            .finish(&mut self.out)
            .map_err(io::Error::other)?;
        self.file.write_all(&self.out)?;
        self.file.sync_all()
    }
}

impl RecordingSink for SealedSpool {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.clear();
        self.sealer
            .push(bytes, &mut self.out)
            .map_err(io::Error::other)?;
        self.file.write_all(&self.out)
    }

    /// A sealed spool cannot rewrite its header: the control plane writes the lengths.
    fn cover(&mut self, _data_len: u32) -> io::Result<()> {
        Ok(())
    }
}

/// Cuts a spool left by a dead writer down to its whole chunks; the plaintext length they
/// hold, or `None` when not even the header reached the disk.
pub(crate) fn cut_torn_tail(file: &File) -> io::Result<Option<u64>> {
    let len = file.metadata()?.len();
    let Some(whole) = SpoolLayout::whole_chunks_len(len) else {
        return Ok(None);
    };
    if whole != len {
        file.set_len(whole)?;
    }
    file.sync_all()?;
    Ok(SpoolLayout::of(whole, true).ok().map(|l| l.plain_len))
}

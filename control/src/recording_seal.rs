//! Call recordings encrypted at rest. Each recording file gets its own random data key; the file
//! holds that key wrapped (sealed with `auth.encryption_key` by [`wrap_data_key`], the one place
//! a data key is wrapped or unwrapped, for the recording's id) and the audio as a sequence of
//! ChaCha20-Poly1305 chunks (the STREAM construction: each chunk's nonce is the file's random
//! prefix, the chunk's number and a last-chunk flag), so a file is written and read as a stream,
//! a byte range can be read without the chunks before it, and a chunk altered, moved, dropped or
//! a file cut short fails to open instead of giving wrong audio.
//!
//! Layout: `FRYREC\0\x01` (8 bytes), the wrapped key's length (u16, big-endian) and text, a
//! 7-byte nonce prefix, then the chunks: [`CHUNK`] bytes of audio each (the last one shorter)
//! plus a 16-byte tag. A file that does not start with the marker is a plaintext WAV written
//! by an earlier version (`RIFF...`) and is served as it is.
//!
//! Sans-IO: [`SealingWriter`] turns plaintext into the bytes to write; [`SealedFile`] says where
//! a plaintext range lies in the file and opens the chunks read from there.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use crate::store::{Sealer, StoreError};

/// What a sealed recording file starts with.
pub const MAGIC: &[u8; 8] = b"FRYREC\0\x01";
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// The authentication tag after each chunk.
const TAG: usize = 16;
/// The file's random part of every chunk nonce.
const PREFIX: usize = 7;
/// The longest wrapped key a header may announce (a sealed 64-character hex key is 155).
const MAX_WRAPPED: usize = 512;

/// Why a sealed recording cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The header is cut short or malformed.
    #[error("the recording file's header is damaged")]
    BadHeader,
    /// The data key does not unwrap: another `auth.encryption_key`, or the header was altered.
    #[error("the recording's data key does not open with auth.encryption_key (another key, or the file was altered)")]
    KeyDoesNotOpen,
    /// A chunk fails its authentication: the file was altered or damaged on disk.
    #[error(
        "the recording file fails its integrity check at chunk {0} (altered or damaged on disk)"
    )]
    Tampered(u64),
    /// Sealing failed (the cipher refused; not expected).
    #[error("cannot seal the recording")]
    Seal,
}

/// The one way a recording's data key is wrapped for storage beside it: sealed with the
/// secrets key for the row `recording:<id>`, so a header copied onto another recording does
/// not open. Rotating `auth.encryption_key` must re-wrap every recording's key through this
/// function and [`unwrap_data_key`] (rewriting only the header, not the audio).
pub fn wrap_data_key(
    sealer: &Sealer,
    recording_id: &str,
    key: &[u8; 32],
) -> Result<String, StoreError> {
    let hex_key = Zeroizing::new(hex::encode(key));
    sealer.seal(&format!("recording:{recording_id}"), &hex_key)
}

/// The data key [`wrap_data_key`] wrapped for `recording_id`.
pub fn unwrap_data_key(
    sealer: &Sealer,
    recording_id: &str,
    wrapped: &str,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let hex_key = Zeroizing::new(
        sealer
            .open(&format!("recording:{recording_id}"), wrapped)
            .map_err(|_| SealError::KeyDoesNotOpen)?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_key.as_bytes(), key.as_mut_slice())
        .map_err(|_| SealError::KeyDoesNotOpen)?;
    Ok(key)
}

fn nonce(prefix: &[u8; PREFIX], index: u64, last: bool) -> Result<[u8; 12], SealError> {
    let counter = u32::try_from(index).map_err(|_| SealError::BadHeader)?;
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Ok(n)
}

/// Seals a recording as its bytes arrive: [`SealingWriter::header`] first, then what each
/// [`SealingWriter::push`] and the final [`SealingWriter::finish`] put in `out`. One chunk is
/// held back until more follows, so the last one can be marked last.
pub struct SealingWriter {
    cipher: ChaCha20Poly1305,
    header: Vec<u8>,
    prefix: [u8; PREFIX],
    index: u64,
    pending: Vec<u8>,
}

impl SealingWriter {
    /// A writer for recording `recording_id` with a fresh data key wrapped by `sealer`.
    pub fn new(sealer: &Sealer, recording_id: &str) -> Result<Self, StoreError> {
        let key = Zeroizing::new(rand::random::<[u8; 32]>());
        let wrapped = wrap_data_key(sealer, recording_id, &key)?;
        let prefix: [u8; PREFIX] = rand::random();
        let mut header = Vec::with_capacity(MAGIC.len() + 2 + wrapped.len() + PREFIX);
        header.extend_from_slice(MAGIC);
        let len = u16::try_from(wrapped.len()).unwrap_or(u16::MAX);
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(wrapped.as_bytes());
        header.extend_from_slice(&prefix);
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_slice())),
            header,
            prefix,
            index: 0,
            pending: Vec::with_capacity(CHUNK),
        })
    }

    /// The file's first bytes.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Takes `data`; appends every chunk now complete (and not possibly the last) to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        while !data.is_empty() {
            if self.pending.len() == CHUNK {
                self.seal_pending(false, out)?;
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Appends the last chunk to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), SealError> {
        self.seal_pending(true, out)
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), SealError> {
        let n = nonce(&self.prefix, self.index, last)?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&n), self.pending.as_slice())
            .map_err(|_| SealError::Seal)?;
        out.extend_from_slice(&sealed);
        self.pending.clear();
        self.index += 1;
        Ok(())
    }
}

/// The header of a sealed file with its data key re-wrapped under `sealer`'s current key, for
/// the file whose first bytes are `header` (the fixed start and its rest, as [`wrapped_len`]
/// announces them); `None` when the key is already under it. Only the header changes: the data
/// key, and so every chunk after it, stays as it is.
pub fn rewrapped_header(
    sealer: &Sealer,
    recording_id: &str,
    header: &[u8],
) -> Result<Option<Vec<u8>>, SealError> {
    let rest_len = wrapped_len(header)?;
    if header.len() != HEADER_START + rest_len {
        return Err(SealError::BadHeader);
    }
    let (wrapped, prefix) = header[HEADER_START..].split_at(rest_len - PREFIX);
    let wrapped = std::str::from_utf8(wrapped).map_err(|_| SealError::BadHeader)?;
    let key = unwrap_data_key(sealer, recording_id, wrapped)?;
    if sealer.is_current(wrapped) {
        return Ok(None);
    }
    let rewrapped = wrap_data_key(sealer, recording_id, &key).map_err(|_| SealError::Seal)?;
    let len = u16::try_from(rewrapped.len()).map_err(|_| SealError::Seal)?;
    let mut out = Vec::with_capacity(HEADER_START + rewrapped.len() + PREFIX);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(rewrapped.as_bytes());
    out.extend_from_slice(prefix);
    Ok(Some(out))
}

/// The fixed start of a sealed file: how many bytes to read to know the whole header.
pub const HEADER_START: usize = MAGIC.len() + 2;

/// The length of the wrapped key the first [`HEADER_START`] bytes announce (the rest of the
/// header is that many bytes plus the nonce prefix).
pub fn wrapped_len(start: &[u8]) -> Result<usize, SealError> {
    if start.len() < HEADER_START || &start[..MAGIC.len()] != MAGIC {
        return Err(SealError::BadHeader);
    }
    let len = usize::from(u16::from_be_bytes([start[8], start[9]]));
    if len == 0 || len > MAX_WRAPPED {
        return Err(SealError::BadHeader);
    }
    Ok(len + PREFIX)
}

/// An opened sealed file: its plaintext length, where a plaintext offset's chunk lies, and the
/// chunks' opening.
pub struct SealedFile {
    cipher: ChaCha20Poly1305,
    prefix: [u8; PREFIX],
    header_len: u64,
    chunks: u64,
    plain_len: u64,
}

impl SealedFile {
    /// Opens the file of recording `recording_id`, `file_len` bytes long, whose header's rest
    /// (after [`HEADER_START`]) is `rest`.
    pub fn open(
        sealer: &Sealer,
        recording_id: &str,
        rest: &[u8],
        file_len: u64,
    ) -> Result<Self, SealError> {
        if rest.len() <= PREFIX {
            return Err(SealError::BadHeader);
        }
        let (wrapped, prefix) = rest.split_at(rest.len() - PREFIX);
        let wrapped = std::str::from_utf8(wrapped).map_err(|_| SealError::BadHeader)?;
        let key = unwrap_data_key(sealer, recording_id, wrapped)?;
        let header_len = (HEADER_START + rest.len()) as u64;
        let body = file_len
            .checked_sub(header_len)
            .ok_or(SealError::BadHeader)?;
        let sealed_chunk = (CHUNK + TAG) as u64;
        let chunks = body.div_ceil(sealed_chunk);
        // Every chunk carries a tag; the last holds at least one byte of audio.
        if chunks == 0 || body - (chunks - 1) * sealed_chunk <= TAG as u64 {
            return Err(SealError::Tampered(chunks.saturating_sub(1)));
        }
        let mut p = [0u8; PREFIX];
        p.copy_from_slice(prefix);
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key.as_slice())),
            prefix: p,
            header_len,
            chunks,
            plain_len: body - chunks * TAG as u64,
        })
    }

    /// The recording's length in plaintext bytes.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// The chunk holding plaintext offset `offset`, and where it starts in the file and in the
    /// plaintext.
    pub fn chunk_at(&self, offset: u64) -> (u64, u64, u64) {
        let index = offset / CHUNK as u64;
        let file_at = self.header_len + index * (CHUNK + TAG) as u64;
        (index, file_at, index * CHUNK as u64)
    }

    /// How many file bytes chunk `index` takes.
    pub fn sealed_len(&self, index: u64) -> usize {
        if index + 1 < self.chunks {
            CHUNK + TAG
        } else {
            let before = (self.chunks - 1) * CHUNK as u64;
            usize::try_from(self.plain_len - before).unwrap_or(CHUNK) + TAG
        }
    }

    /// The number of chunks.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// The plaintext of chunk `index`, read from the file as `sealed`.
    pub fn open_chunk(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let n = nonce(&self.prefix, index, index + 1 == self.chunks)?;
        self.cipher
            .decrypt(Nonce::from_slice(&n), sealed)
            .map_err(|_| SealError::Tampered(index))
    }
}

#[cfg(test)]
#[path = "recording_seal_tests.rs"]
mod tests;

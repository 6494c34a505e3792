//! A call recording as it waits on the edge's disk: sealed to the control plane's recording
//! key, so the edge writes audio it can no longer read, and a stolen edge disk holds none of it.
//!
//! The control plane keeps an X25519 recording keypair (its private half sealed at rest with
//! `auth.encryption_key`) and hands the public half to every edge in its configuration
//! snapshot. For each recording the edge draws a fresh 256-bit content key, seals it to that
//! public key (an ephemeral X25519 key, HKDF-SHA256 over the shared secret and both public
//! keys, ChaCha20-Poly1305 with the recording's id as associated data, so a header moved onto
//! another recording does not open) and forgets it when the call ends: nothing on the edge's
//! disk opens the spool, and after a crash the edge uploads the spool as it is.
//!
//! Layout: [`SPOOL_MAGIC`] (8 bytes), the recipient's public key (32), the ephemeral public key
//! (32), the sealed content key (48), then the audio in ChaCha20-Poly1305 chunks of
//! [`SPOOL_CHUNK`] plaintext bytes plus a 16-byte tag. A chunk's nonce is its number and a
//! last-chunk flag (the STREAM construction), so a flipped bit, reordered or dropped chunks and
//! a spool cut short fail to open. A finished spool ends with a flagged chunk of fewer than
//! [`SPOOL_CHUNK`] bytes (possibly none); a spool whose writer died has only whole unflagged
//! chunks (the edge cuts a torn tail off structurally, without the key), and its upload says so.
//!
//! Sans-IO, randomness an input: [`SpoolSealer`] turns plaintext into bytes to append;
//! [`SpoolReader`] turns the uploaded bytes back into plaintext, refusing anything altered.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// What a sealed spool starts with.
pub const SPOOL_MAGIC: &[u8; 8] = b"FRYSPL\0\x01";
/// Plaintext bytes per chunk: half a second of stereo 8 kHz audio, the most a crash can cost
/// beyond the recorder's own buffer.
pub const SPOOL_CHUNK: usize = 16 * 1024;
/// The authentication tag after each chunk.
pub const TAG: usize = 16;
/// A whole chunk as it lies in the spool.
pub const SEALED_CHUNK: usize = SPOOL_CHUNK + TAG;
/// The header's length: marker, recipient key, ephemeral key, sealed content key.
pub const SPOOL_HEADER_LEN: usize = SPOOL_MAGIC.len() + 32 + 32 + 32 + TAG;
/// The format name a sealed spool is uploaded under (a plaintext WAV of earlier versions is
/// `wav`).
pub const SEALED_WAV: &str = "wav-sealed";

const KDF_LABEL: &[u8] = b"freya recording spool v1";

/// Why a spool cannot be sealed or opened.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpoolError {
    /// The bytes do not start with [`SPOOL_MAGIC`], or the header is cut short.
    #[error("not a sealed recording spool (its header is missing or damaged)")]
    NotASpool,
    /// The spool is sealed to a public key whose private half is not among those given.
    #[error("the spool is sealed to recording key {0}, which this control plane does not hold")]
    UnknownKey(String),
    /// The content key does not open: the header was altered, or belongs to another recording.
    #[error("the spool's content key does not open (its header was altered or belongs to another recording)")]
    KeyDoesNotOpen,
    /// A chunk fails its authentication: altered, reordered, or from another spool.
    #[error("the spool fails its integrity check at chunk {0} (altered, reordered or cut)")]
    Tampered(u64),
    /// The spool's length is not a whole number of chunks with a last one (or, for an
    /// interrupted spool, of whole chunks).
    #[error("the spool's length fits no sequence of chunks{}", if *.interrupted { " (an interrupted spool holds whole chunks only)" } else { " ending in its last chunk: it was cut short" })]
    BadLength {
        /// Whether the upload said the spool's writer died.
        interrupted: bool,
    },
    /// More bytes came than the spool's length announced.
    #[error("the spool holds more bytes than announced")]
    TooLong,
    /// The recipient's public key is not a usable X25519 key (its shared secret is zero).
    #[error("the recording key is not a usable X25519 public key")]
    WeakKey,
    /// The cipher refused to seal (not expected).
    #[error("cannot seal the spool")]
    Seal,
}

/// The control plane's public recording key, as edges receive it (64 hex characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordingPublicKey(pub [u8; 32]);

impl RecordingPublicKey {
    /// Parses 64 hex characters; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).ok()?;
        Some(Self(key))
    }

    /// The key as 64 lowercase hex characters (also its id).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A private recording key (the control plane's; never on an edge).
#[derive(Clone)]
pub struct RecordingSecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RecordingSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordingSecretKey({})", self.public().to_hex())
    }
}

impl RecordingSecretKey {
    /// The key made from 32 random bytes (clamped as X25519 does).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes, to be sealed for storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// Its public half.
    pub fn public(&self) -> RecordingPublicKey {
        RecordingPublicKey(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }
}

/// The key that seals (or opens) the content key of a spool between `ephemeral` and
/// `recipient`, from their shared secret.
fn key_encryption_key(
    shared: MontgomeryPoint,
    ephemeral: &RecordingPublicKey,
    recipient: &RecordingPublicKey,
) -> Result<ChaCha20Poly1305, SpoolError> {
    let shared = Zeroizing::new(shared.to_bytes());
    if shared.iter().all(|&b| b == 0) {
        return Err(SpoolError::WeakKey);
    }
    let mut info = Vec::with_capacity(KDF_LABEL.len() + 64);
    info.extend_from_slice(KDF_LABEL);
    info.extend_from_slice(&ephemeral.0);
    info.extend_from_slice(&recipient.0);
    let mut kek = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, shared.as_slice())
        .expand(&info, kek.as_mut_slice())
        .map_err(|_| SpoolError::Seal)?;
    Ok(ChaCha20Poly1305::new(Key::from_slice(kek.as_slice())))
}

/// The nonce of chunk `index`: its number and whether it is the last.
fn chunk_nonce(index: u64, last: bool) -> Result<[u8; 12], SpoolError> {
    let counter = u32::try_from(index).map_err(|_| SpoolError::TooLong)?;
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Ok(n)
}

/// Seals a recording as it is written: [`SpoolSealer::new`] gives the header, then each
/// [`push`](SpoolSealer::push) appends every chunk it completes and
/// [`finish`](SpoolSealer::finish) the last one.
pub struct SpoolSealer {
    cipher: ChaCha20Poly1305,
    index: u64,
    pending: Vec<u8>,
}

impl SpoolSealer {
    /// A sealer for recording `recording_id` to `recipient`, with the caller's fresh random
    /// `content_key` and `ephemeral` secret (both forgotten with the sealer); and the header,
    /// the spool's first bytes.
    pub fn new(
        recipient: &RecordingPublicKey,
        recording_id: &str,
        content_key: [u8; 32],
        ephemeral: [u8; 32],
    ) -> Result<(Self, Vec<u8>), SpoolError> {
        let content_key = Zeroizing::new(content_key);
        let ephemeral = RecordingSecretKey::from_bytes(ephemeral);
        let ephemeral_public = ephemeral.public();
        let shared = MontgomeryPoint(recipient.0).mul_clamped(*ephemeral.0);
        let kek = key_encryption_key(shared, &ephemeral_public, recipient)?;
        let sealed_key = kek
            .encrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: content_key.as_slice(),
                    aad: recording_id.as_bytes(),
                },
            )
            .map_err(|_| SpoolError::Seal)?;
        let mut header = Vec::with_capacity(SPOOL_HEADER_LEN);
        header.extend_from_slice(SPOOL_MAGIC);
        header.extend_from_slice(&recipient.0);
        header.extend_from_slice(&ephemeral_public.0);
        header.extend_from_slice(&sealed_key);
        let sealer = Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(content_key.as_slice())),
            index: 0,
            pending: Vec::with_capacity(SPOOL_CHUNK),
        };
        Ok((sealer, header))
    }

    /// Takes `data`; appends to `out` every chunk it completes.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), SpoolError> {
        while !data.is_empty() {
            let take = (SPOOL_CHUNK - self.pending.len()).min(data.len());
            let (now, rest) = data.split_at(take);
            self.pending.extend_from_slice(now);
            data = rest;
            if self.pending.len() == SPOOL_CHUNK {
                self.seal_pending(false, out)?;
            }
        }
        Ok(())
    }

    /// Appends the last chunk (what is pending, possibly nothing) to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), SpoolError> {
        self.seal_pending(true, out)
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), SpoolError> {
        let nonce = chunk_nonce(self.index, last)?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), self.pending.as_slice())
            .map_err(|_| SpoolError::Seal)?;
        out.extend_from_slice(&sealed);
        self.pending.clear();
        self.index += 1;
        Ok(())
    }
}

/// How a spool of a given length divides into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLayout {
    /// Chunks after the header.
    pub chunks: u64,
    /// Whether the last chunk carries the last-chunk flag (a finished spool).
    pub ends_flagged: bool,
    /// Plaintext bytes the spool holds.
    pub plain_len: u64,
}

impl SpoolLayout {
    /// The layout of a spool `spool_len` bytes long, finished or (`interrupted`) left by a
    /// writer that died.
    pub fn of(spool_len: u64, interrupted: bool) -> Result<Self, SpoolError> {
        let body = spool_len
            .checked_sub(SPOOL_HEADER_LEN as u64)
            .ok_or(SpoolError::NotASpool)?;
        let sealed = SEALED_CHUNK as u64;
        let (whole, rest) = (body / sealed, body % sealed);
        let bad = SpoolError::BadLength { interrupted };
        let chunks = if interrupted {
            if rest != 0 {
                return Err(bad);
            }
            whole
        } else {
            if rest < TAG as u64 {
                return Err(bad);
            }
            whole + 1
        };
        Ok(Self {
            chunks,
            ends_flagged: !interrupted,
            plain_len: body - chunks * TAG as u64,
        })
    }

    /// The length of the spool's whole chunks when it is `spool_len` bytes long: what a
    /// spool whose writer died keeps, its torn tail cut off (`None` when its header is cut).
    pub fn whole_chunks_len(spool_len: u64) -> Option<u64> {
        let body = spool_len.checked_sub(SPOOL_HEADER_LEN as u64)?;
        Some(SPOOL_HEADER_LEN as u64 + body - body % SEALED_CHUNK as u64)
    }
}

/// Opens an uploaded spool as its bytes arrive: the header first, then every complete chunk,
/// in order, each checked before its plaintext is handed on.
pub struct SpoolReader {
    keys: Vec<RecordingSecretKey>,
    recording_id: String,
    layout: SpoolLayout,
    cipher: Option<ChaCha20Poly1305>,
    buffer: Vec<u8>,
    index: u64,
}

impl SpoolReader {
    /// A reader for recording `recording_id`'s spool of `spool_len` bytes (`interrupted`: its
    /// writer died, so no last chunk), openable with one of `keys`.
    pub fn new(
        keys: Vec<RecordingSecretKey>,
        recording_id: &str,
        spool_len: u64,
        interrupted: bool,
    ) -> Result<Self, SpoolError> {
        Ok(Self {
            keys,
            recording_id: recording_id.to_owned(),
            layout: SpoolLayout::of(spool_len, interrupted)?,
            cipher: None,
            buffer: Vec::with_capacity(SEALED_CHUNK),
            index: 0,
        })
    }

    /// The plaintext length the spool holds (checked as it is read).
    pub fn plain_len(&self) -> u64 {
        self.layout.plain_len
    }

    /// Takes the next uploaded bytes; appends the plaintext of every chunk they complete.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), SpoolError> {
        while !data.is_empty() {
            let want = match self.cipher {
                None => SPOOL_HEADER_LEN,
                Some(_) => self.chunk_len().ok_or(SpoolError::TooLong)?,
            };
            let take = (want - self.buffer.len()).min(data.len());
            let (now, rest) = data.split_at(take);
            self.buffer.extend_from_slice(now);
            data = rest;
            if self.buffer.len() == want {
                match &self.cipher {
                    None => self.cipher = Some(self.open_header()?),
                    Some(cipher) => {
                        let last = self.layout.ends_flagged && self.index + 1 == self.layout.chunks;
                        let nonce = chunk_nonce(self.index, last)?;
                        let plain = cipher
                            .decrypt(Nonce::from_slice(&nonce), self.buffer.as_slice())
                            .map_err(|_| SpoolError::Tampered(self.index))?;
                        out.extend_from_slice(&plain);
                        self.index += 1;
                    }
                }
                self.buffer.clear();
            }
        }
        Ok(())
    }

    /// Checks that every chunk the spool announced was read.
    pub fn finish(self) -> Result<(), SpoolError> {
        if self.cipher.is_none() {
            return Err(SpoolError::NotASpool);
        }
        if self.index != self.layout.chunks || !self.buffer.is_empty() {
            return Err(SpoolError::Tampered(self.index));
        }
        Ok(())
    }

    /// The sealed length of the next chunk; `None` once every chunk was read.
    fn chunk_len(&self) -> Option<usize> {
        if self.index >= self.layout.chunks {
            return None;
        }
        if self.index + 1 < self.layout.chunks || !self.layout.ends_flagged {
            return Some(SEALED_CHUNK);
        }
        let before = (self.layout.chunks - 1) * SPOOL_CHUNK as u64;
        usize::try_from(self.layout.plain_len - before)
            .ok()
            .map(|n| n + TAG)
    }

    /// Opens the content key in the header held in the buffer.
    fn open_header(&self) -> Result<ChaCha20Poly1305, SpoolError> {
        let header = self.buffer.as_slice();
        let (magic, rest) = header.split_at(SPOOL_MAGIC.len());
        if magic != SPOOL_MAGIC {
            return Err(SpoolError::NotASpool);
        }
        let (recipient, rest) = rest.split_at(32);
        let (ephemeral, sealed_key) = rest.split_at(32);
        let mut recipient_key = [0u8; 32];
        recipient_key.copy_from_slice(recipient);
        let recipient = RecordingPublicKey(recipient_key);
        let mut ephemeral_key = [0u8; 32];
        ephemeral_key.copy_from_slice(ephemeral);
        let ephemeral = RecordingPublicKey(ephemeral_key);
        let secret = self
            .keys
            .iter()
            .find(|k| k.public() == recipient)
            .ok_or_else(|| SpoolError::UnknownKey(recipient.to_hex()))?;
        let shared = MontgomeryPoint(ephemeral.0).mul_clamped(*secret.0);
        let kek = key_encryption_key(shared, &ephemeral, &recipient)
            .map_err(|_| SpoolError::KeyDoesNotOpen)?;
        let content_key = Zeroizing::new(
            kek.decrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: sealed_key,
                    aad: self.recording_id.as_bytes(),
                },
            )
            .map_err(|_| SpoolError::KeyDoesNotOpen)?,
        );
        if content_key.len() != 32 {
            return Err(SpoolError::KeyDoesNotOpen);
        }
        Ok(ChaCha20Poly1305::new(Key::from_slice(&content_key)))
    }
}

#[cfg(test)]
#[path = "recording_spool_tests.rs"]
mod tests;

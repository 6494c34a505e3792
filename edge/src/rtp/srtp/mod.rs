//! SRTP and SRTCP (RFC 3711), with the suites SDES negotiates (`sip::sdp::crypto`):
//! AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM (RFC 7714). Sans-IO: a call's leg hands each
//! packet in and sends or delivers what comes out; no socket or clock in here.
//!
//! Only the framing is ours — key derivation ([`kdf`]), the packet index and rollover counter
//! (RFC 3711 section 3.3.1 and appendix A), the SRTCP index, the IVs and what is authenticated.
//! The primitives are maintained crates: AES and its counter mode (`aes`, `ctr`), HMAC-SHA1
//! (`hmac`, `sha1`), and AES-GCM from `ring`.
//!
//! Receiving, a packet's stream state (rollover counter, highest sequence number, replay list)
//! changes only after it authenticated, so junk, a wrong key or a replay flood is refused
//! without moving anything: the caller counts the refusal and drops the packet, and the call
//! goes on. Each direction keeps the state of up to [`MAX_STREAMS`] SSRCs.

pub mod kdf;
pub mod replay;
mod transform;

use thiserror::Error;

use crate::sip::sdp::{KeyMaterial, SrtpKeys, SrtpSuite};
use replay::Replay;
use transform::{Direction, SessionKeys};

/// SSRCs whose state one direction keeps; a further one replaces the least recently used.
pub const MAX_STREAMS: usize = 4;

/// The smallest replay window RFC 3711 section 3.3.2 allows (and our default).
pub const DEFAULT_REPLAY_WINDOW: u32 = 128;

/// Why a packet was not protected or not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// Too short, or its RTP header runs past its end.
    #[error("malformed packet")]
    Malformed,
    /// The authentication tag does not match: tampered, junk, or another key.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// Already received (RFC 3711 section 3.3.2).
    #[error("replayed packet")]
    Replayed,
    /// Behind the replay window.
    #[error("packet older than the replay window")]
    TooOld,
}

impl SrtpError {
    /// The metric label: `malformed`, `auth`, `replay`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AuthenticationFailed => "auth",
            Self::Replayed | Self::TooOld => "replay",
        }
    }
}

impl From<Replay> for SrtpError {
    fn from(r: Replay) -> Self {
        match r {
            Replay::Duplicate => Self::Replayed,
            Replay::TooOld => Self::TooOld,
        }
    }
}

/// One call's SRTP both ways: what we send is protected with our key, what we receive is
/// checked and decrypted with the peer's.
pub struct SrtpSession {
    outbound: Direction,
    inbound: Direction,
}

impl SrtpSession {
    /// The session for keys agreed in SDP, with a replay window of `replay_window` packets.
    pub fn new(keys: &SrtpKeys, replay_window: u32) -> Self {
        Self {
            outbound: Direction::new(SessionKeys::derive(&keys.ours), replay_window),
            inbound: Direction::new(SessionKeys::derive(&keys.theirs), replay_window),
        }
    }

    /// A session from raw key material both ways (tests and benches).
    pub fn from_material(ours: &KeyMaterial, theirs: &KeyMaterial, replay_window: u32) -> Self {
        Self::new(
            &SrtpKeys {
                ours: ours.clone(),
                theirs: theirs.clone(),
            },
            replay_window,
        )
    }

    /// The suite in use.
    pub fn suite(&self) -> SrtpSuite {
        self.outbound.suite()
    }

    /// Protects the RTP packet in `packet` in place, appending its tag (the buffer grows by
    /// 10 or 16 octets; reuse it and it stops allocating).
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.outbound.protect_rtp(packet)
    }

    /// Checks and decrypts the SRTP packet in `packet`; returns the plain RTP packet's length.
    pub fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        self.inbound.unprotect_rtp(packet)
    }

    /// Protects the (compound) RTCP packet in `packet` in place: encrypted after its first
    /// eight octets, then the E flag and SRTCP index, then the tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.outbound.protect_rtcp(packet)
    }

    /// Checks and decrypts the SRTCP packet in `packet`; returns the RTCP packet's length.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        self.inbound.unprotect_rtcp(packet)
    }
}

/// A session for receiving only, with `theirs` (tests of the transform against published
/// vectors, which give one direction's keys).
#[cfg(test)]
pub(crate) fn one_way(theirs: &KeyMaterial) -> SrtpSession {
    SrtpSession::from_material(theirs, theirs, DEFAULT_REPLAY_WINDOW)
}

/// The same with session keys given directly (RFC 7714's vectors skip key derivation).
#[cfg(test)]
pub(crate) fn with_session_keys(suite: SrtpSuite, key: &[u8; 16], salt: &[u8]) -> SrtpSession {
    let keys = || SessionKeys::given(suite, key, salt);
    SrtpSession {
        outbound: Direction::new(keys(), DEFAULT_REPLAY_WINDOW),
        inbound: Direction::new(keys(), DEFAULT_REPLAY_WINDOW),
    }
}

#[cfg(test)]
impl SrtpSession {
    /// Sets the next SRTCP index we send on SSRC `ssrc` (vectors start mid-stream).
    pub(crate) fn set_srtcp_index(&mut self, ssrc: u32, index: u32) {
        self.outbound.set_srtcp_index(ssrc, index);
    }

    /// Sets the rollover counter of our outgoing stream `ssrc` (vectors with a ROC).
    pub(crate) fn set_roc(&mut self, ssrc: u32, roc: u32, last_seq: u16) {
        self.outbound.set_roc(ssrc, roc, last_seq);
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

//! SRTP key derivation (RFC 3711 section 4.3): the AES-CM PRF turns a call's master key and
//! salt into the session keys each direction encrypts and authenticates with, one set for RTP
//! (labels 0, 1, 2) and one for RTCP (labels 3, 4, 5).
//!
//! The key derivation rate is 0 (SDES keys without `KDR=`): the session keys are derived once,
//! at packet index 0, and never again. AEAD_AES_128_GCM uses the same PRF (RFC 7714 section
//! 11) with its 96-bit salt padded with zero octets to the PRF's 112 bits.

use aes::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroize;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// What a session key is for: the label of RFC 3711 section 4.3.1 (and 4.3.2 for SRTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `k_e` for SRTP (0x00).
    RtpEncryption = 0,
    /// `k_a` for SRTP (0x01).
    RtpAuthentication = 1,
    /// `k_s` for SRTP (0x02).
    RtpSalt = 2,
    /// `k_e` for SRTCP (0x03).
    RtcpEncryption = 3,
    /// `k_a` for SRTCP (0x04).
    RtcpAuthentication = 4,
    /// `k_s` for SRTCP (0x05).
    RtcpSalt = 5,
}

/// Fills `out` with `PRF(master_key, x)` for `label` at packet index 0: AES-128 in counter
/// mode from `IV = (master_salt XOR label << 48) * 2^16` (RFC 3711 section 4.3.1 with
/// `key_derivation_rate = 0`). `master_salt` is 14 octets, or 12 (RFC 7714), padded with zeros.
pub fn derive(master_key: &[u8; 16], master_salt: &[u8], label: Label, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    let salt_len = master_salt.len().min(14);
    iv[..salt_len].copy_from_slice(&master_salt[..salt_len]);
    // key_id = label || r (48 bits, 0 here), right-aligned in the 112-bit x: the label's octet
    // is the eighth of the fourteen.
    iv[7] ^= label as u8;
    out.fill(0);
    let mut keystream = Aes128Ctr::new(master_key.into(), &iv.into());
    keystream.apply_keystream(out);
    iv.zeroize();
}

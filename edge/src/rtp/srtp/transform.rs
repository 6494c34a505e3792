//! The packet transforms of one direction: session keys derived from a master key (RFC 3711
//! section 4.3), each SSRC's rollover counter, highest sequence number, replay lists and SRTCP
//! index, and the IVs, encryption and tags of RFC 3711 (AES-CM + HMAC-SHA1-80) and RFC 7714
//! (AES-GCM) for RTP and RTCP.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha1::Sha1;
use zeroize::Zeroize;

use super::kdf::{self, Label};
use super::replay::ReplayWindow;
use super::{SrtpError, MAX_STREAMS};
use crate::sip::sdp::{KeyMaterial, SrtpSuite};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// HMAC-SHA1's tag as AES_CM_128_HMAC_SHA1_80 truncates it.
const CM_TAG: usize = 10;
/// AES-GCM's tag (RFC 7714 section 7).
const GCM_TAG: usize = 16;
/// The E flag and SRTCP index word.
const SRTCP_INDEX_LEN: usize = 4;
/// RTCP's fixed part left in the clear: header and the sender's SSRC.
const RTCP_CLEAR: usize = 8;

/// Keys for one of RTP or RTCP.
enum Keys {
    /// AES-CM: the cipher's key schedule, the 112-bit session salt, and HMAC-SHA1 keyed with
    /// the session authentication key (cloned per packet, so the key is hashed once).
    Cm(Box<CmKeys>),
    /// AES-GCM: ring's key and the 96-bit session salt.
    Gcm {
        key: Box<LessSafeKey>,
        salt: [u8; 12],
    },
}

/// AES-CM's keys (boxed in [`Keys`]: the key schedule and HMAC state are large).
struct CmKeys {
    aes: aes::Aes128,
    salt: [u8; 14],
    mac: Hmac<Sha1>,
}

/// A direction's session keys for RTP and RTCP.
pub(super) struct SessionKeys {
    suite: SrtpSuite,
    rtp: Keys,
    rtcp: Keys,
}

impl SessionKeys {
    /// Derives the six session keys (four for GCM, which has no separate authentication key)
    /// from a master key and salt.
    pub(super) fn derive(master: &KeyMaterial) -> Self {
        let suite = master.suite();
        let derive = |enc: Label, auth: Label, salt: Label| {
            let mut k_e = [0u8; 16];
            kdf::derive(master.master_key(), master.master_salt(), enc, &mut k_e);
            let mut k_s = [0u8; 14];
            let salt_len = suite.salt_len();
            kdf::derive(
                master.master_key(),
                master.master_salt(),
                salt,
                &mut k_s[..salt_len],
            );
            let keys = match suite {
                SrtpSuite::AesCm128HmacSha1_80 => {
                    let mut k_a = [0u8; 20];
                    kdf::derive(master.master_key(), master.master_salt(), auth, &mut k_a);
                    let keys = cm_keys(&k_e, &k_s, &k_a);
                    k_a.zeroize();
                    keys
                }
                SrtpSuite::AeadAes128Gcm => gcm_keys(&k_e, &k_s[..12]),
            };
            k_e.zeroize();
            k_s.zeroize();
            keys
        };
        Self {
            suite,
            rtp: derive(
                Label::RtpEncryption,
                Label::RtpAuthentication,
                Label::RtpSalt,
            ),
            rtcp: derive(
                Label::RtcpEncryption,
                Label::RtcpAuthentication,
                Label::RtcpSalt,
            ),
        }
    }

    /// Session keys given directly, the same for RTP and RTCP (RFC 7714's vectors).
    #[cfg(test)]
    pub(super) fn given(suite: SrtpSuite, key: &[u8; 16], salt: &[u8]) -> Self {
        let keys = || match suite {
            SrtpSuite::AeadAes128Gcm => gcm_keys(key, salt),
            SrtpSuite::AesCm128HmacSha1_80 => {
                let mut s = [0u8; 14];
                s[..salt.len().min(14)].copy_from_slice(&salt[..salt.len().min(14)]);
                cm_keys(key, &s, &[0; 20])
            }
        };
        Self {
            suite,
            rtp: keys(),
            rtcp: keys(),
        }
    }
}

fn cm_keys(k_e: &[u8; 16], k_s: &[u8; 14], k_a: &[u8; 20]) -> Keys {
    Keys::Cm(Box::new(CmKeys {
        aes: aes::Aes128::new(k_e.into()),
        salt: *k_s,
        // HMAC takes a key of any length: this cannot fail.
        mac: <Hmac<Sha1> as Mac>::new_from_slice(k_a).unwrap_or_else(|_| unreachable!()),
    }))
}

fn gcm_keys(k_e: &[u8; 16], k_s: &[u8]) -> Keys {
    let mut salt = [0u8; 12];
    salt.copy_from_slice(&k_s[..12]);
    // AES-128-GCM takes exactly a 16-octet key, which this is.
    let key = UnboundKey::new(&aead::AES_128_GCM, k_e).unwrap_or_else(|_| unreachable!());
    Keys::Gcm {
        key: Box::new(LessSafeKey::new(key)),
        salt,
    }
}

/// What one direction knows of one SSRC.
struct Stream {
    ssrc: u32,
    /// The rollover counter: how often the sequence number wrapped.
    roc: u32,
    /// The highest sequence number in the current ROC (`s_l` of RFC 3711 appendix A).
    highest: u16,
    started: bool,
    rtp_replay: ReplayWindow,
    rtcp_replay: ReplayWindow,
    /// The SRTCP index of the next report we send on this SSRC.
    srtcp_next: u32,
    /// When the stream was last used, on the direction's packet count (least recently used
    /// goes first).
    used: u64,
}

/// One direction of a session: keys and the streams seen or sent.
pub(super) struct Direction {
    keys: SessionKeys,
    streams: Vec<Stream>,
    window: u32,
    packets: u64,
}

impl Direction {
    pub(super) fn new(keys: SessionKeys, window: u32) -> Self {
        Self {
            keys,
            streams: Vec::with_capacity(MAX_STREAMS),
            window,
            packets: 0,
        }
    }

    pub(super) fn suite(&self) -> SrtpSuite {
        self.keys.suite
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    /// The stream of `ssrc`, made (in place of the least recently used one when full).
    fn stream(&mut self, ssrc: u32) -> &mut Stream {
        self.packets += 1;
        let at = match self.find(ssrc) {
            Some(at) => at,
            None => {
                let fresh = Stream {
                    ssrc,
                    roc: 0,
                    highest: 0,
                    started: false,
                    rtp_replay: ReplayWindow::new(self.window),
                    rtcp_replay: ReplayWindow::new(self.window),
                    srtcp_next: 0,
                    used: 0,
                };
                if self.streams.len() < MAX_STREAMS {
                    self.streams.push(fresh);
                    self.streams.len() - 1
                } else {
                    let oldest = (0..self.streams.len())
                        .min_by_key(|&i| self.streams[i].used)
                        .unwrap_or(0);
                    self.streams[oldest] = fresh;
                    oldest
                }
            }
        };
        let stream = &mut self.streams[at];
        stream.used = self.packets;
        stream
    }

    pub(super) fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header = rtp_header_len(packet)?;
        let (seq, ssrc) = seq_and_ssrc(packet);
        let stream = self.stream(ssrc);
        if !stream.started {
            stream.started = true;
            stream.highest = seq;
        } else if seq < stream.highest && stream.highest - seq > 0x8000 {
            stream.roc = stream.roc.wrapping_add(1);
            stream.highest = seq;
        } else if seq > stream.highest {
            stream.highest = seq;
        }
        let roc = stream.roc;
        match &self.keys.rtp {
            Keys::Cm(cm) => {
                let index = (u64::from(roc) << 16) | u64::from(seq);
                cm_apply(&cm.aes, &cm.salt, ssrc, index, &mut packet[header..]);
                let mut mac = cm.mac.clone();
                mac.update(packet);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                packet.extend_from_slice(&tag[..CM_TAG]);
            }
            Keys::Gcm { key, salt } => {
                let nonce = rtp_nonce(salt, ssrc, roc, seq);
                let (head, body) = packet.split_at_mut(header);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(&*head), body)
                    .map_err(|_| SrtpError::Malformed)?;
                packet.extend_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }

    pub(super) fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.tag_len();
        let len = packet
            .len()
            .checked_sub(tag_len)
            .ok_or(SrtpError::Malformed)?;
        let header = rtp_header_len(&packet[..len])?;
        let (seq, ssrc) = seq_and_ssrc(packet);
        let (roc, index) = match self.find(ssrc).map(|at| &self.streams[at]) {
            Some(s) if s.started => {
                let v = estimate_roc(s.roc, s.highest, seq);
                let index = (u64::from(v) << 16) | u64::from(seq);
                s.rtp_replay.check(index)?;
                (v, index)
            }
            _ => (0, u64::from(seq)),
        };
        match &self.keys.rtp {
            Keys::Cm(cm) => {
                let mut mac = cm.mac.clone();
                mac.update(&packet[..len]);
                mac.update(&roc.to_be_bytes());
                mac.verify_truncated_left(&packet[len..])
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
                cm_apply(&cm.aes, &cm.salt, ssrc, index, &mut packet[header..len]);
            }
            Keys::Gcm { key, salt } => {
                let nonce = rtp_nonce(salt, ssrc, roc, seq);
                let (head, body) = packet.split_at_mut(header);
                key.open_in_place(nonce, Aad::from(&*head), body)
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
            }
        }
        let stream = self.stream(ssrc);
        if !stream.started {
            stream.started = true;
            stream.highest = seq;
        } else if roc == stream.roc.wrapping_add(1) {
            stream.roc = roc;
            stream.highest = seq;
        } else if roc == stream.roc && seq > stream.highest {
            stream.highest = seq;
        }
        stream.rtp_replay.accept(index);
        Ok(len)
    }

    pub(super) fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < RTCP_CLEAR {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let stream = self.stream(ssrc);
        let index = stream.srtcp_next;
        stream.srtcp_next = (index + 1) & 0x7fff_ffff;
        let e_index = (0x8000_0000 | index).to_be_bytes();
        match &self.keys.rtcp {
            Keys::Cm(cm) => {
                cm_apply(
                    &cm.aes,
                    &cm.salt,
                    ssrc,
                    u64::from(index),
                    &mut packet[RTCP_CLEAR..],
                );
                packet.extend_from_slice(&e_index);
                let mut mac = cm.mac.clone();
                mac.update(packet);
                let tag = mac.finalize().into_bytes();
                packet.extend_from_slice(&tag[..CM_TAG]);
            }
            Keys::Gcm { key, salt } => {
                let nonce = rtcp_nonce(salt, ssrc, index);
                let mut aad = [0u8; RTCP_CLEAR + SRTCP_INDEX_LEN];
                aad[..RTCP_CLEAR].copy_from_slice(&packet[..RTCP_CLEAR]);
                aad[RTCP_CLEAR..].copy_from_slice(&e_index);
                let tag = key
                    .seal_in_place_separate_tag(
                        nonce,
                        Aad::from(&aad[..]),
                        &mut packet[RTCP_CLEAR..],
                    )
                    .map_err(|_| SrtpError::Malformed)?;
                packet.extend_from_slice(tag.as_ref());
                packet.extend_from_slice(&e_index);
            }
        }
        Ok(())
    }

    pub(super) fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let trailer = self.tag_len() + SRTCP_INDEX_LEN;
        if packet.len() < RTCP_CLEAR + trailer {
            return Err(SrtpError::Malformed);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let len = packet.len() - trailer;
        let word_at = match self.keys.rtcp {
            Keys::Cm(_) => len,
            Keys::Gcm { .. } => packet.len() - SRTCP_INDEX_LEN,
        };
        let e_index: [u8; 4] = packet[word_at..word_at + 4]
            .try_into()
            .map_err(|_| SrtpError::Malformed)?;
        let word = u32::from_be_bytes(e_index);
        let (encrypted, index) = (word & 0x8000_0000 != 0, word & 0x7fff_ffff);
        if let Some(at) = self.find(ssrc) {
            self.streams[at].rtcp_replay.check(u64::from(index))?;
        }
        match &self.keys.rtcp {
            Keys::Cm(cm) => {
                let mut mac = cm.mac.clone();
                mac.update(&packet[..len + SRTCP_INDEX_LEN]);
                mac.verify_truncated_left(&packet[len + SRTCP_INDEX_LEN..])
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
                if encrypted {
                    cm_apply(
                        &cm.aes,
                        &cm.salt,
                        ssrc,
                        u64::from(index),
                        &mut packet[RTCP_CLEAR..len],
                    );
                }
            }
            Keys::Gcm { key, salt } => {
                let nonce = rtcp_nonce(salt, ssrc, index);
                let end = packet.len() - SRTCP_INDEX_LEN;
                let opened = if encrypted {
                    let mut aad = [0u8; RTCP_CLEAR + SRTCP_INDEX_LEN];
                    aad[..RTCP_CLEAR].copy_from_slice(&packet[..RTCP_CLEAR]);
                    aad[RTCP_CLEAR..].copy_from_slice(&e_index);
                    key.open_in_place(nonce, Aad::from(&aad[..]), &mut packet[RTCP_CLEAR..end])
                        .map(|_| ())
                } else {
                    // Authenticated only (RFC 7714 section 9.2): all of it is associated data.
                    let mut aad = Vec::with_capacity(len + SRTCP_INDEX_LEN);
                    aad.extend_from_slice(&packet[..len]);
                    aad.extend_from_slice(&e_index);
                    key.open_in_place(nonce, Aad::from(&aad[..]), &mut packet[len..end])
                        .map(|_| ())
                };
                opened.map_err(|_| SrtpError::AuthenticationFailed)?;
            }
        }
        self.stream(ssrc).rtcp_replay.accept(u64::from(index));
        Ok(len)
    }

    fn tag_len(&self) -> usize {
        match self.keys.suite {
            SrtpSuite::AesCm128HmacSha1_80 => CM_TAG,
            SrtpSuite::AeadAes128Gcm => GCM_TAG,
        }
    }

    #[cfg(test)]
    pub(super) fn set_srtcp_index(&mut self, ssrc: u32, index: u32) {
        self.stream(ssrc).srtcp_next = index;
    }

    #[cfg(test)]
    pub(super) fn set_roc(&mut self, ssrc: u32, roc: u32, last_seq: u16) {
        let stream = self.stream(ssrc);
        stream.started = true;
        stream.roc = roc;
        stream.highest = last_seq;
    }
}

/// The RTP header's length with its CSRCs and extension (RFC 3550 section 5.1): what stays
/// in the clear.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

fn seq_and_ssrc(packet: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([packet[2], packet[3]]),
        u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    )
}

/// The rollover counter a received sequence number belongs to (RFC 3711 appendix A): the
/// current one, or its neighbour when `seq` is closer to the far side of a wrap.
fn estimate_roc(roc: u32, highest: u16, seq: u16) -> u32 {
    if highest < 0x8000 {
        if i32::from(seq) - i32::from(highest) > 0x8000 {
            return roc.wrapping_sub(1);
        }
    } else if i32::from(highest) - 0x8000 > i32::from(seq) {
        return roc.wrapping_add(1);
    }
    roc
}

/// AES-CM (RFC 3711 section 4.1.1): the keystream from `IV = (k_s * 2^16) XOR (SSRC * 2^64)
/// XOR (index * 2^16)` XORed onto `data`.
fn cm_apply(aes: &aes::Aes128, salt: &[u8; 14], ssrc: u32, index: u64, data: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= i;
    }
    let mut keystream = Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &iv.into()));
    keystream.apply_keystream(data);
}

/// RFC 7714 section 8.1: `00 00 || SSRC || ROC || SEQ` XOR the session salt.
fn rtp_nonce(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(iv)
}

/// RFC 7714 section 9.1: `00 00 || SSRC || 00 00 || 0 || SRTCP index` XOR the session salt.
fn rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(iv)
}

#[cfg(test)]
pub(super) fn roc_estimate(roc: u32, highest: u16, seq: u16) -> u32 {
    estimate_roc(roc, highest, seq)
}

#[cfg(test)]
pub(super) fn aes_cm_keystream(key: &[u8; 16], salt: &[u8; 14], index: u64, out: &mut [u8]) {
    out.fill(0);
    cm_apply(&aes::Aes128::new(key.into()), salt, 0, index, out);
}

//! SDES keys for SRTP (RFC 4568): the `a=crypto` attributes of an `RTP/SAVP` stream, the two
//! suites we speak (AES_CM_128_HMAC_SHA1_80 of RFC 3711 and AEAD_AES_128_GCM of RFC 7714), and
//! the policy that says whether a call may, must or must not be encrypted.
//!
//! A crypto line we cannot use (another suite, an MKI, a key-derivation rate or any other
//! session parameter, broken base64) is skipped, never an error: the offer may carry another
//! line we can use (RFC 4568 section 5.1.1). Key material is generated per call from the
//! operating system's CSPRNG, never printed (`Debug` shows the suite only) and wiped on drop.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroize;

/// An SRTP protection profile we can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// AES-128 in counter mode, HMAC-SHA1 tag of 80 bits (RFC 3711, RFC 4568 section 6.2).
    AesCm128HmacSha1_80,
    /// AES-128 in Galois/counter mode, 128-bit tag (RFC 7714 section 12).
    AeadAes128Gcm,
}

impl SrtpSuite {
    /// Every suite, in our order of preference for offers.
    pub const ALL: [Self; 2] = [Self::AeadAes128Gcm, Self::AesCm128HmacSha1_80];

    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite an `a=crypto` name means (case as written in the RFCs).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The master salt's length in octets: 112 bits for AES-CM, 96 for GCM.
    pub fn salt_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 14,
            Self::AeadAes128Gcm => 12,
        }
    }

    /// The `inline:` key material's length: a 128-bit master key and the salt.
    pub fn material_len(self) -> usize {
        16 + self.salt_len()
    }
}

/// A master key and salt for one direction of one call. Wiped when dropped; `Debug` prints
/// only the suite.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    suite: SrtpSuite,
    bytes: [u8; 30],
}

impl KeyMaterial {
    /// Fresh key material for `suite` from the operating system's CSPRNG.
    pub fn generate(suite: SrtpSuite) -> Self {
        let mut bytes = [0u8; 30];
        OsRng.fill_bytes(&mut bytes[..suite.material_len()]);
        Self { suite, bytes }
    }

    /// Key material from raw octets (master key then salt); `None` if the length is wrong.
    pub fn from_bytes(suite: SrtpSuite, raw: &[u8]) -> Option<Self> {
        if raw.len() != suite.material_len() {
            return None;
        }
        let mut bytes = [0u8; 30];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Self { suite, bytes })
    }

    /// The suite this material is for.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The 128-bit master key.
    pub fn master_key(&self) -> &[u8; 16] {
        self.bytes[..16].try_into().unwrap_or(&[0; 16])
    }

    /// The master salt (14 or 12 octets).
    pub fn master_salt(&self) -> &[u8] {
        &self.bytes[16..self.suite.material_len()]
    }

    /// The `inline:` value: the key and salt in base64.
    fn inline(&self) -> String {
        STANDARD.encode(&self.bytes[..self.suite.material_len()])
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial({}, redacted)", self.suite.name())
    }
}

/// One usable `a=crypto` line of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The line's tag, echoed in the answer.
    pub tag: u32,
    /// The sender's key material (its suite is the line's).
    pub key: KeyMaterial,
}

impl CryptoAttribute {
    /// Reads `<tag> <suite> inline:<key||salt>[|<lifetime>] ` as RFC 4568 section 9.1 writes it;
    /// `None` for anything we cannot use (see the module notes).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let tag = parts.next()?.parse().ok()?;
        let suite = SrtpSuite::from_name(parts.next()?)?;
        let params = parts.next()?.strip_prefix("inline:")?;
        if parts.next().is_some() {
            return None; // a session parameter (KDR, UNENCRYPTED_SRTP, ...): not supported
        }
        let mut fields = params.split('|');
        let encoded = fields.next()?;
        // 30 octets are 40 base64 characters: anything longer is not a key of ours, and is
        // refused before it is decoded.
        if encoded.len() > 40 {
            return None;
        }
        for field in fields {
            // A lifetime (`2^31` or digits) is fine; an MKI (`1:4`) is not supported, nor is
            // anything else.
            if !is_lifetime(field) {
                return None;
            }
        }
        let mut raw = STANDARD.decode(encoded).ok()?;
        let key = KeyMaterial::from_bytes(suite, &raw);
        raw.zeroize();
        Some(Self { tag, key: key? })
    }

    /// The attribute's value for `a=crypto:` with `key` as the key material.
    pub fn line(tag: u32, key: &KeyMaterial) -> String {
        format!(
            "a=crypto:{tag} {} inline:{}\r\n",
            key.suite.name(),
            key.inline()
        )
    }
}

/// A key lifetime as RFC 4568 section 9.1 writes it: decimal digits or `2^` and digits.
fn is_lifetime(field: &str) -> bool {
    let digits = field.strip_prefix("2^").unwrap_or(field);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a call's media is encrypted: per trunk for outbound calls, by the edge's inbound
/// policy for calls to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only; an offer with only `RTP/SAVP` streams is refused (488).
    #[default]
    Disabled,
    /// SRTP when the other side offers it (inbound), plain RTP offered (outbound).
    Optional,
    /// SRTP or nothing: a plain RTP offer is refused with 488; our offers are `RTP/SAVP`.
    Required,
}

/// The keys a negotiated SRTP stream runs with: ours to protect what we send, theirs to check
/// and decrypt what we receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Our master key and salt (what we announced).
    pub ours: KeyMaterial,
    /// The peer's master key and salt (what it announced).
    pub theirs: KeyMaterial,
}

impl SrtpKeys {
    /// The suite both keys are for.
    pub fn suite(&self) -> SrtpSuite {
        self.ours.suite
    }
}

/// What an offered audio stream's transport allows under `policy`: `Ok(None)` for plain RTP,
/// `Ok(Some(line))` for `RTP/SAVP` with the first of its crypto lines we can use, or why the
/// stream cannot be answered (`Err(None)`: a transport we never answer, such as DTLS-SRTP's
/// `UDP/TLS/RTP/SAVP`, skipped like a stream of another media type).
pub(crate) fn stream_keys(
    media: &super::MediaDescription,
    policy: SrtpPolicy,
) -> Result<Option<CryptoAttribute>, Option<super::SdpError>> {
    use super::SdpError;
    let proto = media.proto.as_str();
    let is = |p: &str| proto.eq_ignore_ascii_case(p);
    if is("RTP/AVP") || is("RTP/AVPF") {
        return match policy {
            SrtpPolicy::Required => Err(Some(SdpError::SrtpRequired)),
            SrtpPolicy::Disabled | SrtpPolicy::Optional => Ok(None),
        };
    }
    if !(is("RTP/SAVP") || is("RTP/SAVPF")) {
        return Err(None);
    }
    if policy == SrtpPolicy::Disabled {
        return Err(Some(SdpError::SrtpDisabled));
    }
    match media.cryptos.first() {
        Some(line) => Ok(Some(line.clone())),
        None => Err(Some(SdpError::NoCommonCrypto)),
    }
}

/// Rewrites every `a=crypto` line of `text` (an SDP body, or a SIP message carrying one) to
/// keep its tag and suite and hide its key: for logs and traces.
pub fn redact_crypto(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.find("a=crypto:") {
            Some(at) => {
                let value = &line[at..];
                let kept = value
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push_str(&line[..at]);
                out.push_str(&kept);
                out.push_str(" inline:[redacted]");
                if line.ends_with("\r\n") {
                    out.push_str("\r\n");
                } else if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc_4568_lines_and_skips_what_we_cannot_use() {
        // RFC 4568 section 8.1's example key, with and without a lifetime.
        let line = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let parsed = CryptoAttribute::parse(line).expect("usable");
        assert_eq!(parsed.tag, 1);
        assert_eq!(parsed.key.suite(), SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(parsed.key.master_salt().len(), 14);
        for unusable in [
            "1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=1",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|soon",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBRPS1u",
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80",
            "",
        ] {
            assert_eq!(CryptoAttribute::parse(unusable), None, "{unusable}");
        }
    }

    #[test]
    fn generated_keys_differ_round_trip_and_never_print() {
        for suite in SrtpSuite::ALL {
            let a = KeyMaterial::generate(suite);
            let b = KeyMaterial::generate(suite);
            assert_ne!(a, b);
            let line = CryptoAttribute::line(7, &a);
            let value = line.trim_end().strip_prefix("a=crypto:").unwrap();
            let back = CryptoAttribute::parse(value).unwrap();
            assert_eq!((back.tag, back.key), (7, a.clone()));
            let shown = format!("{a:?}");
            assert!(!shown.contains(&a.inline()) && shown.contains("redacted"));
        }
    }

    #[test]
    fn redaction_keeps_the_suite_and_hides_the_key() {
        let key = KeyMaterial::generate(SrtpSuite::AeadAes128Gcm);
        let body = format!(
            "v=0\r\nm=audio 4000 RTP/SAVP 0\r\n{}a=sendrecv\r\n",
            CryptoAttribute::line(1, &key)
        );
        let redacted = redact_crypto(&body);
        assert!(!redacted.contains(&key.inline()));
        assert!(
            redacted.contains("a=crypto:1 AEAD_AES_128_GCM inline:[redacted]\r\na=sendrecv\r\n")
        );
        assert_eq!(redact_crypto("no keys\r\n"), "no keys\r\n");
    }
}

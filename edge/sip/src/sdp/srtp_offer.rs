//! SRTP in our own offers (outbound calls through a trunk with `srtp` set): the keys we offer
//! ([`OfferedKeys`], one line per suite, fresh from the CSPRNG for every INVITE), our plain
//! offer rewritten to carry them ([`secure_offer`]), and the answer's key checked against what
//! we offered ([`answer_keys`]).
//!
//! `required` offers `RTP/SAVP` only. `optional` offers best-effort SRTP: the keys in a plain
//! `RTP/AVP` offer, which an SDES-capable peer answers with its own key and any other peer
//! answers as plain RTP, ignoring an attribute it does not know (RFC 4566 section 5.13), in one
//! round trip and without RFC 5939 capability negotiation, which few peers implement. Asterisk
//! (`media_encryption_optimistic`) and FreeSWITCH (`rtp_secure_media=optional`) offer the same
//! way.
//!
//! An answer whose key we cannot use never falls back to plain RTP: a peer that answered a key
//! encrypts what it sends, so the call would be silence or, worse, the peer would accept our
//! plain packets. The call is ended and the error says why ([`SrtpAnswerError`]).

use thiserror::Error;

use super::crypto::{CryptoAttribute, KeyMaterial, SrtpKeys, SrtpPolicy, SrtpSuite};
use super::SessionDescription;

/// The keys of one offer: one `a=crypto` line per suite, tags 1, 2... in our order of
/// preference. `Debug` shows suites only (see [`KeyMaterial`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedKeys {
    lines: Vec<CryptoAttribute>,
}

impl OfferedKeys {
    /// Fresh keys for every suite we speak, from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let lines = SrtpSuite::ALL
            .into_iter()
            .zip(1..)
            .map(|(suite, tag)| CryptoAttribute {
                tag,
                key: KeyMaterial::generate(suite),
            })
            .collect();
        Self { lines }
    }

    /// The offered line with this tag.
    fn by_tag(&self, tag: u32) -> Option<&CryptoAttribute> {
        self.lines.iter().find(|l| l.tag == tag)
    }
}

/// Why the answer to an offer with SRTP keys cannot be used: the call is ended, never carried
/// as plain RTP when the trunk requires SRTP or the peer answered a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpAnswerError {
    /// The trunk requires SRTP and the answer is plain RTP (no `RTP/SAVP`, no key).
    #[error("SRTP is required and the answer is plain RTP (no RTP/SAVP stream with a key)")]
    NotEncrypted,
    /// An `RTP/SAVP` answer without any `a=crypto` line.
    #[error("the answer is RTP/SAVP without an a=crypto line")]
    NoKey,
    /// More than one `a=crypto` line: an answer accepts exactly one (RFC 4568 section 5.1.2).
    #[error("the answer has {0} a=crypto lines; an answer carries exactly one")]
    TooManyKeys(usize),
    /// The `a=crypto` line cannot be used: broken base64, a key of the wrong length, an MKI,
    /// a malformed lifetime, a session parameter or an unknown suite.
    #[error("the answer's a=crypto line is unusable (key, lifetime, MKI or suite)")]
    UnusableKey,
    /// The answer's tag names no line we offered.
    #[error("the answer's a=crypto tag {0} was not offered")]
    TagNotOffered(u32),
    /// The answer's suite is not the one we offered under its tag.
    #[error("the answer's a=crypto tag {tag} is {answered}, offered as {offered}")]
    SuiteMismatch {
        /// The tag.
        tag: u32,
        /// The suite we offered under it.
        offered: &'static str,
        /// The suite the answer says.
        answered: &'static str,
    },
}

/// Our plain offer (from [`super::offer`]) with `keys` added to its audio stream: as
/// `RTP/SAVP` when SRTP is required, in the `RTP/AVP` stream (best effort) when optional, and
/// unchanged when disabled.
pub fn secure_offer(offer: &str, policy: SrtpPolicy, keys: &OfferedKeys) -> String {
    if policy == SrtpPolicy::Disabled {
        return offer.to_owned();
    }
    let mut out = String::with_capacity(offer.len() + 160);
    let mut in_audio = false;
    let mut written = false;
    let write_keys = |out: &mut String| {
        for line in &keys.lines {
            out.push_str(&CryptoAttribute::line(line.tag, &line.key));
        }
    };
    for line in offer.split_inclusive('\n') {
        if line.starts_with("m=") {
            if in_audio && !written {
                write_keys(&mut out);
                written = true;
            }
            in_audio = line.starts_with("m=audio ") && !written;
            if in_audio && policy == SrtpPolicy::Required {
                out.push_str(&line.replacen(" RTP/AVP ", " RTP/SAVP ", 1));
                continue;
            }
        }
        out.push_str(line);
    }
    if in_audio && !written {
        write_keys(&mut out);
    }
    out
}

/// The SRTP keys of the answer to an offer with `offered` keys under `policy`: `Ok(None)` for
/// plain RTP (only when optional and the answer is `RTP/AVP` without a key), `Ok(Some(..))`
/// with our offered key for the answered tag and the peer's key, or why the call must end.
/// The stream read is the one [`super::read_answer`] reads: the first accepted audio stream.
pub fn answer_keys(
    answer: &SessionDescription,
    policy: SrtpPolicy,
    offered: &OfferedKeys,
) -> Result<Option<SrtpKeys>, SrtpAnswerError> {
    let Some(media) = answer
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
    else {
        // No stream at all: read_answer reports it.
        return Ok(None);
    };
    let proto = media.proto.as_str();
    let savp = proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF");
    match (media.crypto_lines, savp, policy) {
        (_, _, SrtpPolicy::Disabled) => return Ok(None),
        (0, false, SrtpPolicy::Optional) => return Ok(None),
        (0, false, SrtpPolicy::Required) => return Err(SrtpAnswerError::NotEncrypted),
        (0, true, _) => return Err(SrtpAnswerError::NoKey),
        (1, _, _) => {}
        (n, _, _) => return Err(SrtpAnswerError::TooManyKeys(n)),
    }
    if policy == SrtpPolicy::Required && !savp {
        // A key in an RTP/AVP answer to our RTP/SAVP offer: not the transport we offered.
        return Err(SrtpAnswerError::NotEncrypted);
    }
    let theirs = media.cryptos.first().ok_or(SrtpAnswerError::UnusableKey)?;
    let ours = offered
        .by_tag(theirs.tag)
        .ok_or(SrtpAnswerError::TagNotOffered(theirs.tag))?;
    if ours.key.suite() != theirs.key.suite() {
        return Err(SrtpAnswerError::SuiteMismatch {
            tag: theirs.tag,
            offered: ours.key.suite().name(),
            answered: theirs.key.suite().name(),
        });
    }
    Ok(Some(SrtpKeys {
        ours: ours.key.clone(),
        theirs: theirs.key.clone(),
    }))
}

#[cfg(test)]
#[path = "srtp_offer_tests.rs"]
mod tests;

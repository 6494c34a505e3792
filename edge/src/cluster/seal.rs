//! Authentication of gossip until mutual TLS exists. Every datagram is sealed: a magic, the
//! sender's wall-clock time, a random nonce, foca's bytes, and an HMAC-SHA256 tag (truncated to
//! 16 bytes) keyed from the cluster's shared secret. [`Opener::open`] drops a datagram that is
//! too large, too short, has a bad tag, is older or newer than the replay window, or repeats a
//! nonce seen within that window; each drop has its own [`Dropped`] reason for the metrics.
//! Without the secret nobody can add a member, suspect one or declare one down; with a captured
//! datagram nobody can replay it.

use std::collections::{HashMap, VecDeque};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAGIC: &[u8; 4] = b"FRC1";
/// Bytes of the tag (HMAC-SHA256 truncated, as RFC 2104 section 5 allows down to half).
const TAG_LEN: usize = 16;
/// Magic, time, nonce.
const HEAD_LEN: usize = 4 + 8 + 8;
/// What sealing adds to foca's bytes.
pub const OVERHEAD: usize = HEAD_LEN + TAG_LEN;

/// The key gossip is sealed with, derived from the cluster's shared secret so the secret itself
/// never keys two different schemes.
#[derive(Clone)]
pub struct GossipKey([u8; 32]);

impl GossipKey {
    /// Derives the gossip key from `secret` (the edge↔control shared secret).
    pub fn derive(secret: &str) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable_key());
        mac.update(b"freya cluster gossip v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_key())
    }
}

/// HMAC takes keys of any length; this is never reached.
fn unreachable_key() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 accepts keys of every length")
}

/// Seals `body` sent at `wall_ms` with `nonce`.
pub fn seal(key: &GossipKey, wall_ms: u64, nonce: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + OVERHEAD);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&wall_ms.to_be_bytes());
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(body);
    let mut mac = key.mac();
    mac.update(&out);
    let tag = mac.finalize().into_bytes();
    out.extend_from_slice(&tag[..TAG_LEN]);
    out
}

/// Why a datagram was dropped before foca saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// Larger than the configured maximum.
    Oversized,
    /// Too short, or not our magic.
    Malformed,
    /// The tag does not match: not sealed with our key, or altered.
    BadTag,
    /// Sent outside the replay window (or the sender's clock is far off).
    Stale,
    /// A nonce already seen within the window.
    Replayed,
    /// foca refused what was inside (after a good tag: a peer's bug, or a version mismatch).
    Refused,
}

impl Dropped {
    /// The `reason` label of the drop counter.
    pub fn label(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::BadTag => "bad_tag",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
            Self::Refused => "refused",
        }
    }
}

/// Checks datagrams and remembers recent nonces.
pub struct Opener {
    key: GossipKey,
    max_datagram: usize,
    window_ms: u64,
    seen: HashMap<u64, u64>,
    order: VecDeque<(u64, u64)>,
    max_seen: usize,
}

impl Opener {
    /// An opener taking datagrams up to `max_datagram` bytes sent within `window_ms` of our
    /// clock, remembering up to `max_seen` nonces (beyond that, datagrams are dropped as
    /// replays until old nonces leave the window: fail closed).
    pub fn new(key: GossipKey, max_datagram: usize, window_ms: u64, max_seen: usize) -> Self {
        Self {
            key,
            max_datagram,
            window_ms,
            seen: HashMap::new(),
            order: VecDeque::new(),
            max_seen,
        }
    }

    /// foca's bytes inside `datagram`, or why it was dropped.
    pub fn open<'a>(&mut self, wall_ms: u64, datagram: &'a [u8]) -> Result<&'a [u8], Dropped> {
        if datagram.len() > self.max_datagram {
            return Err(Dropped::Oversized);
        }
        if datagram.len() < OVERHEAD || &datagram[..4] != MAGIC {
            return Err(Dropped::Malformed);
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.key.mac();
        mac.update(signed);
        mac.verify_truncated_left(tag)
            .map_err(|_| Dropped::BadTag)?;
        let mut word = [0; 8];
        word.copy_from_slice(&signed[4..12]);
        let sent_ms = u64::from_be_bytes(word);
        word.copy_from_slice(&signed[12..20]);
        let nonce = u64::from_be_bytes(word);
        if sent_ms.abs_diff(wall_ms) > self.window_ms {
            return Err(Dropped::Stale);
        }
        self.forget_before(wall_ms.saturating_sub(self.window_ms));
        if self.seen.contains_key(&nonce) || self.seen.len() >= self.max_seen {
            return Err(Dropped::Replayed);
        }
        // Kept until it leaves the window on *our* clock, whatever the sender's said.
        let keep_until = wall_ms.max(sent_ms);
        self.seen.insert(nonce, keep_until);
        self.order.push_back((keep_until, nonce));
        Ok(&signed[HEAD_LEN..])
    }

    fn forget_before(&mut self, cutoff_ms: u64) {
        while let Some(&(at, nonce)) = self.order.front() {
            if at >= cutoff_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opener() -> Opener {
        Opener::new(GossipKey::derive("secret"), 1400, 10_000, 100)
    }

    #[test]
    fn a_sealed_datagram_opens_once() {
        let key = GossipKey::derive("secret");
        let mut open = opener();
        let datagram = seal(&key, 1_000_000, 42, b"hello");
        assert_eq!(open.open(1_000_100, &datagram), Ok(&b"hello"[..]));
        assert_eq!(open.open(1_000_200, &datagram), Err(Dropped::Replayed));
    }

    #[test]
    fn another_key_an_altered_byte_and_garbage_are_refused() {
        let mut open = opener();
        let forged = seal(&GossipKey::derive("guess"), 1_000_000, 1, b"hello");
        assert_eq!(open.open(1_000_000, &forged), Err(Dropped::BadTag));
        let mut altered = seal(&GossipKey::derive("secret"), 1_000_000, 2, b"hello");
        altered[HEAD_LEN] ^= 1;
        assert_eq!(open.open(1_000_000, &altered), Err(Dropped::BadTag));
        assert_eq!(open.open(1_000_000, b"FRC1"), Err(Dropped::Malformed));
        assert_eq!(open.open(1_000_000, &[0; 2000]), Err(Dropped::Oversized));
    }

    #[test]
    fn old_datagrams_are_stale_and_old_nonces_are_forgotten() {
        let key = GossipKey::derive("secret");
        let mut open = opener();
        let datagram = seal(&key, 1_000_000, 7, b"x");
        assert_eq!(open.open(1_020_000, &datagram), Err(Dropped::Stale));
        assert!(open.open(1_000_000, &datagram).is_ok());
        for n in 0..10u64 {
            let later = seal(&key, 1_030_000 + n, 100 + n, b"y");
            assert!(open.open(1_030_000 + n, &later).is_ok());
        }
        assert_eq!(
            open.seen.len(),
            10,
            "the nonce out of the window is forgotten"
        );
    }

    #[test]
    fn a_full_nonce_memory_fails_closed() {
        let key = GossipKey::derive("secret");
        let mut open = Opener::new(key.clone(), 1400, 10_000, 2);
        assert!(open.open(5_000, &seal(&key, 5_000, 1, b"a")).is_ok());
        assert!(open.open(5_000, &seal(&key, 5_000, 2, b"b")).is_ok());
        assert_eq!(
            open.open(5_000, &seal(&key, 5_000, 3, b"c")),
            Err(Dropped::Replayed)
        );
    }
}

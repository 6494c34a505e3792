//! Secrets at rest: provider passwords, webhook signing secrets, agents' provider keys and tool
//! secrets, and the cluster CA's key are stored sealed with ChaCha20-Poly1305 under
//! `auth.encryption_key`, a fresh random nonce per value, and the row they belong to as
//! associated data — so a sealed value copied into another row does not open.
//!
//! The stored text is `v2:<key id>:<hex nonce><hex ciphertext and tag>`: the key id (16 hex
//! characters derived from the key, never the key itself) says which key sealed the value, so
//! that while the key is being rotated (`freya secrets rotate-key`) a value is opened with the key
//! that sealed it, and the rotation can tell which values still need re-sealing without trying to
//! open them. Values written before key ids (`v1:<hex>`) name no key: every configured key is
//! tried. New values are always sealed under the current key; older keys
//! (`auth.previous_encryption_keys`) only open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

use super::StoreError;

/// Seals with the current encryption key and opens with it or with an older one.
#[derive(Clone)]
pub struct Sealer {
    /// The key new values are sealed under; first to be tried for values that name none.
    current: SealingKey,
    /// Keys that only open: `auth.previous_encryption_keys`, kept while a rotation runs.
    previous: Vec<SealingKey>,
}

#[derive(Clone)]
struct SealingKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

impl SealingKey {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            id: key_id(key),
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .finish_non_exhaustive()
    }
}

const PREFIX_V1: &str = "v1:";
const PREFIX_V2: &str = "v2:";
const NONCE_LEN: usize = 12;
const KEY_ID_LEN: usize = 16;

/// The id a sealed value names its key by: the first 8 bytes of a labelled SHA-256 of the key,
/// in hex. It tells keys apart; it does not help anyone guess one.
pub fn key_id(key: &[u8; 32]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"freya secrets key id v1\0");
    hash.update(key);
    hex::encode(&hash.finalize()[..KEY_ID_LEN / 2])
}

impl Sealer {
    /// A sealer for a 32-byte key (see `config::parse_encryption_key`).
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with_previous(key, &[])
    }

    /// A sealer writing under `current` and also opening values sealed under `previous`.
    pub fn with_previous(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let current = SealingKey::new(current);
        let previous = previous
            .iter()
            .map(SealingKey::new)
            .filter(|k| k.id != current.id)
            .collect();
        Self { current, previous }
    }

    /// The id of the key new values are sealed under.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// `secret` sealed for the row named `aad` (`provider:<id>`, `webhook:<id>`).
    pub fn seal(&self, aad: &str, secret: &str) -> Result<String, StoreError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| corrupt("cannot seal a secret".into()))?;
        Ok(format!(
            "{PREFIX_V2}{}:{}{}",
            self.current.id,
            hex::encode(nonce),
            hex::encode(sealed)
        ))
    }

    /// Whether `stored` is a sealed value (rather than a secret kept in the clear by an older
    /// version).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX_V1) || stored.starts_with(PREFIX_V2)
    }

    /// The id of the key that sealed `stored`; `None` for a value that names none (`v1:`) or
    /// is not sealed.
    pub fn sealed_key_id(stored: &str) -> Option<&str> {
        let rest = stored.strip_prefix(PREFIX_V2)?;
        let (id, _) = rest.split_once(':')?;
        (id.len() == KEY_ID_LEN).then_some(id)
    }

    /// Whether `stored` is sealed under the current key already (a rotation leaves it alone).
    pub fn is_current(&self, stored: &str) -> bool {
        Self::sealed_key_id(stored) == Some(self.current.id.as_str())
    }

    /// The secret sealed in `stored` for the row named `aad`.
    pub fn open(&self, aad: &str, stored: &str) -> Result<String, StoreError> {
        let (named, body) = if let Some(rest) = stored.strip_prefix(PREFIX_V2) {
            let (id, body) = rest
                .split_once(':')
                .ok_or_else(|| corrupt("not a sealed value".into()))?;
            (Some(id), body)
        } else if let Some(body) = stored.strip_prefix(PREFIX_V1) {
            (None, body)
        } else {
            return Err(corrupt("not a sealed value".into()));
        };
        let bytes = hex::decode(body)
            .ok()
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(|| corrupt("not a sealed value".into()))?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let candidates: Vec<&SealingKey> = match named {
            Some(id) => {
                let key = self.keys().find(|k| k.id == id).ok_or_else(|| {
                    corrupt(format!(
                        "sealed under key {id}, which is neither auth.encryption_key ({}) nor \
                         in auth.previous_encryption_keys",
                        self.current.id
                    ))
                })?;
                vec![key]
            }
            None => self.keys().collect(),
        };
        for key in candidates {
            let opened = key.cipher.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            );
            if let Ok(plain) = opened {
                return String::from_utf8(plain).map_err(|_| corrupt("not UTF-8".into()));
            }
        }
        Err(corrupt(
            "does not open with auth.encryption_key (a different key, or tampered)".into(),
        ))
    }

    fn keys(&self) -> impl Iterator<Item = &SealingKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        what: "sealed secret",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_row_and_key() {
        let sealer = Sealer::new(&[7; 32]);
        let a = sealer.seal("provider:1", "hunter2").expect("seal");
        let b = sealer.seal("provider:1", "hunter2").expect("seal");
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("hunter2"));
        assert_eq!(sealer.open("provider:1", &a).expect("open"), "hunter2");
        assert!(sealer.open("provider:2", &a).is_err());
        assert!(Sealer::new(&[8; 32]).open("provider:1", &a).is_err());
        assert!(sealer.open("provider:1", "v1:00").is_err());
        assert!(sealer.open("provider:1", "v2:00").is_err());
    }

    #[test]
    fn a_value_names_its_key_and_opens_while_that_key_is_kept_as_previous() {
        let old = Sealer::new(&[1; 32]);
        let sealed = old.seal("webhook:w", "s3cret").expect("seal");
        assert_eq!(
            Sealer::sealed_key_id(&sealed),
            Some(key_id(&[1; 32]).as_str())
        );
        assert!(old.is_current(&sealed));

        let rotating = Sealer::with_previous(&[2; 32], &[[1; 32]]);
        assert!(!rotating.is_current(&sealed));
        assert_eq!(rotating.open("webhook:w", &sealed).expect("open"), "s3cret");
        let resealed = rotating.seal("webhook:w", "s3cret").expect("seal");
        assert!(rotating.is_current(&resealed));

        let only_new = Sealer::new(&[2; 32]);
        assert_eq!(
            only_new.open("webhook:w", &resealed).expect("open"),
            "s3cret"
        );
        let refused = only_new
            .open("webhook:w", &sealed)
            .expect_err("old key gone");
        assert!(refused.to_string().contains(&key_id(&[1; 32])), "{refused}");
    }

    #[test]
    fn a_value_from_before_key_ids_opens_with_any_configured_key() {
        let key = [3; 32];
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
        let nonce = [9u8; NONCE_LEN];
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"legacy",
                    aad: b"provider:p",
                },
            )
            .expect("encrypt");
        let stored = format!("v1:{}{}", hex::encode(nonce), hex::encode(sealed));
        let sealer = Sealer::with_previous(&[4; 32], &[key]);
        assert_eq!(sealer.open("provider:p", &stored).expect("open"), "legacy");
        assert!(!sealer.is_current(&stored));
    }
}

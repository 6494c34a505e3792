//! Secrets at rest: provider passwords, webhook signing secrets and agents' provider keys and
//! tool secrets are stored sealed with
//! ChaCha20-Poly1305 under `auth.encryption_key`, a fresh random nonce per value, and the row they
//! belong to as associated data — so a sealed value copied into another row does not open. The
//! stored text is `v1:<hex nonce><hex ciphertext and tag>`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::StoreError;

/// Seals and opens secrets with the control plane's encryption key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

impl Sealer {
    /// A sealer for a 32-byte key (see `config::parse_encryption_key`).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// `secret` sealed for the row named `aad` (`provider:<id>`, `webhook:<id>`).
    pub fn seal(&self, aad: &str, secret: &str) -> Result<String, StoreError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| corrupt("cannot seal a secret"))?;
        Ok(format!(
            "{PREFIX}{}{}",
            hex::encode(nonce),
            hex::encode(sealed)
        ))
    }

    /// Whether `stored` is a sealed value (rather than a secret kept in the clear by an older
    /// version).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// The secret sealed in `stored` for the row named `aad`.
    pub fn open(&self, aad: &str, stored: &str) -> Result<String, StoreError> {
        let bytes = stored
            .strip_prefix(PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(|| corrupt("not a sealed value"))?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                corrupt("does not open with auth.encryption_key (a different key, or tampered)")
            })?;
        String::from_utf8(plain).map_err(|_| corrupt("not UTF-8"))
    }
}

fn corrupt(message: &str) -> StoreError {
    StoreError::Corrupt {
        what: "sealed secret",
        message: message.into(),
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
    }
}

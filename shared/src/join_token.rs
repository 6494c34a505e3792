//! The join token an operator hands a new edge: a one-time secret to spend on a certificate, and
//! the SHA-256 fingerprint of the cluster CA's certificate (as kubeadm's discovery hash), so the
//! edge trusts the control plane's TLS server before it sends the secret. The control plane
//! makes tokens and keeps only their secret's hash; the edge reads them. Text form:
//! `freya-join.<id: 16 hex>.<secret: 64 hex>.<CA fingerprint: 64 hex>`.

use sha2::{Digest, Sha256};

const PREFIX: &str = "freya-join";
/// Hex digits of a token's id (8 random bytes).
pub const ID_HEX_LEN: usize = 16;
/// Hex digits of a token's secret (32 random bytes: 256 bits, past any guessing).
pub const SECRET_HEX_LEN: usize = 64;
/// Hex digits of a SHA-256 fingerprint.
pub const FINGERPRINT_HEX_LEN: usize = 64;
/// Length of a whole token's text; anything longer is refused before it is parsed.
pub const TOKEN_LEN: usize = PREFIX.len() + 3 + ID_HEX_LEN + SECRET_HEX_LEN + FINGERPRINT_HEX_LEN;

/// A join token, parsed. Its `Debug` hides the secret, so a logged token does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Names the token's row (not secret).
    pub id: String,
    /// The one-time secret, lowercase hex.
    pub secret: String,
    /// SHA-256 of the cluster CA certificate's DER, lowercase hex.
    pub ca_fingerprint: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

/// Why a text is not a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a join token is `freya-join.` and three dot-separated lowercase hex parts of 16, 64 and 64 digits")]
pub struct MalformedJoinToken;

impl JoinToken {
    /// Reads a token's text (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, MalformedJoinToken> {
        let text = text.trim();
        if text.len() != TOKEN_LEN {
            return Err(MalformedJoinToken);
        }
        let mut parts = text.split('.');
        let (Some(PREFIX), Some(id), Some(secret), Some(fingerprint), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(MalformedJoinToken);
        };
        let hex_of = |part: &str, len: usize| {
            (part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then(|| part.to_owned())
                .ok_or(MalformedJoinToken)
        };
        Ok(Self {
            id: hex_of(id, ID_HEX_LEN)?,
            secret: hex_of(secret, SECRET_HEX_LEN)?,
            ca_fingerprint: hex_of(fingerprint, FINGERPRINT_HEX_LEN)?,
        })
    }

    /// The token's text, as shown once to whoever made it.
    pub fn to_text(&self) -> String {
        format!(
            "{PREFIX}.{}.{}.{}",
            self.id, self.secret, self.ca_fingerprint
        )
    }

    /// What the control plane stores instead of the secret: SHA-256 of it, hex. The secret is
    /// 256 random bits, so a fast hash is enough (nothing to brute-force).
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }
}

/// The SHA-256 fingerprint of a certificate's DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken {
            id: "0123456789abcdef".into(),
            secret: "a".repeat(SECRET_HEX_LEN),
            ca_fingerprint: "b".repeat(FINGERPRINT_HEX_LEN),
        }
    }

    #[test]
    fn a_token_reads_back_from_its_text() {
        let text = token().to_text();
        assert_eq!(text.len(), TOKEN_LEN);
        assert_eq!(JoinToken::parse(&format!(" {text}\n")), Ok(token()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let text = token().to_text();
        for bad in [
            String::new(),
            text.replace("freya-join", "freya-jain"),
            text.to_uppercase(),
            format!("{text}.x"),
            text.replacen('a', "g", 1),
            text[..text.len() - 1].to_owned(),
        ] {
            assert_eq!(JoinToken::parse(&bad), Err(MalformedJoinToken), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        assert!(!format!("{:?}", token()).contains("aaaa"));
    }
}

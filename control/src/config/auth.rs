//! The `[auth]` section: how people and programs authenticate to the REST API, and the key
//! (with, during a rotation, the previous ones) that seals secrets at rest.

use serde::Deserialize;

use freya_shared::config::ConfigProblem;

/// How people and programs authenticate to the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HS256 key that signs and verifies JWTs; at least 32 characters.
    pub jwt_secret: String,
    /// How long a token from `/v1/auth/login` or `/v1/auth/refresh` stays valid.
    #[serde(default = "default_token_ttl_seconds")]
    pub token_ttl_seconds: u32,
    /// 64 hex characters (32 bytes): the key that seals secrets at rest (provider credentials,
    /// agents' keys, webhook secrets, the cluster CA's key). New values are sealed under it.
    pub encryption_key: String,
    /// Earlier values of `encryption_key` (64 hex characters each), kept only to open what they
    /// sealed while `freya secrets rotate-key` re-seals it under `encryption_key`; empty
    /// outside a rotation (see deploy/README.md, "Rotating the secrets key").
    #[serde(default)]
    pub previous_encryption_keys: Vec<String>,
}

impl AuthConfig {
    /// The current key and the previous ones, parsed (validated at start, so `None` only for
    /// a configuration that skipped validation).
    pub fn encryption_keys(&self) -> Option<([u8; 32], Vec<[u8; 32]>)> {
        let current = parse_encryption_key(&self.encryption_key)?;
        let previous = self
            .previous_encryption_keys
            .iter()
            .map(|k| parse_encryption_key(k))
            .collect::<Option<Vec<_>>>()?;
        Some((current, previous))
    }
}

fn default_token_ttl_seconds() -> u32 {
    3_600
}

/// Shortest accepted JWT signing secret.
pub const MIN_JWT_SECRET_LEN: usize = 32;

pub(super) fn check_auth(auth: &AuthConfig, problems: &mut Vec<ConfigProblem>) {
    if auth.jwt_secret.len() < MIN_JWT_SECRET_LEN {
        problems.push(ConfigProblem::new(
            "auth.jwt_secret",
            format!("must be at least {MIN_JWT_SECRET_LEN} characters"),
        ));
    }
    if !(60..=86_400).contains(&auth.token_ttl_seconds) {
        problems.push(ConfigProblem::new(
            "auth.token_ttl_seconds",
            "must be between 60 and 86400",
        ));
    }
    if parse_encryption_key(&auth.encryption_key).is_none() {
        problems.push(ConfigProblem::new(
            "auth.encryption_key",
            "must be 64 hex characters (32 random bytes)",
        ));
    }
    if auth
        .previous_encryption_keys
        .iter()
        .any(|k| parse_encryption_key(k).is_none())
    {
        problems.push(ConfigProblem::new(
            "auth.previous_encryption_keys",
            "each must be 64 hex characters (32 random bytes)",
        ));
    }
}

/// The 32-byte key `auth.encryption_key` spells in hex, if it does.
pub fn parse_encryption_key(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

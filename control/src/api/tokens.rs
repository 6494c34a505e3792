//! Bearer tokens for people: HS256 JWTs signed with `auth.jwt_secret`. Only HS256 is accepted —
//! a token claiming `none` or any other algorithm fails verification — and every token carries
//! an expiry that is checked with no leeway. A token names a user, never a workspace: the
//! workspace comes from the request and the role from the user's membership, read each time.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use freya_shared::ids::now_ms;

/// The issuer claim of every token this control plane signs.
const ISSUER: &str = "freya";

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    pub iss: String,
}

/// A freshly signed token and when it stops working (epoch milliseconds).
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub token: String,
    pub expires_at_ms: i64,
}

/// Why a token was refused.
#[derive(Debug, Error)]
pub(crate) enum TokenError {
    #[error("the token is invalid, expired or not signed by this control plane")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Signs and verifies tokens with one secret.
pub(crate) struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_seconds: u64,
}

impl TokenIssuer {
    /// An issuer for `secret` whose tokens live `ttl_seconds`.
    pub(crate) fn new(secret: &str, ttl_seconds: u32) -> Self {
        // Exactly one backend is compiled in; naming it keeps the choice explicit.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl_seconds: u64::from(ttl_seconds),
        }
    }

    /// A token for `user_id`, valid from now for the configured time.
    pub(crate) fn issue(&self, user_id: &str) -> Result<IssuedToken, TokenError> {
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: now,
            exp: now + self.ttl_seconds,
            iss: ISSUER.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_at_ms: i64::try_from(claims.exp * 1000).unwrap_or(i64::MAX),
        })
    }

    /// The claims of `token` if it is signed by us with HS256 and has not expired.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_fresh_token_verifies_and_names_its_user() {
        let issuer = TokenIssuer::new(SECRET, 60);
        let token = issuer.issue("user-1").expect("sign");
        assert_eq!(issuer.verify(&token.token).expect("verify").sub, "user-1");
    }

    #[test]
    fn another_secret_an_expired_token_and_alg_none_are_refused() {
        let issuer = TokenIssuer::new(SECRET, 60);
        let other = TokenIssuer::new("another-secret-another-secret-xx", 60);
        let token = other.issue("user-1").expect("sign");
        assert!(issuer.verify(&token.token).is_err());

        let past = u64::try_from(now_ms() / 1000).expect("now") - 10;
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "u".into(),
                exp: past,
                iat: past - 60,
                iss: ISSUER.into(),
            },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("sign");
        assert!(issuer.verify(&expired).is_err());

        let good = issuer.issue("user-1").expect("sign").token;
        let payload = good.split('.').nth(1).expect("payload");
        // {"alg":"none","typ":"JWT"}, base64url without padding.
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(issuer.verify(&unsigned).is_err());
    }
}

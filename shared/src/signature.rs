//! The one signature Freya puts on every request it sends to a customer's server — webhook
//! deliveries from the control plane and tool requests from an edge — and the check a receiver
//! makes. Stripe's scheme, under our name:
//!
//! ```text
//! Freya-Signature: t=1700000000,v1=<hex HMAC-SHA256(secret, "1700000000.<raw body>")>
//! ```
//!
//! The timestamp is inside the signed text, so a captured request cannot be replayed with a new
//! time; a receiver refuses one whose `t` is more than [`TOLERANCE`] (300 s) from its own clock.
//! `v1` names the scheme: a later one would be sent beside it (`t=..,v1=..,v2=..`) and a receiver
//! takes any scheme it knows, so the change needs no flag day; several `v1` values are accepted
//! for the same reason (a secret being rotated). Signing with an empty secret is refused: an
//! HMAC under an empty key is one anybody can compute. No clock is read here; `now` is an
//! argument.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "Freya-Signature";

/// The scheme this module writes and reads.
pub const SCHEME: &str = "v1";

/// How far a request's `t` may be from the receiver's clock: a replay window, and room for
/// clocks that disagree a little.
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// Why a request could not be signed or its signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret is empty: the signature would prove nothing.
    #[error("the signing secret is empty")]
    EmptySecret,
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("malformed Freya-Signature header: {0}")]
    Malformed(&'static str),
    /// No `v1` signature matches the body and timestamp.
    #[error("signature does not match")]
    Mismatch,
    /// The timestamp is further from now than allowed (a replay, or a wrong clock).
    #[error("timestamp is {age_seconds} s away from now")]
    Stale {
        /// Distance from the receiver's clock, in seconds.
        age_seconds: u64,
    },
}

/// The `Freya-Signature` value for `body` signed at `timestamp` (seconds since the epoch).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> Result<String, SignatureError> {
    let mac = mac(secret, timestamp, body)?;
    Ok(format!(
        "t={timestamp},{SCHEME}={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Seconds since the epoch at `now`, the `t` a request sent at `now` carries.
pub fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks a received request — its raw `body` and the `Freya-Signature` value — against `secret`,
/// refusing a timestamp more than `tolerance` from `now`; returns the request's timestamp. The
/// comparison is constant-time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<u64, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("each part must be key=value"));
        };
        match key {
            "t" => {
                let t = value
                    .parse::<u64>()
                    .map_err(|_| SignatureError::Malformed("t must be seconds since the epoch"))?;
                timestamp = Some(t);
            }
            SCHEME => signatures
                .push(hex::decode(value).map_err(|_| SignatureError::Malformed("v1 must be hex"))?),
            _ => {} // schemes of a later version, for receivers that know them
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1"));
    }
    let age_seconds = unix_seconds(now).abs_diff(timestamp);
    if age_seconds > tolerance.as_secs() {
        return Err(SignatureError::Stale { age_seconds });
    }
    let expected = mac(secret, timestamp, body)?;
    if signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok())
    {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Result<Hmac<Sha256>, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::EmptySecret)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test";
    const BODY: &[u8] = br#"{"type":"call.ended"}"#;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign(b"secret", 1_700_000_000, br#"{"a":1}"#).expect("sign"),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn a_signed_request_verifies_and_gives_its_timestamp() {
        let header = sign(SECRET, 1_700_000_000, BODY).expect("sign");
        assert_eq!(
            verify(SECRET, &header, BODY, at(1_700_000_010), TOLERANCE),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn an_empty_secret_neither_signs_nor_verifies() {
        assert_eq!(sign(b"", 1, BODY), Err(SignatureError::EmptySecret));
        let header = sign(SECRET, 1, BODY).expect("sign");
        assert_eq!(
            verify(b"", &header, BODY, at(1), TOLERANCE),
            Err(SignatureError::EmptySecret)
        );
    }

    #[test]
    fn a_changed_body_a_moved_timestamp_or_another_secret_is_refused() {
        let header = sign(SECRET, 1_700_000_000, BODY).expect("sign");
        let now = at(1_700_000_000);
        assert_eq!(
            verify(SECRET, &header, br#"{"type":"call.endeD"}"#, now, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(SECRET, &moved, BODY, now, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, BODY, now, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_timestamp_past_the_tolerance_either_way_is_stale() {
        let header = sign(SECRET, 1_700_000_000, BODY).expect("sign");
        assert_eq!(
            verify(SECRET, &header, BODY, at(1_700_000_300), TOLERANCE),
            Ok(1_700_000_000)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, at(1_700_000_301), TOLERANCE),
            Err(SignatureError::Stale { age_seconds: 301 })
        );
        assert_eq!(
            verify(SECRET, &header, BODY, at(1_699_999_000), TOLERANCE),
            Err(SignatureError::Stale { age_seconds: 1000 })
        );
    }

    #[test]
    fn any_matching_v1_is_accepted_and_unknown_schemes_are_skipped() {
        let good = sign(SECRET, 1_700_000_000, BODY).expect("sign");
        let v1 = good.split_once(",v1=").map(|(_, v)| v).expect("v1");
        let rotated = format!("t=1700000000,v1={},v1={v1},v9=zz", "00".repeat(32));
        assert_eq!(
            verify(SECRET, &rotated, BODY, at(1_700_000_000), TOLERANCE),
            Ok(1_700_000_000)
        );
    }

    #[test]
    fn malformed_headers_are_named() {
        let now = at(1_700_000_000);
        for header in [
            "",
            "v1=00",
            "t=soon,v1=00",
            "t=1700000000",
            "t=1700000000,v1=xyz",
        ] {
            assert!(
                matches!(
                    verify(SECRET, header, BODY, now, TOLERANCE),
                    Err(SignatureError::Malformed(_))
                ),
                "{header:?}"
            );
        }
    }
}

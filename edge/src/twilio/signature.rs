//! `X-Twilio-Signature`: how Twilio proves a webhook is its own. The signature is
//! HMAC-SHA1, keyed with the account's auth token, over the full URL Twilio requested followed
//! by every POST parameter's name and value, sorted by name, all concatenated; then base64.
//! Sans-IO: strings in, a verdict out.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The MAC over `url` and the sorted parameters, not yet finalized.
fn signing_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Option<Hmac<Sha1>> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Sorted by name, then value (a name may repeat), as Twilio's helper libraries do.
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(mac)
}

/// The signature Twilio sends for a POST of `params` to `url` under `auth_token`.
pub(crate) fn expected_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    signing_mac(auth_token, url, params)
        .map(|mac| base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `signature` is Twilio's for this request (compared in constant time).
pub(crate) fn verify(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    signing_mac(auth_token, url, params).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn twilios_documented_example_verifies() {
        // The example of Twilio's security documentation.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let token = "12345";
        let signature = expected_signature(token, url, &params());
        assert_eq!(signature, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify(token, url, &params(), &signature));
    }

    #[test]
    fn a_wrong_token_url_parameter_or_garbage_fails() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let good = expected_signature("12345", url, &params());
        assert!(!verify("54321", url, &params(), &good));
        assert!(!verify(
            "12345",
            "https://example.com/other",
            &params(),
            &good
        ));
        let mut changed = params();
        changed[4].1 = "+18005550000".into();
        assert!(!verify("12345", url, &changed, &good));
        assert!(!verify("12345", url, &params(), "not base64!"));
        assert!(!verify("12345", url, &params(), ""));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let url = "https://edge.example/twilio/voice";
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(
            expected_signature("t", url, &params()),
            expected_signature("t", url, &reversed)
        );
    }
}

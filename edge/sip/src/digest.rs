//! Client-side HTTP digest authentication for SIP (RFC 3261 section 22, RFC 2617, RFC 7616).
//!
//! A trunk answers our INVITE or REGISTER with 401 (WWW-Authenticate) or 407
//! (Proxy-Authenticate); we parse the challenge and resend the request with an Authorization or
//! Proxy-Authorization header computed here. MD5 and SHA-256 (and their `-sess` forms) with
//! `qop=auth`, or no qop for RFC 2069 servers, are supported; `auth-int` is not.

use std::fmt::Write as _;

use md5::{Digest, Md5};
use rand::Rng;
use sha2::Sha256;
use thiserror::Error;

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// The challenge's scheme is not Digest.
    #[error("challenge scheme is not Digest")]
    NotDigest,
    /// A required parameter is absent.
    #[error("challenge lacks the {0} parameter")]
    MissingParam(&'static str),
    /// The algorithm is neither MD5 nor SHA-256 (nor their -sess forms).
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The server requires a qop other than `auth`.
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
    /// The parameter list cannot be read.
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
}

/// The digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (the default when absent).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 7616).
    Sha256,
    /// SHA-256-sess (RFC 7616).
    Sha256Sess,
}

impl Algorithm {
    /// The name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn parse(name: &str) -> Result<Self, DigestError> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(name.to_owned()))
    }

    fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 | Self::Sha256Sess => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }

    fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }
}

/// A parsed WWW-Authenticate or Proxy-Authenticate challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space.
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// Opaque data to echo back.
    pub opaque: Option<String>,
    /// The hash algorithm.
    pub algorithm: Algorithm,
    /// Whether the server asked for `qop=auth` (false: RFC 2069 style, no cnonce or nc).
    pub qop_auth: bool,
    /// The server says our previous nonce expired (retry without asking the user again).
    pub stale: bool,
}

/// A username and password for one realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl Challenge {
    /// Parses a challenge header value such as `Digest realm="x", nonce="y", qop="auth"`.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let params = parse_params(rest)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let qop_auth = match get("qop") {
            None => false,
            Some(qops)
                if qops
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
            {
                true
            }
            Some(other) => return Err(DigestError::UnsupportedQop(other.to_owned())),
        };
        Ok(Self {
            realm: get("realm")
                .ok_or(DigestError::MissingParam("realm"))?
                .to_owned(),
            nonce: get("nonce")
                .ok_or(DigestError::MissingParam("nonce"))?
                .to_owned(),
            opaque: get("opaque").map(str::to_owned),
            algorithm: get("algorithm").map_or(Ok(Algorithm::Md5), Algorithm::parse)?,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `response` value: the hash proving we know the password, for `method` on `uri`
    /// with nonce count `nc` and client nonce `cnonce`.
    pub fn response(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let alg = self.algorithm;
        let mut ha1 = alg.hash(&format!(
            "{}:{}:{}",
            credentials.username, self.realm, credentials.password
        ));
        if alg.is_session() {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        if self.qop_auth {
            alg.hash(&format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
                self.nonce
            ))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        }
    }

    /// The whole Authorization (or Proxy-Authorization) header value answering this challenge.
    pub fn authorization(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let response = self.response(credentials, method, uri, nc, cnonce);
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quote(&credentials.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri),
            self.algorithm.as_str(),
        );
        if self.qop_auth || self.algorithm.is_session() {
            let _ = write!(value, ", cnonce=\"{}\"", quote(cnonce));
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(value, ", opaque=\"{}\"", quote(opaque));
        }
        if self.qop_auth {
            let _ = write!(value, ", qop=auth, nc={nc:08x}");
        }
        value
    }
}

/// A fresh random client nonce.
pub fn new_cnonce() -> String {
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Parses `name=token, name="quoted \" string", ...`.
fn parse_params(input: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut params = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace()) {
            name.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || name.is_empty() {
            return Err(DigestError::Malformed("expected name=value"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(
                        chars
                            .next()
                            .ok_or(DigestError::Malformed("unterminated quoted string"))?,
                    ),
                    Some(c) => value.push(c),
                    None => return Err(DigestError::Malformed("unterminated quoted string")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',' && !c.is_whitespace()) {
                value.push(c);
            }
        }
        params.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mufasa(password: &str) -> Credentials {
        Credentials {
            username: "Mufasa".to_owned(),
            password: password.to_owned(),
        }
    }

    #[test]
    fn rfc_2617_section_3_5_example() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        assert!(challenge.qop_auth);
        let creds = mufasa("Circle Of Life");
        let response = challenge.response(&creds, "GET", "/dir/index.html", 1, "0a4f113b");
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
        let header = challenge.authorization(&creds, "GET", "/dir/index.html", 1, "0a4f113b");
        assert!(header.contains("response=\"6629fae49393a05397450978507c4ef1\""));
        assert!(header.contains("nc=00000001"));
        assert!(header.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    const RFC_7616_CHALLENGE: &str =
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
        algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC_7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    #[test]
    fn rfc_7616_sha_256_example() {
        let challenge = Challenge::parse(&RFC_7616_CHALLENGE.replace("{alg}", "SHA-256")).unwrap();
        assert_eq!(challenge.algorithm, Algorithm::Sha256);
        let response = challenge.response(
            &mufasa("Circle of Life"),
            "GET",
            "/dir/index.html",
            1,
            RFC_7616_CNONCE,
        );
        assert_eq!(
            response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc_7616_md5_example() {
        let challenge = Challenge::parse(&RFC_7616_CHALLENGE.replace("{alg}", "MD5")).unwrap();
        let response = challenge.response(
            &mufasa("Circle of Life"),
            "GET",
            "/dir/index.html",
            1,
            RFC_7616_CNONCE,
        );
        assert_eq!(response, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn challenge_without_qop_uses_rfc_2069_response() {
        let challenge = Challenge::parse("Digest realm=\"sip.example\",nonce=\"abc\"").unwrap();
        assert!(!challenge.qop_auth);
        let header = challenge.authorization(&mufasa("pw"), "REGISTER", "sip:sip.example", 1, "c");
        assert!(!header.contains("qop"));
        assert!(!header.contains("cnonce"));
    }

    #[test]
    fn bad_challenges_are_typed_errors() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(DigestError::MissingParam("realm"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::UnsupportedQop(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"unterminated"),
            Err(DigestError::Malformed(_))
        ));
        let full = "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", stale=TRUE";
        for end in 0..full.len() {
            let _ = Challenge::parse(&full[..end]);
        }
        assert!(Challenge::parse(full).unwrap().stale);
    }

    #[test]
    fn quoted_values_are_escaped() {
        let challenge = Challenge::parse(r#"Digest realm="a \"b\"", nonce="n""#).unwrap();
        assert_eq!(challenge.realm, "a \"b\"");
        let header = challenge.authorization(&mufasa("pw"), "INVITE", "sip:x", 1, "c");
        assert!(header.contains(r#"realm="a \"b\"""#));
    }
}

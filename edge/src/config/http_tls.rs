//! The `[http]` keys of HTTPS, the same on the edge and the control plane: a certificate from
//! files (`tls_cert`, `tls_key`) or from an ACME CA (`[http.acme]`), and the handshake timeout.
//! Checked once at start with errors naming the key.

use freya_shared::config::{check_socket_addr, ConfigProblem};
use serde::Deserialize;

/// `[http.acme]`: a certificate for a public hostname from an ACME CA (Let's Encrypt by
/// default), ordered with the HTTP-01 challenge, renewed at two thirds of its lifetime, and
/// kept on disk so a restart does not order again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The hostname the certificate names; the CA connects to it on port 80 to check it.
    pub domain: String,
    /// A contact address the CA may write to about the account (expiry notices).
    #[serde(default)]
    pub email: Option<String>,
    /// The CA's directory (default Let's Encrypt's production one).
    #[serde(default = "default_directory_url")]
    pub directory_url: String,
    /// Where the account key and the certificate are kept (created owner-only, files 0600).
    pub cache_dir: String,
    /// Where the HTTP-01 challenge listener binds (default `0.0.0.0:80`: the CA always
    /// connects to port 80, so anything else needs a port forward).
    #[serde(default = "default_challenge_addr")]
    pub challenge_addr: String,
    /// A CA file to trust for the directory's own HTTPS, for a private or test ACME CA; the
    /// system's roots otherwise.
    #[serde(default)]
    pub directory_ca_file: Option<String>,
}

fn default_directory_url() -> String {
    "https://acme-v02.api.letsencrypt.org/directory".into()
}

fn default_challenge_addr() -> String {
    "0.0.0.0:80".into()
}

/// The default `http.tls_handshake_timeout_ms`: a real client shakes hands in a few round trips.
pub fn default_tls_handshake_timeout_ms() -> u32 {
    5_000
}

/// The default `http.hsts_max_age_secs`: one year, what browsers' preload lists ask for and
/// long enough that a returning browser never starts in plain HTTP.
pub fn default_hsts_max_age_secs() -> u64 {
    31_536_000
}

/// An `[http]` section's TLS keys, as read from either binary's config.
#[derive(Debug, Clone, Copy)]
pub struct HttpTlsKeys<'a> {
    /// `http.tls_cert`: the certificate chain, PEM.
    pub tls_cert: Option<&'a str>,
    /// `http.tls_key`: its private key, PEM.
    pub tls_key: Option<&'a str>,
    /// `http.tls_handshake_timeout_ms`.
    pub handshake_timeout_ms: u32,
    /// `[http.acme]`.
    pub acme: Option<&'a AcmeConfig>,
    /// `http.http_redirect`: where a plain-HTTP listener answers every request with a
    /// redirect to HTTPS (`serve/redirect.rs`).
    pub http_redirect: Option<&'a str>,
    /// `http.public_url` (the edge's; the control plane has none): its host is where the
    /// redirect sends clients, when it is `https://`.
    pub public_url: Option<&'a str>,
    /// `http.hsts_max_age_secs`: how long a browser that saw an HTTPS answer keeps to HTTPS
    /// for this host (`Strict-Transport-Security`); 0 tells browsers to forget it.
    pub hsts_max_age_secs: u64,
}

impl HttpTlsKeys<'_> {
    /// Whether the listener speaks HTTPS.
    pub fn is_on(&self) -> bool {
        self.tls_cert.is_some() || self.acme.is_some()
    }

    /// Both files or neither, not both files and ACME, an ACME section that can work, and a
    /// redirect listener only in front of HTTPS.
    pub fn problems(&self, problems: &mut Vec<ConfigProblem>) {
        self.redirect_problems(problems);
        match (self.tls_cert, self.tls_key) {
            (Some(_), None) => problems.push(ConfigProblem::new(
                "http.tls_key",
                "is required with http.tls_cert",
            )),
            (None, Some(_)) => problems.push(ConfigProblem::new(
                "http.tls_cert",
                "is required with http.tls_key",
            )),
            _ => {}
        }
        for (key, value) in [
            ("http.tls_cert", self.tls_cert),
            ("http.tls_key", self.tls_key),
        ] {
            if value.is_some_and(str::is_empty) {
                problems.push(ConfigProblem::new(key, "must be a file path"));
            }
        }
        if self.handshake_timeout_ms < 100 {
            problems.push(ConfigProblem::new(
                "http.tls_handshake_timeout_ms",
                "must be at least 100",
            ));
        }
        let Some(acme) = self.acme else {
            return;
        };
        if self.tls_cert.is_some() {
            problems.push(ConfigProblem::new(
                "http.acme",
                "takes the place of http.tls_cert and http.tls_key: set one or the other",
            ));
        }
        if !is_hostname(&acme.domain) {
            problems.push(ConfigProblem::new(
                "http.acme.domain",
                "must be a DNS name such as edge1.example.com (no scheme, port or path)",
            ));
        }
        if acme.email.as_deref().is_some_and(|e| !e.contains('@')) {
            problems.push(ConfigProblem::new(
                "http.acme.email",
                "must be an email address",
            ));
        }
        if !acme.directory_url.starts_with("https://") {
            problems.push(ConfigProblem::new(
                "http.acme.directory_url",
                "must be an https:// URL of an ACME directory",
            ));
        }
        if acme.cache_dir.is_empty() {
            problems.push(ConfigProblem::new(
                "http.acme.cache_dir",
                "must be a directory path",
            ));
        }
        check_socket_addr("http.acme.challenge_addr", &acme.challenge_addr, problems);
    }

    /// A redirect listener needs an address and HTTPS to send clients to.
    fn redirect_problems(&self, problems: &mut Vec<ConfigProblem>) {
        let Some(addr) = self.http_redirect else {
            return;
        };
        check_socket_addr("http.http_redirect", addr, problems);
        if !self.is_on() {
            problems.push(ConfigProblem::new(
                "http.http_redirect",
                "redirects to HTTPS, which needs http.tls_cert and http.tls_key or [http.acme]",
            ));
        }
    }
}

/// A name an ACME CA can issue for: dot-separated labels of letters, digits and `-`.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme(domain: &str) -> AcmeConfig {
        AcmeConfig {
            domain: domain.into(),
            email: None,
            directory_url: default_directory_url(),
            cache_dir: "/var/lib/freya/acme".into(),
            challenge_addr: default_challenge_addr(),
            directory_ca_file: None,
        }
    }

    fn keys<'a>(
        cert: Option<&'a str>,
        key: Option<&'a str>,
        acme: Option<&'a AcmeConfig>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        HttpTlsKeys {
            tls_cert: cert,
            tls_key: key,
            handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            acme,
            http_redirect: None,
            public_url: None,
            hsts_max_age_secs: default_hsts_max_age_secs(),
        }
        .problems(&mut problems);
        problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn files_come_in_pairs_and_exclude_acme() {
        assert!(keys(None, None, None).is_empty());
        assert!(keys(Some("c.pem"), Some("k.pem"), None).is_empty());
        assert!(keys(Some("c.pem"), None, None)[0].contains("http.tls_key"));
        assert!(keys(None, Some("k.pem"), None)[0].contains("http.tls_cert"));
        let ok = acme("edge1.example.com");
        assert!(keys(None, None, Some(&ok)).is_empty());
        assert!(keys(Some("c.pem"), Some("k.pem"), Some(&ok))[0].contains("http.acme"));
    }

    #[test]
    fn a_redirect_listener_needs_an_address_and_https() {
        let mut problems = Vec::new();
        let mut keys = HttpTlsKeys {
            tls_cert: None,
            tls_key: None,
            handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            acme: None,
            http_redirect: Some("0.0.0.0:80"),
            public_url: None,
            hsts_max_age_secs: default_hsts_max_age_secs(),
        };
        keys.problems(&mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("needs http.tls_cert"));
        (keys.tls_cert, keys.tls_key) = (Some("c.pem"), Some("k.pem"));
        keys.http_redirect = Some("port 80");
        problems.clear();
        keys.problems(&mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "http.http_redirect");
    }

    #[test]
    fn an_acme_domain_is_a_bare_hostname() {
        for bad in [
            "https://edge.example.com",
            "edge.example.com:443",
            "",
            "a..b",
            "-a.b",
        ] {
            let config = acme(bad);
            let problems = keys(None, None, Some(&config));
            assert!(
                problems.iter().any(|p| p.contains("http.acme.domain")),
                "{bad}: {problems:?}"
            );
        }
    }
}

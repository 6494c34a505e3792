//! Where the plain listener sends a request: the configured host whatever the `Host` says,
//! else a plain host name or address from the request, and refusals for hostile ones.

use super::*;
use crate::config::{AcmeConfig, HttpTlsKeys};

fn keys<'a>(public_url: Option<&'a str>, acme: Option<&'a AcmeConfig>) -> HttpTlsKeys<'a> {
    HttpTlsKeys {
        tls_cert: Some("cert.pem"),
        tls_key: Some("key.pem"),
        handshake_timeout_ms: 5_000,
        acme,
        http_redirect: Some("0.0.0.0:80"),
        public_url,
        hsts_max_age_secs: crate::config::default_hsts_max_age_secs(),
    }
}

#[test]
fn a_configured_public_url_wins_over_any_host_header() {
    let redirect = HttpsRedirect::of(&keys(Some("https://Edge1.example.com/base"), None), 8443);
    for host in [Some("evil.example"), None, Some("a b")] {
        assert_eq!(
            redirect.location(host, "/v1/calls?limit=5"),
            Ok("https://edge1.example.com/v1/calls?limit=5".to_owned())
        );
    }
}

#[test]
fn the_acme_domain_is_used_with_the_https_port() {
    let acme: AcmeConfig = toml::from_str(
        r#"domain = "api.example.com"
           cache_dir = "/var/lib/freya/acme""#,
    )
    .expect("acme");
    let on_443 = HttpsRedirect::of(&keys(None, Some(&acme)), 443);
    assert_eq!(
        on_443.location(Some("evil.example"), "/"),
        Ok("https://api.example.com/".to_owned())
    );
    let on_8443 = HttpsRedirect::of(&keys(None, Some(&acme)), 8443);
    assert_eq!(
        on_8443.location(None, "/x"),
        Ok("https://api.example.com:8443/x".to_owned())
    );
}

#[test]
fn without_a_configured_host_the_requests_own_plain_host_is_used() {
    let redirect = HttpsRedirect::of(&keys(Some("http://plain.example"), None), 8443);
    assert_eq!(
        redirect.location(Some("Edge.Example.com:80"), "/a"),
        Ok("https://edge.example.com:8443/a".to_owned())
    );
    assert_eq!(
        redirect.location(Some("127.0.0.1:8080"), "*"),
        Ok("https://127.0.0.1:8443/".to_owned())
    );
    assert_eq!(
        redirect.location(Some("[::1]:80"), "/"),
        Ok("https://[::1]:8443/".to_owned())
    );
}

#[test]
fn hostile_hosts_and_targets_are_refused() {
    let redirect = HttpsRedirect::of(&keys(None, None), 443);
    let long = "a".repeat(64);
    let too_long_name = vec!["abc"; 70].join(".");
    for host in [
        None,
        Some(""),
        Some("user@evil.example"),
        Some("evil.example/path"),
        Some("evil.example:99999"),
        Some("evil.example:http"),
        Some("ev%69l.example"),
        Some("evil.example\r\nSet-Cookie: x=1"),
        Some("[::1"),
        Some("[::1]evil"),
        Some(long.as_str()),
        Some(too_long_name.as_str()),
        Some("-evil.example"),
    ] {
        assert_eq!(
            redirect.location(host, "/"),
            Err(RedirectRefusal::BadHost),
            "{host:?}"
        );
    }
    let target = format!("/{}", "x".repeat(MAX_TARGET));
    assert_eq!(
        redirect.location(Some("ok.example"), &target),
        Err(RedirectRefusal::TargetTooLong)
    );
}

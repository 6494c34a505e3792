//! The plain-HTTP listener beside an HTTPS one (`http.http_redirect`, `0.0.0.0:80` say): every
//! request is answered `308 Permanent Redirect` to the same path and query on `https://`, so a
//! person who types the bare hostname reaches the dashboard, and nothing is served in clear.
//! With ACME on, the same listener also answers the HTTP-01 challenges (the CA always asks on
//! port 80, where this listener usually is).
//!
//! The redirect never goes to a host a client chose when one is configured: the host of an
//! `https://` `http.public_url`, else the ACME domain. Without either, the request's `Host` is
//! used only if it is a plain DNS name or IP address (at most 253 bytes, no user info, no path,
//! no percent-escapes), with the HTTPS listener's port; anything else is a `400` with no
//! `Location`. A request target longer than [`MAX_TARGET`] is a `414`. The listener has the
//! challenge listener's small caps and timeouts (`acme.rs`), so it costs little under a flood.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::config::HttpTlsKeys;

/// Longest request target (path and query) redirected: a longer one is a `414`.
pub const MAX_TARGET: usize = 8 * 1024;
/// Longest host name taken from a `Host` header (RFC 1035's limit).
const MAX_HOST: usize = 253;

/// Where requests to the plain listener are sent: a configured authority, or the request's
/// own host with the HTTPS listener's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsRedirect {
    /// `host[:port]` of the configured public hostname, when there is one.
    configured: Option<String>,
    /// The HTTPS listener's port, for a redirect built from the request's `Host`.
    https_port: u16,
}

/// Why a request is not redirected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefusal {
    /// No `Host` header, or one that is not a plain DNS name or IP address.
    #[error("the Host header is missing or not a host name")]
    BadHost,
    /// The path and query are longer than [`MAX_TARGET`].
    #[error("the request target is longer than {MAX_TARGET} bytes")]
    TargetTooLong,
}

impl HttpsRedirect {
    /// The redirect of an HTTPS listener on `https_port` with these `[http]` keys: to the host
    /// of an `https://` `public_url`, else to the ACME domain, else to the request's host.
    pub fn of(tls: &HttpTlsKeys<'_>, https_port: u16) -> Self {
        let from_public_url = tls
            .public_url
            .and_then(|url| url.strip_prefix("https://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default())
            .filter(|authority| !authority.is_empty() && !authority.contains('@'))
            .map(str::to_ascii_lowercase);
        let from_acme = tls
            .acme
            .map(|acme| format!("{}{}", acme.domain, port_suffix(https_port)));
        Self {
            configured: from_public_url.or(from_acme),
            https_port,
        }
    }

    /// The `Location` for a request with `host` (its `Host` header) and `target` (its path
    /// and query).
    pub fn location(&self, host: Option<&str>, target: &str) -> Result<String, RedirectRefusal> {
        if target.len() > MAX_TARGET {
            return Err(RedirectRefusal::TargetTooLong);
        }
        // `OPTIONS *` and the like have no path to keep.
        let target = if target.starts_with('/') { target } else { "/" };
        let authority = match &self.configured {
            Some(configured) => configured.clone(),
            None => {
                let host = host.and_then(plain_host).ok_or(RedirectRefusal::BadHost)?;
                format!("{host}{}", port_suffix(self.https_port))
            }
        };
        Ok(format!("https://{authority}{target}"))
    }
}

/// `:port`, or nothing for HTTPS's own 443.
fn port_suffix(port: u16) -> String {
    if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    }
}

/// The host of a `Host` header (its port dropped), lowercased, when it is a DNS name or an IP
/// address (IPv6 in brackets) and nothing else.
fn plain_host(header: &str) -> Option<String> {
    let header = header.trim();
    if let Some(rest) = header.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = v6.parse().ok()?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return Some(format!("[{ip}]"));
    }
    let host = match header.rsplit_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return None,
        None => header,
    };
    if host.parse::<IpAddr>().is_ok() {
        return Some(host.to_owned());
    }
    let dns_name = !host.is_empty()
        && host.len() <= MAX_HOST
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    dns_name.then(|| host.to_ascii_lowercase())
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.parse::<u16>().is_ok()
}

/// Every request answered with a redirect to HTTPS (or its refusal); with `challenges`, the
/// ACME HTTP-01 challenges answered first.
pub fn redirect_router(
    redirect: HttpsRedirect,
    challenges: Option<super::acme::Challenges>,
) -> Router {
    let redirect = Arc::new(redirect);
    let fallback = move |uri: Uri, headers: HeaderMap| {
        let redirect = redirect.clone();
        async move { answer(&redirect, &uri, &headers) }
    };
    let router = match challenges {
        Some(challenges) => super::acme::challenge_router(challenges),
        None => Router::new(),
    };
    crate::http::body_limit(router.fallback(fallback), 1024)
}

fn answer(redirect: &HttpsRedirect, uri: &Uri, headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        // An absolute-form request (`GET http://host/ HTTP/1.1`) names its host in the target.
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    match redirect.location(host, target) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(refusal @ RedirectRefusal::BadHost) => {
            (StatusCode::BAD_REQUEST, refusal.to_string()).into_response()
        }
        Err(refusal @ RedirectRefusal::TargetTooLong) => {
            (StatusCode::URI_TOO_LONG, refusal.to_string()).into_response()
        }
    }
}

/// The listener address of `http.http_redirect`, when set.
pub fn redirect_addr(tls: &HttpTlsKeys<'_>) -> anyhow::Result<Option<SocketAddr>> {
    use anyhow::Context;
    tls.http_redirect
        .map(|addr| addr.parse().context("http.http_redirect"))
        .transpose()
}

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod tests;

//! `[http]`: the edge's own listener (probes, metrics, the Twilio webhook and media streams),
//! its public URL, caps and timeouts; and the defaults and limits both binaries' HTTP listeners
//! share.

use std::time::Duration;

use freya_shared::config::{check_socket_addr, ConfigProblem};
use serde::Deserialize;

use super::http_tls::{
    default_hsts_max_age_secs, default_tls_handshake_timeout_ms, AcmeConfig, HttpTlsKeys,
};
use crate::serve::{ConnectionLimits, ConnectionTimeouts};

/// The edge's own probes and metrics listener. A key left out takes its value from `Default`
/// below, the one place each default is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeHttpConfig {
    pub addr: String,
    /// The base URL providers reach this listener at (`https://edge1.example.com`): Twilio's
    /// webhook signatures cover it and media streams are told to connect to it. Defaults to
    /// `http://` and the bound address (fine on a private network and in tests); `https://`
    /// with `tls_cert`, and `https://` and the ACME domain with `[http.acme]`.
    pub public_url: Option<String>,
    /// Longest from a request's first byte to the end of its headers (default 10 s: Twilio and
    /// probes send a head in one packet; slowloris trickles it forever).
    pub header_timeout_ms: u32,
    /// A keep-alive connection with no request in flight closes after this long (default 60 s,
    /// longer than the keep-alive of common clients, so they close first). A media stream's
    /// WebSocket is not bound by it.
    pub idle_timeout_ms: u32,
    /// Most connections one IP may hold open (default 1024: every media stream of the edge's
    /// calls may come from a handful of Twilio addresses).
    pub max_connections_per_ip: u32,
    /// Most connections open in all (default 4096, under a typical open-file limit of 20 000
    /// with room for RTP and SIP sockets).
    pub max_connections: u32,
    /// HTTPS and WSS on this listener: the certificate chain (PEM), reloaded when it changes.
    /// With it, `public_url` defaults to `https://` and media streams to `wss://`.
    pub tls_cert: Option<String>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<String>,
    /// Longest a TLS handshake may take from accept (default 5 s); a client that connects and
    /// sends nothing is closed then.
    pub tls_handshake_timeout_ms: u32,
    /// A certificate from an ACME CA instead of files (see [`AcmeConfig`]).
    pub acme: Option<AcmeConfig>,
    /// A plain-HTTP listener (`0.0.0.0:80`, say) answering every request with `308` to the
    /// same path on HTTPS, at `public_url`'s host when that is `https://` (else the ACME
    /// domain, else the request's own host); with ACME on the challenge address, one listener
    /// does both. Needs HTTPS on. Off by default.
    pub http_redirect: Option<String>,
    /// With HTTPS on, every answer carries `Strict-Transport-Security: max-age=` this many
    /// seconds (default one year): a browser that has seen it never again starts in plain
    /// HTTP, where the redirect could be answered by anyone in the middle. 0 sends
    /// `max-age=0`, which tells browsers to forget it (before turning HTTPS off).
    pub hsts_max_age_secs: u64,
}

impl Default for EdgeHttpConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8081".into(),
            public_url: None,
            header_timeout_ms: default_http_header_timeout_ms(),
            idle_timeout_ms: default_http_idle_timeout_ms(),
            max_connections_per_ip: 1024,
            max_connections: default_http_max_connections(),
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            acme: None,
            http_redirect: None,
            hsts_max_age_secs: default_hsts_max_age_secs(),
        }
    }
}

impl EdgeHttpConfig {
    /// The keys the control plane's `[http]` has too, to check and bind the listener with.
    pub fn listener(&self) -> HttpListenerKeys<'_> {
        HttpListenerKeys {
            addr: &self.addr,
            header_timeout_ms: self.header_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            max_connections_per_ip: self.max_connections_per_ip,
            max_connections: self.max_connections,
            tls: HttpTlsKeys {
                tls_cert: self.tls_cert.as_deref(),
                tls_key: self.tls_key.as_deref(),
                handshake_timeout_ms: self.tls_handshake_timeout_ms,
                acme: self.acme.as_ref(),
                http_redirect: self.http_redirect.as_deref(),
                public_url: self.public_url.as_deref(),
                hsts_max_age_secs: self.hsts_max_age_secs,
            },
        }
    }
}

/// The keys both binaries' `[http]` have (address, caps, timeouts, HTTPS and its redirect
/// listener), borrowed from either config, so that they are checked and turned into a
/// listener's limits in one place.
#[derive(Debug, Clone, Copy)]
pub struct HttpListenerKeys<'a> {
    /// `http.addr`.
    pub addr: &'a str,
    /// `http.header_timeout_ms`.
    pub header_timeout_ms: u32,
    /// `http.idle_timeout_ms`.
    pub idle_timeout_ms: u32,
    /// `http.max_connections_per_ip`.
    pub max_connections_per_ip: u32,
    /// `http.max_connections`.
    pub max_connections: u32,
    /// The HTTPS keys, `http.http_redirect` among them.
    pub tls: HttpTlsKeys<'a>,
}

impl HttpListenerKeys<'_> {
    /// The listener's caps and timeouts.
    pub fn limits(&self) -> ConnectionLimits {
        http_limits(
            self.header_timeout_ms,
            self.idle_timeout_ms,
            self.max_connections_per_ip,
            self.max_connections,
        )
    }

    /// A bindable address, HTTPS keys that can work, and caps and timeouts that let a client
    /// in, each problem naming its key.
    pub fn problems(&self, problems: &mut Vec<ConfigProblem>) {
        check_socket_addr("http.addr", self.addr, problems);
        self.tls.problems(problems);
        for (key, value, min) in [
            ("http.header_timeout_ms", self.header_timeout_ms, 100),
            ("http.idle_timeout_ms", self.idle_timeout_ms, 100),
            (
                "http.max_connections_per_ip",
                self.max_connections_per_ip,
                1,
            ),
            ("http.max_connections", self.max_connections, 1),
        ] {
            if value < min {
                problems.push(ConfigProblem::new(key, format!("must be at least {min}")));
            }
        }
    }
}

/// An HTTP listener's [`ConnectionLimits`] from its config keys (milliseconds), for the edge's
/// and the control plane's `[http]`.
pub fn http_limits(
    header_timeout_ms: u32,
    idle_timeout_ms: u32,
    max_per_ip: u32,
    max_total: u32,
) -> ConnectionLimits {
    ConnectionLimits {
        timeouts: ConnectionTimeouts {
            message: Duration::from_millis(u64::from(header_timeout_ms)),
            idle: Duration::from_millis(u64::from(idle_timeout_ms)),
        },
        max_per_ip,
        max_total,
    }
}

/// The default header timeout of an HTTP listener, edge or control plane.
pub fn default_http_header_timeout_ms() -> u32 {
    10_000
}

/// The default keep-alive idle timeout of an HTTP listener, edge or control plane.
pub fn default_http_idle_timeout_ms() -> u32 {
    60_000
}

/// The default total connection cap of an HTTP listener, edge or control plane.
pub fn default_http_max_connections() -> u32 {
    4096
}

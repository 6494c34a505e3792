//! `[http]` and `[rate_limits]`: the REST API and dashboard listener (address, CORS, caps,
//! timeouts, HTTPS) and the token buckets in front of the API.

use serde::Deserialize;

use freya_edge::config::{
    default_hsts_max_age_secs, default_http_header_timeout_ms, default_http_idle_timeout_ms,
    default_http_max_connections, default_tls_handshake_timeout_ms, AcmeConfig, HttpListenerKeys,
    HttpTlsKeys,
};

/// Token buckets in front of the API: a caller may send `burst` requests at once, then
/// `per_minute` a minute. Exceeding either answers 429 with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a minute per credential (API key or token).
    #[serde(default = "default_per_key_per_minute")]
    pub per_key_per_minute: u32,
    /// Requests a minute per client IP address, authenticated or not.
    #[serde(default = "default_per_ip_per_minute")]
    pub per_ip_per_minute: u32,
    /// How many requests may arrive at once before the per-minute rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_key_per_minute: default_per_key_per_minute(),
            per_ip_per_minute: default_per_ip_per_minute(),
            burst: default_burst(),
        }
    }
}

fn default_per_key_per_minute() -> u32 {
    1_200
}

fn default_per_ip_per_minute() -> u32 {
    2_400
}

fn default_burst() -> u32 {
    100
}

/// The REST API and dashboard listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_addr")]
    pub addr: String,
    /// Origins a browser may call the API from (`https://app.example.com`, or `*` for any);
    /// empty (the default) sends no CORS headers.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// Longest from a request's first byte to the end of its headers (default 10 s: a client
    /// sends a head in one or two packets; slowloris trickles it forever).
    #[serde(default = "default_http_header_timeout_ms")]
    pub header_timeout_ms: u32,
    /// A keep-alive connection with no request in flight closes after this long (default 60 s:
    /// longer than browsers' and HTTP clients' own keep-alive, so they close first).
    #[serde(default = "default_http_idle_timeout_ms")]
    pub idle_timeout_ms: u32,
    /// Most connections one IP may hold open (default 256: an office behind one NAT, or a busy
    /// integration with a connection pool, stays well under it; one attacker cannot take the
    /// whole listener).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Most connections open in all (default 4096, under a typical open-file limit with room
    /// for the database pool, the gRPC listener and recordings).
    #[serde(default = "default_http_max_connections")]
    pub max_connections: u32,
    /// HTTPS on the API and dashboard: the certificate chain (PEM), reloaded when it changes.
    #[serde(default)]
    pub tls_cert: Option<String>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Longest a TLS handshake may take from accept (default 5 s); a client that connects and
    /// sends nothing is closed then.
    #[serde(default = "default_tls_handshake_timeout_ms")]
    pub tls_handshake_timeout_ms: u32,
    /// A certificate from an ACME CA instead of files (`[http.acme]`).
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// A plain-HTTP listener (`0.0.0.0:80`, say) answering every request with `308` to the
    /// same path on HTTPS, at the ACME domain when ACME is on (else the request's own host);
    /// with ACME on the challenge address, one listener does both. Needs HTTPS on. Off by
    /// default.
    #[serde(default)]
    pub http_redirect: Option<String>,
    /// With HTTPS on, every answer carries `Strict-Transport-Security: max-age=` this many
    /// seconds (default one year): a browser that has seen it never again starts in plain
    /// HTTP, where the redirect could be answered by anyone in the middle. 0 sends
    /// `max-age=0`, which tells browsers to forget it (before turning HTTPS off).
    #[serde(default = "default_hsts_max_age_secs")]
    pub hsts_max_age_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
            cors_allowed_origins: Vec::new(),
            header_timeout_ms: default_http_header_timeout_ms(),
            idle_timeout_ms: default_http_idle_timeout_ms(),
            max_connections_per_ip: default_max_connections_per_ip(),
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

impl HttpConfig {
    /// The keys the edge's `[http]` has too, to check and bind the listener with.
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
                public_url: None,
                hsts_max_age_secs: self.hsts_max_age_secs,
            },
        }
    }
}

fn default_max_connections_per_ip() -> u32 {
    256
}

fn default_http_addr() -> String {
    "127.0.0.1:8080".into()
}

//! HTTPS and WSS on the HTTP listeners (the control plane's REST API, the edge's Twilio webhook
//! and media streams), for deployments without a reverse proxy in front.
//!
//! The TLS handshake is done in the accept loop's connection task, before hyper and the
//! [`super::ConnectionClock`] see the connection, and is bounded by its own timeout
//! (`http.tls_handshake_timeout_ms`): a client that connects and sends nothing, or trickles its
//! ClientHello, is closed when it runs out, holding only the cap slot it took at accept. Bytes
//! that are not a TLS record (a plain `GET /` to the TLS port) fail the handshake at once and the
//! connection is closed. The certificate is the [`ReloadingCertificate`] of the files, looked up
//! per handshake, so a renewal reaches new connections while open ones keep their session.
//!
//! ALPN offers `http/1.1` only: the media stream's WebSocket is an HTTP/1.1 upgrade, and the
//! connection clock watches HTTP/1 request heads; h2 would need both redone for little gain on
//! an API that answers small JSON documents.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::certificate::{CertificateKeys, ReloadingCertificate};
use super::LimitedListener;
use crate::config::HttpTlsKeys;

/// The TLS side of an HTTP listener: its certificate and how long a handshake may take.
#[derive(Clone)]
pub struct Https {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    /// Where the plain-HTTP redirect listener (`http.http_redirect`) is bound, when it is.
    redirect_addr: Option<SocketAddr>,
    /// The `Strict-Transport-Security` value every answer over this listener carries
    /// (`http.hsts_max_age_secs`), when set.
    hsts: Option<HeaderValue>,
}

/// Why a connection was closed before its first request.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeFailure {
    /// Not TLS, a protocol error, or no certificate to serve yet.
    #[error("TLS handshake failed: {0}")]
    Refused(io::Error),
    /// The client did not finish its handshake in time.
    #[error("TLS handshake took longer than {0:?}")]
    TimedOut(Duration),
}

impl Https {
    /// TLS 1.2 and 1.3 with the reloading `certificate`, no client certificates.
    pub fn new(
        certificate: Arc<ReloadingCertificate>,
        handshake_timeout: Duration,
    ) -> Result<Self, rustls::Error> {
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(certificate);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshake_timeout,
            redirect_addr: None,
            hsts: None,
        })
    }

    /// Every answer over this listener carries `Strict-Transport-Security: max-age=` the
    /// given seconds: browsers that saw it go to HTTPS directly for that long, never through
    /// the plain-HTTP redirect that a machine in the middle could answer. No
    /// `includeSubDomains`: other hosts under the name may not serve HTTPS.
    pub fn with_hsts(mut self, max_age_secs: u64) -> Self {
        // Digits and ASCII only: always a valid header value.
        self.hsts = HeaderValue::try_from(format!("max-age={max_age_secs}")).ok();
        self
    }

    /// The `Strict-Transport-Security` value answers carry, when set.
    pub fn hsts(&self) -> Option<&HeaderValue> {
        self.hsts.as_ref()
    }

    /// Where the plain-HTTP listener that redirects to this one is bound
    /// (`http.http_redirect`), when there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_addr
    }

    /// Shakes hands with a client within the handshake timeout.
    pub async fn handshake(
        &self,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, HandshakeFailure> {
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(HandshakeFailure::Refused(e)),
            Err(_) => Err(HandshakeFailure::TimedOut(self.handshake_timeout)),
        }
    }
}

/// The public base URL of a listener left without `http.public_url`: `https://` with TLS (and
/// the ACME domain, which is the name the certificate is good for), `http://` without.
pub fn default_public_url(tls: &HttpTlsKeys<'_>, bound: SocketAddr) -> String {
    match (tls.acme, tls.is_on()) {
        (Some(acme), _) if bound.port() == 443 => format!("https://{}", acme.domain),
        (Some(acme), _) => format!("https://{}:{}", acme.domain, bound.port()),
        (None, true) => format!("https://{bound}"),
        (None, false) => format!("http://{bound}"),
    }
}

/// The TLS side of the `[http]` listener named `listener` (`"REST API"`, `"edge HTTP"`, bound
/// at `https_addr`), or `None` for plain HTTP. From files, the certificate must load now (an
/// error names the key and the file). With `[http.acme]`, this binds the challenge listener and
/// starts the order task: handshakes fail until the first certificate is in the cache. With
/// `http.http_redirect`, this binds the plain listener that redirects to HTTPS (`redirect.rs`);
/// on the challenge listener's address, that one listener does both.
pub async fn from_config(
    tls: &HttpTlsKeys<'_>,
    listener: &'static str,
    https_addr: SocketAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Https>> {
    use anyhow::Context;
    let handshake_timeout = Duration::from_millis(u64::from(tls.handshake_timeout_ms));
    let names = CertificateKeys {
        listener,
        cert: "http.tls_cert",
        key: "http.tls_key",
    };
    let redirect_addr = super::redirect::redirect_addr(tls)?;
    let redirect = super::redirect::HttpsRedirect::of(tls, https_addr.port());
    let mut redirect_bound = None;
    let certificate = match (tls.tls_cert, tls.tls_key, tls.acme) {
        (Some(cert), Some(key), _) => {
            ReloadingCertificate::load(names, Path::new(cert), Path::new(key))
                .with_context(|| format!("while loading the {listener} TLS certificate"))?
        }
        (_, _, Some(acme)) => {
            let files = super::acme::AcmeFiles::of(acme);
            freya_shared::private_files::create_dir(Path::new(&acme.cache_dir)).with_context(
                || format!("while creating http.acme.cache_dir {:?}", acme.cache_dir),
            )?;
            let challenges = super::acme::Challenges::default();
            let addr: SocketAddr = acme
                .challenge_addr
                .parse()
                .context("http.acme.challenge_addr")?;
            let shared = redirect_addr == Some(addr);
            let router = if shared {
                super::redirect::redirect_router(redirect.clone(), Some(challenges.clone()))
            } else {
                super::acme::challenge_router(challenges.clone())
            };
            let bound = plain_listener(addr, "http.acme.challenge_addr").await?;
            tracing::info!(bound = %bound.listener.local_addr()?, domain = %acme.domain, redirect = shared, "ACME HTTP-01 challenge listener");
            if shared {
                redirect_bound = Some(bound.listener.local_addr()?);
            }
            tokio::spawn(super::serve_http(
                bound,
                router,
                "ACME challenge",
                shutdown.clone(),
            ));
            if let Some(addr) = redirect_addr.filter(|_| !shared) {
                // The challenges on this listener too: the CA may be pointed at either.
                let router =
                    super::redirect::redirect_router(redirect.clone(), Some(challenges.clone()));
                redirect_bound = Some(serve_redirect(addr, router, shutdown).await?);
            }
            tokio::spawn(super::acme::run(acme.clone(), challenges, shutdown.clone()));
            ReloadingCertificate::awaiting(names, &files.cert, &files.key)
        }
        _ => return Ok(None),
    };
    if let (Some(addr), None) = (redirect_addr, redirect_bound) {
        let router = super::redirect::redirect_router(redirect, None);
        redirect_bound = Some(serve_redirect(addr, router, shutdown).await?);
    }
    let mut https = Https::new(Arc::new(certificate), handshake_timeout)
        .with_context(|| format!("while setting up TLS on the {listener}"))?
        .with_hsts(tls.hsts_max_age_secs);
    https.redirect_addr = redirect_bound;
    Ok(Some(https))
}

/// A plain-HTTP listener bound at `addr` (named by its config `key` in errors), with small
/// caps and timeouts: it answers challenges and redirects, nothing that takes long.
async fn plain_listener(addr: SocketAddr, key: &str) -> anyhow::Result<LimitedListener> {
    use anyhow::Context;
    let bound = TcpListener::bind(addr)
        .await
        .with_context(|| format!("while binding {key} {addr}"))?;
    Ok(LimitedListener {
        listener: bound,
        limits: crate::config::http_limits(10_000, 10_000, 64, 1024),
    })
}

/// Binds `http.http_redirect` and serves `router` on it; the bound address.
async fn serve_redirect(
    addr: SocketAddr,
    router: axum::Router,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let bound = plain_listener(addr, "http.http_redirect").await?;
    let local = bound.listener.local_addr()?;
    tracing::info!(bound = %local, "HTTP to HTTPS redirect listener");
    tokio::spawn(super::serve_http(
        bound,
        router,
        "HTTPS redirect",
        shutdown.clone(),
    ));
    Ok(local)
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;

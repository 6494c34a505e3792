//! SIP over TLS (RFC 3261 section 26, RFC 5630): the TLS listener, the certificate it serves
//! (reloaded from its files when they change), and the client side that opens TLS connections
//! to trunks and verifies theirs. rustls (with ring) throughout.
//!
//! After the handshake a TLS connection is served exactly as a TCP one (`tcp.rs`): the same
//! framer, buffer cap, clocks, keep-alives and write queue, with [`Transport::Tls`] peers. What
//! TLS adds is bounded here:
//! - `sip.tls_handshake_timeout_ms`: a client that connects and stalls (or trickles) its
//!   handshake is closed when it runs out, as is junk instead of a ClientHello (at once, by
//!   rustls);
//! - `sip.tls_max_connections` and `sip.tcp_max_connections_per_ip`: admission caps, counted
//!   from accept, so connections stuck in their handshake count too.
//!
//! The certificate is [`ReloadingCertificate`] (`serve/certificate.rs`, shared with the HTTPS
//! listeners): looked up per handshake and loaded again when its files change, keeping the old
//! one when the new files do not load. Established connections keep their session, so calls
//! are not dropped by a renewal.
//!
//! Outbound, [`TlsDialer`] verifies the trunk's certificate chain against `sip.tls_ca_file`
//! when set, else Mozilla's roots (webpki-roots), and its name against the trunk's `host`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use super::tcp::{register, serve, Connection, TcpInput};
use crate::serve::certificate::read_certs;
pub(crate) use crate::serve::certificate::{
    CertificateError, CertificateKeys, ReloadingCertificate,
};
use crate::serve::{ConnectionGate, ConnectionTimeouts};
use crate::sip::Peer;

/// Why TLS could not be set up from the configured files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A file could not be read, holds no PEM item of the kind needed, or a key that does not
    /// fit its certificate.
    #[error(transparent)]
    File(#[from] CertificateError),
    /// rustls refused the configuration (a key it cannot use, say).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A trunk's name or address cannot be a TLS server name.
    #[error("{0:?} is not a name a certificate can be checked against")]
    ServerName(String),
    /// The handshake failed (a certificate that does not verify, a protocol error).
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// The handshake did not finish in time.
    #[error("TLS handshake took longer than {0:?}")]
    HandshakeTimeout(Duration),
}

/// The `[sip]` keys the listener's certificate comes from.
pub(crate) const SIP_TLS_FILES: CertificateKeys = CertificateKeys {
    listener: "SIP TLS",
    cert: "sip.tls_cert_file",
    key: "sip.tls_key_file",
};

/// What the TLS listener needs (from `[sip]`).
#[derive(Debug, Clone)]
pub(crate) struct TlsListenerSettings {
    /// `sip.tls_handshake_timeout_ms`.
    pub handshake_timeout: Duration,
    /// Message and idle timeouts after the handshake (the TCP listener's).
    pub timeouts: ConnectionTimeouts,
    /// `sip.tcp_max_connections_per_ip`, `sip.tls_max_connections`.
    pub max_per_ip: u32,
    pub max_total: u32,
}

/// The TLS server configuration: TLS 1.2 and 1.3, no client certificates, the reloading
/// certificate.
pub(crate) fn server_config(
    certificate: Arc<ReloadingCertificate>,
) -> Result<ServerConfig, TlsError> {
    let config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    Ok(config)
}

/// Opens TLS connections to trunks and checks who they are.
pub(crate) struct TlsDialer {
    connector: TlsConnector,
    handshake_timeout: Duration,
}

impl TlsDialer {
    /// Trusts the CA certificates in `ca_file` (`sip.tls_ca_file`), or Mozilla's roots when
    /// there is none.
    pub(crate) fn new(
        ca_file: Option<&Path>,
        handshake_timeout: Duration,
    ) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                for cert in read_certs("sip.tls_ca_file", path)? {
                    roots.add(cert)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            handshake_timeout,
        })
    }

    /// Shakes hands over `stream` with the trunk at `addr`, whose certificate must name
    /// `name` (its configured host), or its IP address when no name is known.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        name: Option<&str>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
        let name = name.map_or_else(
            || addr.ip().to_string(),
            |n| n.trim_matches(['[', ']']).to_owned(),
        );
        let server = ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName(name))?;
        match tokio::time::timeout(
            self.handshake_timeout,
            self.connector.connect(server, stream),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(TlsError::Handshake(e)),
            Err(_) => Err(TlsError::HandshakeTimeout(self.handshake_timeout)),
        }
    }
}

/// Accepts TLS connections under the caps until `shutdown`; each shakes hands within the
/// timeout in a task of its own, then is served as a TCP connection with TLS peers.
pub(crate) async fn accept(
    listener: TcpListener,
    settings: TlsListenerSettings,
    acceptor: TlsAcceptor,
    inputs: mpsc::Sender<TcpInput>,
    shutdown: CancellationToken,
) {
    let gate = ConnectionGate::new("SIP TLS", settings.max_per_ip, settings.max_total);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "SIP TLS accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a cap the stream is dropped (closed) here; the gate counts and logs it.
        let Ok(permit) = gate.admit(addr) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, inputs, shutdown) = (acceptor.clone(), inputs.clone(), shutdown.clone());
        let (timeouts, handshake) = (settings.timeouts, settings.handshake_timeout);
        tokio::spawn(async move {
            let stream = tokio::select! {
                shaken = tokio::time::timeout(handshake, acceptor.accept(stream)) => match shaken {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::info!(peer = %addr, error = %e, "SIP TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(peer = %addr, ?handshake, "SIP TLS handshake timed out");
                        return;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let peer = Peer::tls(addr);
            let Some(queue) = register(&inputs, peer).await else {
                return;
            };
            let connection = Connection {
                peer,
                timeouts,
                keepalive: None,
                _permit: Some(permit),
            };
            serve(stream, connection, queue, inputs, shutdown).await;
        });
    }
}

/// The client for TLS trunks, from `[sip]` (`sip.tls_ca_file`, `sip.tls_handshake_timeout_ms`):
/// one for the trunks' calls and their tests on demand, so a test trusts what a call would. It
/// is built even without a listener: a trunk may use TLS on an edge that takes no TLS calls.
pub(crate) fn dialer_from_config(sip: &crate::config::SipConfig) -> anyhow::Result<Arc<TlsDialer>> {
    use anyhow::Context;
    let handshake_timeout = Duration::from_millis(u64::from(sip.tls_handshake_timeout_ms));
    let ca_file = sip.tls_ca_file.as_deref().map(Path::new);
    let dialer =
        TlsDialer::new(ca_file, handshake_timeout).context("while reading sip.tls_ca_file")?;
    Ok(Arc::new(dialer))
}

/// The TLS listener (bound, its certificate loaded), from `[sip]`, when `sip.tls_listen` is
/// set; `public_sip` lends its IP to a TLS public address left unset.
pub(crate) async fn from_config(
    sip: &crate::config::SipConfig,
    public_sip: SocketAddr,
) -> anyhow::Result<Option<super::TlsListener>> {
    use anyhow::Context;
    let handshake_timeout = Duration::from_millis(u64::from(sip.tls_handshake_timeout_ms));
    let Some(addr) = sip.tls_listen_addr() else {
        return Ok(None);
    };
    let (Some(cert_file), Some(key_file)) = (&sip.tls_cert_file, &sip.tls_key_file) else {
        anyhow::bail!("sip.tls_listen needs sip.tls_cert_file and sip.tls_key_file");
    };
    let certificate =
        ReloadingCertificate::load(SIP_TLS_FILES, Path::new(cert_file), Path::new(key_file))
            .context("while loading the SIP TLS certificate")?;
    let config = server_config(Arc::new(certificate))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("while binding sip.tls_listen {addr}"))?;
    let bound = listener.local_addr()?;
    let public_addr = match &sip.tls_public_addr {
        Some(public) => public.parse().context("sip.tls_public_addr")?,
        None if bound.ip().is_unspecified() || sip.external_ip.is_some() => {
            SocketAddr::new(public_sip.ip(), bound.port())
        }
        None => bound,
    };
    let limits = sip.tcp_limits();
    let settings = TlsListenerSettings {
        handshake_timeout,
        timeouts: limits.timeouts,
        max_per_ip: limits.max_per_ip,
        max_total: sip.tls_max_connections,
    };
    tracing::info!(%bound, %public_addr, "SIP TLS listener");
    let listener = super::TlsListener {
        listener,
        settings,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        public_addr,
    };
    Ok(Some(listener))
}

#[cfg(test)]
mod tests;

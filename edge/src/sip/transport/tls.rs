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
//! The certificate is looked up per handshake ([`ReloadingCertificate`]): the files' size and
//! modification time are compared with those last loaded, and a change loads them again. A
//! change that does not load (half-written, mismatched) keeps the old certificate and logs
//! why. Established connections keep their session, so calls are not dropped by a renewal.
//!
//! Outbound, [`TlsDialer`] verifies the trunk's certificate chain against `sip.tls_ca_file`
//! when set, else Mozilla's roots (webpki-roots), and its name against the trunk's `host`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use super::tcp::{register, serve, Connection, TcpInput};
use crate::serve::{ConnectionGate, ConnectionTimeouts};
use crate::sip::Peer;

/// Why TLS could not be set up from the configured files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM item of the kind needed.
    #[error("{key} = {path:?}: {reason}")]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
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

/// What the TLS listener needs (from `[sip]`).
#[derive(Debug, Clone)]
pub struct TlsListenerSettings {
    /// `sip.tls_handshake_timeout_ms`.
    pub handshake_timeout: Duration,
    /// Message and idle timeouts after the handshake (the TCP listener's).
    pub timeouts: ConnectionTimeouts,
    /// `sip.tcp_max_connections_per_ip`, `sip.tls_max_connections`.
    pub max_per_ip: u32,
    pub max_total: u32,
}

/// The files' identity when last loaded: a renewal writes a new file (inode) or changes the
/// size or the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// The listener's certificate, loaded again from its files when they change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Mutex<(Option<Stamp>, Option<Stamp>, Arc<CertifiedKey>)>,
}

impl ReloadingCertificate {
    /// Loads the files now; an error names the key and the file.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let (cert_stamp, key_stamp) = (stamp(cert_file), stamp(key_file));
        let key = certified_key(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: Mutex::new((cert_stamp, key_stamp, Arc::new(key))),
        })
    }

    /// The certificate to serve: the loaded one, or the files' new one if they changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let (cert_stamp, key_stamp) = (stamp(&self.cert_file), stamp(&self.key_file));
        let Ok(mut current) = self.current.lock() else {
            // A panic while reloading poisoned the lock: nothing to serve with confidence.
            return Arc::new(CertifiedKey::new(Vec::new(), empty_key()));
        };
        if (cert_stamp, key_stamp) != (current.0, current.1) {
            match certified_key(&self.cert_file, &self.key_file) {
                Ok(key) => {
                    tracing::info!(cert = ?self.cert_file, "SIP TLS certificate reloaded");
                    *current = (cert_stamp, key_stamp, Arc::new(key));
                }
                Err(e) => {
                    // Remember the stamps so that one bad write is logged once, not per handshake.
                    tracing::warn!(error = %e, "SIP TLS certificate changed but does not load; serving the previous one");
                    current.0 = cert_stamp;
                    current.1 = key_stamp;
                }
            }
        }
        current.2.clone()
    }
}

/// A signing key no handshake can use (only after a poisoned lock, which needs a panic).
fn empty_key() -> Arc<dyn rustls::sign::SigningKey> {
    #[derive(Debug)]
    struct NoKey;
    impl rustls::sign::SigningKey for NoKey {
        fn choose_scheme(
            &self,
            _offered: &[rustls::SignatureScheme],
        ) -> Option<Box<dyn rustls::sign::Signer>> {
            None
        }
        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::Anonymous
        }
    }
    Arc::new(NoKey)
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs("sip.tls_cert_file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::File {
        key: "sip.tls_key_file",
        path: key_file.to_owned(),
        reason: e.to_string(),
    })?;
    let signer = provider::sign::any_supported_type(&key)?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match()?;
    Ok(certified)
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        key,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// The TLS server configuration: TLS 1.2 and 1.3, no client certificates, the reloading
/// certificate.
pub fn server_config(certificate: Arc<ReloadingCertificate>) -> Result<ServerConfig, TlsError> {
    let config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    Ok(config)
}

/// Opens TLS connections to trunks and checks who they are.
pub struct TlsDialer {
    connector: TlsConnector,
    handshake_timeout: Duration,
}

impl TlsDialer {
    /// Trusts the CA certificates in `ca_file` (`sip.tls_ca_file`), or Mozilla's roots when
    /// there is none.
    pub fn new(ca_file: Option<&Path>, handshake_timeout: Duration) -> Result<Self, TlsError> {
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
    pub async fn connect(
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
pub async fn accept(
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

/// The TLS listener (bound, its certificate loaded) and the client for TLS trunks, from
/// `[sip]`; `public_sip` lends its IP to a TLS public address left unset. The dialer is built
/// even without a listener: a trunk may use TLS on an edge that takes no TLS calls.
pub async fn from_config(
    sip: &crate::config::SipConfig,
    public_sip: SocketAddr,
) -> anyhow::Result<(Option<super::TlsListener>, Arc<TlsDialer>)> {
    use anyhow::Context;
    let handshake_timeout = Duration::from_millis(u64::from(sip.tls_handshake_timeout_ms));
    let ca_file = sip.tls_ca_file.as_deref().map(Path::new);
    let dialer =
        TlsDialer::new(ca_file, handshake_timeout).context("while reading sip.tls_ca_file")?;
    let Some(addr) = sip.tls_listen_addr() else {
        return Ok((None, Arc::new(dialer)));
    };
    let (Some(cert_file), Some(key_file)) = (&sip.tls_cert_file, &sip.tls_key_file) else {
        anyhow::bail!("sip.tls_listen needs sip.tls_cert_file and sip.tls_key_file");
    };
    let certificate = ReloadingCertificate::load(Path::new(cert_file), Path::new(key_file))
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
    Ok((Some(listener), Arc::new(dialer)))
}

#[cfg(test)]
mod tests;

//! The edge's TLS to the control plane, on rustls (ring) under tonic: tonic dials through
//! [`ControlTls`], a connector that makes the TCP connection and the handshake with whatever
//! client configuration is current, so a renewed certificate is used by the next connection
//! without rebuilding the clients of every link task. The server is checked against the cluster
//! CA only (the name checked is always [`CONTROL_SERVER_NAME`]: trust comes from the CA, not
//! from the address dialled). Before enrolment the CA is not known yet: the pinned verifier takes
//! the CA certificate the server sends in its chain only if its SHA-256 is the join token's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use super::ClusterIdentity;
use freya_shared::join_token::fingerprint;

/// The name every control-plane server certificate carries.
pub const CONTROL_SERVER_NAME: &str = "freya-control";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration presenting `identity`'s certificate and trusting only its CA.
pub fn mtls_client_config(identity: &ClusterIdentity) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(identity.ca_pem.as_bytes()) {
        roots.add(ca.map_err(|_| Error::General("ca.pem is not PEM".into()))?)?;
    }
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::General("cert.pem is not PEM".into()))?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|_| Error::General("key.pem is not a PEM private key".into()))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client configuration for enrolment: no client certificate, and a server trusted only if its
/// chain holds the CA whose SHA-256 is `ca_fingerprint` and chains to it.
pub(crate) fn pinned_client_config(ca_fingerprint: &str) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            fingerprint: ca_fingerprint.to_owned(),
            provider: provider(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Trusts a server whose chain holds the pinned CA and verifies under it.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| fingerprint(c.as_ref()) == self.fingerprint)
        else {
            // Most often the cluster's CA was rotated and the old one retired after the token
            // was made: say which CA the control plane presents, so the operator sees it.
            let presented = intermediates
                .last()
                .map(|c| fingerprint(c.as_ref()))
                .unwrap_or_else(|| "none".into());
            return Err(Error::General(format!(
                "the control plane presents CA {presented}, not the CA {} this join token pins \
                 (the cluster CA may have been rotated since the token was made: ask for a new \
                 join token)",
                self.fingerprint
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS configuration new connections to the control plane use, replaceable (renewal), and
/// the connector tonic dials through.
#[derive(Clone)]
pub struct ControlTls(Arc<RwLock<Arc<ClientConfig>>>);

impl ControlTls {
    /// A connector using `config` until [`replace`](Self::replace).
    pub fn new(config: ClientConfig) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// Uses `config` for every connection made from now on.
    pub fn replace(&self, config: ClientConfig) {
        if let Ok(mut current) = self.0.write() {
            *current = Arc::new(config);
        }
    }

    fn current(&self) -> Option<Arc<ClientConfig>> {
        self.0.read().ok().map(|c| c.clone())
    }
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower_service::Service<Uri> for ControlTls {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.current();
        Box::pin(async move {
            let invalid =
                |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
            let config = config.ok_or_else(|| invalid("TLS configuration unavailable"))?;
            let host = uri
                .host()
                .ok_or_else(|| invalid("control.url has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(CONTROL_SERVER_NAME)
                .map_err(|_| invalid("bad server name"))?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// A lazily connected channel to `url` (`https://HOST:PORT`) through `tls`.
pub fn mtls_channel(
    url: &str,
    tls: ControlTls,
    connect_timeout: Duration,
) -> Result<Channel, crate::control_link::LinkError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|_| crate::control_link::LinkError::BadUrl(url.to_owned()))?
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_with_connector_lazy(tls))
}

//! Who a mesh peer is. Both ends of a mesh connection present an edge certificate and check the
//! other's the same way, whichever side dialled: it chains to the cluster CA (the only root), is
//! within its validity, names the same cluster as ours (the subject's O, `freya cluster <id>`),
//! names an edge (the subject's CN), and its serial is not on the revoked list the control
//! plane hands every edge. The cluster CA issues edge certificates for client authentication
//! only, so the server's certificate is checked with the same client-certificate rules: a peer
//! is an edge either way, and trust comes from the CA, never from the address or a DNS name.
//!
//! [`PeerName`] is what a verified connection is bound to: a control message that names
//! another edge as its sender is refused (`shell.rs`), and a revoked serial closes the
//! connection carrying it.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier as RustlsServerVerifier,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The organisation prefix the cluster CA writes into every certificate it issues.
const CLUSTER_ORG_PREFIX: &str = "freya cluster ";

/// The edge and cluster a peer's certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerName {
    /// The subject's CN: the edge's id.
    pub edge_id: String,
    /// The cluster id from the subject's O, `None` for a certificate naming none (a mesh run
    /// with configured certificates and no control plane).
    pub cluster_id: Option<String>,
    /// The serial, lowercase hex, as the control plane's revocation list spells it.
    pub serial: String,
}

impl PeerName {
    /// What the certificate (DER) names; `None` when it names no edge.
    pub fn of(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let edge_id = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        if edge_id.is_empty() {
            return None;
        }
        let cluster_id = subject
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .and_then(|o| o.strip_prefix(CLUSTER_ORG_PREFIX))
            .map(str::to_owned);
        Some(Self {
            edge_id,
            cluster_id,
            serial: hex::encode(cert.raw_serial()),
        })
    }

    /// The name on the first certificate of a PEM chain (our own, to know our cluster).
    pub fn of_pem(pem: &str) -> Option<Self> {
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        Self::of(der.as_ref())
    }
}

/// The revoked serials this edge refuses on the mesh, shared by the handshake verifiers and the
/// shell (which closes connections when the list grows); cheap to clone.
#[derive(Clone, Default)]
pub struct RevokedPeers(Arc<RwLock<HashSet<String>>>);

impl std::fmt::Debug for RevokedPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevokedPeers(..)")
    }
}

impl RevokedPeers {
    /// Whether `serial` is revoked; a poisoned lock refuses (fail closed).
    pub fn contains(&self, serial: &str) -> bool {
        self.0
            .read()
            .map(|set| set.contains(serial))
            .unwrap_or(true)
    }

    /// Replaces the list with `serials` (the control plane sends the whole list each time).
    pub fn replace(&self, serials: impl IntoIterator<Item = String>) {
        let serials: HashSet<String> = serials.into_iter().map(|s| s.to_lowercase()).collect();
        if let Ok(mut set) = self.0.write() {
            *set = serials;
        }
    }
}

/// The one verifier for both sides of the mesh: the chain to the cluster CA (webpki's client
/// rules), then the names and the revocation list.
#[derive(Debug)]
pub(crate) struct PeerVerifier {
    chained: Arc<dyn ClientCertVerifier>,
    /// Our own cluster; a peer must name the same (or, for configured certificates without a
    /// cluster, also none).
    cluster_id: Option<String>,
    revoked: RevokedPeers,
}

impl PeerVerifier {
    pub(crate) fn new(
        roots: Arc<rustls::RootCertStore>,
        provider: Arc<rustls::crypto::CryptoProvider>,
        cluster_id: Option<String>,
        revoked: RevokedPeers,
    ) -> Result<Self, rustls::server::VerifierBuilderError> {
        let chained = WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
        Ok(Self {
            chained,
            cluster_id,
            revoked,
        })
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        self.chained
            .verify_client_cert(end_entity, intermediates, now)?;
        let name = PeerName::of(end_entity.as_ref())
            .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if name.cluster_id != self.cluster_id {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if self.revoked.contains(&name.serial) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(())
    }
}

/// The handshake-signature checks, the same whichever side the peer is: the chain verifier's.
macro_rules! signatures_checked_by_the_chain {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.chained.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.chained.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.chained.supported_verify_schemes()
        }
    };
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chained.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    signatures_checked_by_the_chain!();
}

impl RustlsServerVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // Peers are dialled by address; the edge the certificate names is checked by the shell
        // against what the peer says it is.
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked_by_the_chain!();
}

/// The peer a QUIC connection's verified certificate names.
pub(crate) fn peer_of(conn: &quinn::Connection) -> Option<PeerName> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    PeerName::of(chain.first()?.as_ref())
}

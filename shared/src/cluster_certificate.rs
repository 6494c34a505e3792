//! Who a cluster certificate names, and the one rustls verifier that checks a peer of the
//! cluster, used by the control plane's gRPC listener (edges as clients) and by the edges' mesh
//! (edges as clients and servers). A certificate is accepted when it chains to a trusted cluster
//! CA and is within its validity (webpki's client-certificate rules, whichever side the peer
//! is), names an edge (a non-empty subject CN), names the expected cluster (the subject's O,
//! `freya cluster <id>`) and its serial is not revoked. Trust comes from the CA, never from an
//! address or a DNS name. Built only with the `tls` feature: the SIP crate and the fuzzers do
//! not carry rustls.

use std::fmt::Debug;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The organisation prefix the cluster CA writes into every certificate it issues (the control
/// plane writes it, both sides read it back).
pub const CLUSTER_ORG_PREFIX: &str = "freya cluster ";

/// The edge, cluster and serial a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateName {
    /// The subject's CN: the edge's id.
    pub edge_id: String,
    /// The cluster id from the subject's O, `None` for a certificate naming none (a mesh run
    /// with configured certificates and no control plane).
    pub cluster_id: Option<String>,
    /// The serial, lowercase hex, as the control plane's revocation list spells it.
    pub serial: String,
}

impl CertificateName {
    /// What the certificate (DER) names; `None` when it names no edge (no CN, or an empty one).
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
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        Self::of(der.as_ref())
    }
}

/// Where the chain and validity checks come from: webpki's client verifier under the trusted
/// CAs, fixed (the mesh) or of the moment (the control plane, whose CAs rotate without a
/// restart).
pub trait ChainVerifier: Debug + Send + Sync {
    /// The verifier to use for this handshake.
    fn chain(&self) -> Arc<dyn ClientCertVerifier>;
}

impl ChainVerifier for Arc<dyn ClientCertVerifier> {
    fn chain(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(self)
    }
}

/// The serials refused at the handshake, whoever keeps the list.
pub trait RevocationList: Debug + Send + Sync {
    /// Whether `serial` (lowercase hex) is revoked.
    fn is_revoked(&self, serial: &str) -> bool;
}

/// The one verifier of a cluster peer, as a client (`ClientCertVerifier`) or as a server
/// (`ServerCertVerifier`): the chain, then the names and the revocation list.
#[derive(Debug)]
pub struct ClusterPeerVerifier<C, R> {
    chain: C,
    revoked: R,
    /// The cluster a peer must name (`None`: a peer naming none, for configured certificates
    /// without a cluster).
    cluster_id: Option<String>,
    root_hints: Vec<DistinguishedName>,
    client_auth_mandatory: bool,
}

impl<C: ChainVerifier, R: RevocationList> ClusterPeerVerifier<C, R> {
    /// A verifier requiring a client certificate, naming `cluster_id`, not in `revoked`, and
    /// sending no CA hints.
    pub fn new(chain: C, revoked: R, cluster_id: Option<String>) -> Self {
        Self {
            chain,
            revoked,
            cluster_id,
            root_hints: Vec::new(),
            client_auth_mandatory: true,
        }
    }

    /// Sends the chain verifier's CA subjects as hints (for a fixed set of CAs; a rotating set
    /// would change them under a peer, which holds one certificate anyway).
    pub fn with_root_hints(mut self) -> Self {
        self.root_hints = self.chain.chain().root_hint_subjects().to_vec();
        self
    }

    /// Lets a client without a certificate complete the handshake (what it may reach is then
    /// the server's to decide).
    pub fn allowing_anonymous_clients(mut self) -> Self {
        self.client_auth_mandatory = false;
        self
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .chain
            .chain()
            .verify_client_cert(end_entity, intermediates, now)?;
        let name = CertificateName::of(end_entity.as_ref())
            .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if name.cluster_id != self.cluster_id {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if self.revoked.is_revoked(&name.serial) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }
}

/// The handshake-signature checks, the same whichever side the peer is: the chain verifier's.
/// (A macro because they are methods of two traits.)
macro_rules! signatures_checked_by_the_chain {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.chain
                .chain()
                .verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.chain
                .chain()
                .verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.chain.chain().supported_verify_schemes()
        }
    };
}

impl<C: ChainVerifier, R: RevocationList> ClientCertVerifier for ClusterPeerVerifier<C, R> {
    fn client_auth_mandatory(&self) -> bool {
        self.client_auth_mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity, intermediates, now)
    }

    signatures_checked_by_the_chain!();
}

impl<C: ChainVerifier, R: RevocationList> ServerCertVerifier for ClusterPeerVerifier<C, R> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // Peers are dialled by address; the edge the certificate names is checked by the caller
        // against what the peer says it is.
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    signatures_checked_by_the_chain!();
}

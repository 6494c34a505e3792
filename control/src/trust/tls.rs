//! The gRPC listener's TLS: a rustls server configuration whose client verification accepts only
//! certificates chained to a trusted cluster CA (two while a rotation overlaps, `anchors.rs`),
//! within their validity, whose serial is not revoked — checked during the handshake, so a
//! foreign, expired or revoked certificate never reaches a handler. A client may also present no
//! certificate at all: such a connection reaches only `EdgeEnrolment` (the `EdgeControl`
//! interceptor refuses it).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, ServerConfig,
    SignatureScheme,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::anchors::ClusterTrust;
use super::revoked::RevokedSerials;
use super::{TrustError, CLUSTER_ORG_PREFIX};

/// Who a verified client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeCertificate {
    pub edge_id: String,
    pub cluster_id: String,
    /// Lowercase hex.
    pub serial: String,
}

/// The edge, cluster and serial a certificate (DER) names; `None` when it names no edge of a
/// Freya cluster.
pub fn edge_certificate(der: &[u8]) -> Option<EdgeCertificate> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let edge_id = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let cluster_id = subject
        .iter_organization()
        .next()?
        .as_str()
        .ok()?
        .strip_prefix(CLUSTER_ORG_PREFIX)?
        .to_owned();
    Some(EdgeCertificate {
        edge_id,
        cluster_id,
        serial: hex::encode(cert.raw_serial()),
    })
}

/// The server configuration for the gRPC listener: this process's identity and the trusted CAs
/// as client roots, both read from `trust` at each handshake (so a rotation takes effect without
/// a restart), and the revocation list.
pub fn server_config(
    trust: &ClusterTrust,
    revoked: RevokedSerials,
) -> Result<Arc<ServerConfig>, TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(NotRevoked {
            trust: trust.clone(),
            revoked,
            cluster_id: trust.cluster_id(),
        }))
        .with_cert_resolver(Arc::new(ServingCertificate(trust.clone())));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// This process's server certificate under the serving CA of the moment.
#[derive(Debug)]
struct ServingCertificate(ClusterTrust);

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().server_key.clone())
    }
}

/// WebPKI's chain and validity checks under the trusted CAs of the moment, then the
/// revocation list and the cluster named.
#[derive(Debug)]
struct NotRevoked {
    trust: ClusterTrust,
    revoked: RevokedSerials,
    cluster_id: String,
}

impl std::fmt::Debug for RevokedSerials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevokedSerials(..)")
    }
}

impl ClientCertVerifier for NotRevoked {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Enrolment is served to clients without a certificate; `EdgeControl` refuses them.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would change with the set; an edge holds one certificate and sends it
        // whatever the hints say.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified =
            self.trust
                .current()
                .verifier
                .verify_client_cert(end_entity, intermediates, now)?;
        let named = edge_certificate(end_entity)
            .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if named.cluster_id != self.cluster_id {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if self.revoked.contains(&named.serial) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.trust
            .current()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.trust
            .current()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust.current().verifier.supported_verify_schemes()
    }
}

//! The gRPC listener's TLS: a rustls server configuration whose client verification accepts only
//! certificates chained to a trusted cluster CA (two while a rotation overlaps, `anchors.rs`),
//! within their validity, whose serial is not revoked — checked during the handshake, so a
//! foreign, expired or revoked certificate never reaches a handler. A client may also present no
//! certificate at all: such a connection reaches only `EdgeEnrolment` (the `EdgeControl`
//! interceptor refuses it).

use std::sync::Arc;

use freya_shared::cluster_certificate::{
    CertificateName, ChainVerifier, ClusterPeerVerifier, RevocationList,
};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::anchors::ClusterTrust;
use super::revoked::RevokedSerials;
use super::TrustError;

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
    let named = CertificateName::of(der)?;
    Some(EdgeCertificate {
        edge_id: named.edge_id,
        cluster_id: named.cluster_id?,
        serial: named.serial,
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
        .with_client_cert_verifier(Arc::new(
            // Enrolment is served to clients without a certificate; `EdgeControl` refuses them.
            // No CA hints: they would change with the set, and an edge holds one certificate
            // and sends it whatever the hints say.
            ClusterPeerVerifier::new(trust.clone(), revoked, Some(trust.cluster_id()))
                .allowing_anonymous_clients(),
        ))
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

/// WebPKI's chain and validity checks under the trusted CAs of the moment.
impl ChainVerifier for ClusterTrust {
    fn chain(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.current().verifier)
    }
}

impl RevocationList for RevokedSerials {
    fn is_revoked(&self, serial: &str) -> bool {
        self.contains(serial)
    }
}

impl std::fmt::Debug for RevokedSerials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevokedSerials(..)")
    }
}

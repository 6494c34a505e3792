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

use freya_shared::cluster_certificate::{CertificateName, ClusterPeerVerifier, RevocationList};
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;

/// The edge and cluster a peer's certificate names.
pub type PeerName = CertificateName;

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

impl RevocationList for RevokedPeers {
    fn is_revoked(&self, serial: &str) -> bool {
        self.contains(serial)
    }
}

/// The one verifier for both sides of the mesh: the chain to the cluster CA (webpki's client
/// rules, whose CAs it hints), then the names and the revocation list.
pub(crate) type PeerVerifier = ClusterPeerVerifier<Arc<dyn ClientCertVerifier>, RevokedPeers>;

/// The mesh's verifier under `roots`: a peer must name `cluster_id`, our own (or, for configured
/// certificates without a cluster, also none).
pub(crate) fn peer_verifier(
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    cluster_id: Option<String>,
    revoked: RevokedPeers,
) -> Result<PeerVerifier, rustls::server::VerifierBuilderError> {
    let chained = WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
    Ok(ClusterPeerVerifier::new(chained, revoked, cluster_id).with_root_hints())
}

/// The peer a QUIC connection's verified certificate names.
pub(crate) fn peer_of(conn: &quinn::Connection) -> Option<PeerName> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    PeerName::of(chain.first()?.as_ref())
}

//! Mutual TLS for the mesh. Every edge holds one [`MeshTls`]: the cluster CA's certificate, its
//! own certificate chained to that CA, and its private key. Both sides of a connection present
//! their certificate and accept only one issued by the cluster CA, so a peer from another
//! cluster (or none) is refused in the handshake, before any mesh byte is read. TLS 1.3 only
//! (QUIC requires it), with the `ring` provider already in the tree.
//!
//! The certificates come as one value so their source can change: an enrolled edge uses its
//! cluster identity ([`MeshTls::from_identity`]: the certificate the control plane issued, the
//! cluster CA as the only root); only a mesh without any control plane reads three PEM files
//! ([`MeshTls::load`], `[mesh] ca_file`, `cert_file`, `key_file`), which tests and the bridge
//! bench make with [`dev_pki`]. What a peer's certificate must name is checked in `verify.rs`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::verify::{peer_verifier, PeerName, PeerVerifier, RevokedPeers};
use crate::trust::ClusterIdentity;

/// The name every cluster certificate carries and every mesh client asks for: trust comes from
/// the cluster CA, not from the name, and peers are reached by address.
pub const MESH_SERVER_NAME: &str = "mesh.freya.internal";
/// The ALPN protocol of the mesh; a client speaking anything else is refused.
pub const MESH_ALPN: &[u8] = b"freya-mesh/1";

/// An edge's mesh credentials, PEM-encoded.
#[derive(Clone)]
pub struct MeshTls {
    /// The cluster CA's certificate: the only issuer trusted for peers.
    pub ca_cert_pem: String,
    /// This edge's certificate (and any intermediates), issued by the cluster CA.
    pub cert_pem: String,
    /// This edge's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl std::fmt::Debug for MeshTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("MeshTls").finish_non_exhaustive()
    }
}

/// Why the mesh's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MeshTlsError {
    #[error("while reading {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0} holds no PEM certificate or key")]
    NoPem(&'static str),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC refused the TLS configuration: {0}")]
    Quic(String),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

impl MeshTls {
    /// Reads the three PEM files; the one place certificates enter the mesh from disk.
    pub fn load(ca_file: &Path, cert_file: &Path, key_file: &Path) -> Result<Self, MeshTlsError> {
        let read = |what, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| MeshTlsError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        Ok(Self {
            ca_cert_pem: read("mesh.ca_file", ca_file)?,
            cert_pem: read("mesh.cert_file", cert_file)?,
            key_pem: read("mesh.key_file", key_file)?,
        })
    }

    /// The edge's cluster identity (the certificate the control plane issued, the cluster CA as
    /// the only root): what an enrolled edge's mesh uses.
    pub fn from_identity(identity: &ClusterIdentity) -> Self {
        Self {
            ca_cert_pem: identity.ca_pem.clone(),
            cert_pem: identity.cert_pem.clone(),
            key_pem: identity.key_pem.clone(),
        }
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, MeshTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
            let cert = cert.map_err(|_| MeshTlsError::NoPem("mesh.ca_file"))?;
            roots.add(cert)?;
            any = true;
        }
        if !any {
            return Err(MeshTlsError::NoPem("mesh.ca_file"));
        }
        Ok(Arc::new(roots))
    }

    fn identity(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), MeshTlsError> {
        let chain: Vec<_> = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| MeshTlsError::NoPem("mesh.cert_file"))?;
        if chain.is_empty() {
            return Err(MeshTlsError::NoPem("mesh.cert_file"));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|_| MeshTlsError::NoPem("mesh.key_file"))?;
        Ok((chain, key))
    }

    /// The server side with no revocation list (tests, and a mesh without a control plane).
    pub fn quic_server(&self) -> Result<quinn::crypto::rustls::QuicServerConfig, MeshTlsError> {
        self.quic_server_with(&RevokedPeers::default())
    }

    /// The client side with no revocation list.
    pub fn quic_client(&self) -> Result<quinn::crypto::rustls::QuicClientConfig, MeshTlsError> {
        self.quic_client_with(&RevokedPeers::default())
    }

    fn verifier(&self, revoked: &RevokedPeers) -> Result<Arc<PeerVerifier>, MeshTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cluster = PeerName::of_pem(&self.cert_pem)
            .ok_or(MeshTlsError::NoPem("mesh.cert_file"))?
            .cluster_id;
        Ok(Arc::new(peer_verifier(
            self.roots()?,
            provider,
            cluster,
            revoked.clone(),
        )?))
    }

    /// The server side: our certificate, and a client certificate naming an edge of our cluster,
    /// from the cluster CA and not in `revoked`, required.
    pub fn quic_server_with(
        &self,
        revoked: &RevokedPeers,
    ) -> Result<quinn::crypto::rustls::QuicServerConfig, MeshTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key) = self.identity()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(self.verifier(revoked)?)
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![MESH_ALPN.to_vec()];
        quinn::crypto::rustls::QuicServerConfig::try_from(config)
            .map_err(|e| MeshTlsError::Quic(e.to_string()))
    }

    /// The client side: the server's certificate is checked as the server checks ours; ours
    /// goes along.
    pub fn quic_client_with(
        &self,
        revoked: &RevokedPeers,
    ) -> Result<quinn::crypto::rustls::QuicClientConfig, MeshTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, key) = self.identity()?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier(revoked)?)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![MESH_ALPN.to_vec()];
        quinn::crypto::rustls::QuicClientConfig::try_from(config)
            .map_err(|e| MeshTlsError::Quic(e.to_string()))
    }
}

/// A cluster CA and one certificate per edge, for `freya dev` and tests: a production cluster's
/// come from its own CA. Returns the CA's PEM and each edge's [`MeshTls`], in `edge_ids` order.
pub fn dev_pki(cluster: &str, edge_ids: &[&str]) -> Result<Vec<MeshTls>, MeshTlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{cluster} mesh CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let ca_cert_pem = ca.pem();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    edge_ids
        .iter()
        .map(|edge_id| {
            let mut params = CertificateParams::new(vec![MESH_SERVER_NAME.to_owned()])?;
            params.distinguished_name.push(DnType::CommonName, *edge_id);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            Ok(MeshTls {
                ca_cert_pem: ca_cert_pem.clone(),
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            })
        })
        .collect()
}

/// Writes a CA and a certificate per edge into `dir` (`mesh-ca.pem`, `mesh-<edge>.pem`,
/// `mesh-<edge>.key`; the directory 0700, keys 0600) unless all are already there, for a mesh run
/// with configured certificate files and no control plane (`[mesh] ca_file`/`cert_file`/`key_file`)
/// and for tests of one; returns each edge's three paths (CA, certificate, key).
pub fn write_dev_pki(
    dir: &Path,
    edge_ids: &[&str],
) -> Result<Vec<[std::path::PathBuf; 3]>, MeshTlsError> {
    let ca = dir.join("mesh-ca.pem");
    let paths: Vec<[std::path::PathBuf; 3]> = edge_ids
        .iter()
        .map(|id| {
            [
                ca.clone(),
                dir.join(format!("mesh-{id}.pem")),
                dir.join(format!("mesh-{id}.key")),
            ]
        })
        .collect();
    if paths.iter().flatten().all(|p| p.exists()) {
        return Ok(paths);
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| MeshTlsError::Read {
            what: "a dev mesh credential",
            path,
            source,
        }
    };
    freya_shared::private_files::create_dir(dir).map_err(io(dir))?;
    let pki = dev_pki("freya dev", edge_ids)?;
    for (tls, [ca, cert, key]) in pki.iter().zip(&paths) {
        std::fs::write(ca, &tls.ca_cert_pem).map_err(io(ca))?;
        std::fs::write(cert, &tls.cert_pem).map_err(io(cert))?;
        freya_shared::private_files::write(key, tls.key_pem.as_bytes()).map_err(io(key))?;
    }
    Ok(paths)
}

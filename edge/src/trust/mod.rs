//! The edge's identity in the cluster: the CA certificate it trusts for the control plane (and,
//! later, for its peers), its own certificate, and the key it made for it — one small value,
//! [`ClusterIdentity`], kept in `control.cert_dir` (owner-only files) and used for every mutual
//! TLS link, so a QUIC mesh can use the same certificates. The edge gets it by enrolling with a
//! one-time join token (`enrol.rs`) and renews it at two thirds of its life (`renewal.rs`) over
//! the mutual TLS link that `tls.rs` sets up; the QUIC mesh presents the same certificate, and
//! `revocations.rs` applies the control plane's revocation list to the mesh and gossip.

mod enrol;
pub(crate) mod link;
pub(crate) mod renewal;
/// The revocation list from the control plane, and what applies it to the mesh and gossip.
pub mod revocations;
mod tls;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use freya_shared::private_files;

pub use enrol::{enrol, enrol_with_retries, new_key_and_csr, EnrolError};
pub use revocations::{Revocations, RevokedCertificate};
pub use tls::{mtls_channel, mtls_client_config, ControlTls, CONTROL_SERVER_NAME};

const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const CLUSTER_FILE: &str = "cluster.json";

/// An edge's certificates and key: everything a mutual TLS peer in the cluster needs.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// The cluster's trust bundle (PEM, one block per CA): the only roots trusted for the
    /// control plane. One CA, or two while the cluster's CA is being rotated (see
    /// [`ClusterIdentity::ca_bundle_der`]).
    pub ca_pem: String,
    /// This edge's certificate (PEM), signed by the CA, naming the edge and the cluster.
    pub cert_pem: String,
    /// This edge's private key (PKCS#8 PEM). Never leaves the edge.
    pub key_pem: String,
    /// The cluster's id, as the certificate's subject names it.
    pub cluster_id: String,
    /// The secret all the cluster's edges share, for what certificates do not cover yet: sealing
    /// gossip datagrams and signing Twilio stream tickets. Handed out by the control plane with
    /// each certificate, over TLS.
    pub cluster_secret: String,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

/// A certificate's validity period (its `notBefore` and `notAfter`): the edge's cluster
/// certificate's, or an ACME certificate's (`serve/acme/renewal.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// When to renew: two thirds of the way through the certificate's life.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + life * 2 / 3
    }
}

/// Why the identity could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not a readable certificate")]
    BadCertificate(&'static str),
    #[error("{path} is not valid: {message}")]
    BadFile { path: String, message: String },
}

#[derive(Serialize, Deserialize)]
struct ClusterFile {
    cluster_id: String,
    cluster_secret: String,
}

impl ClusterIdentity {
    /// The identity kept in `dir`, or `None` when the edge has not enrolled (no certificate).
    pub fn load(dir: &Path) -> Result<Option<Self>, IdentityError> {
        if !dir.join(CERT_FILE).exists() {
            return Ok(None);
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| IdentityError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let cluster_path = dir.join(CLUSTER_FILE);
        let cluster: ClusterFile =
            serde_json::from_str(&read(CLUSTER_FILE)?).map_err(|e| IdentityError::BadFile {
                path: cluster_path.display().to_string(),
                message: e.to_string(),
            })?;
        let identity = Self {
            ca_pem: read(CA_FILE)?,
            cert_pem: read(CERT_FILE)?,
            key_pem: read(KEY_FILE)?,
            cluster_id: cluster.cluster_id,
            cluster_secret: cluster.cluster_secret,
        };
        identity.validity()?;
        Ok(Some(identity))
    }

    /// Writes the identity to `dir` (created owner-only), each file replaced whole, the
    /// certificate last: a crash mid-way leaves the old certificate, which the old key (if
    /// replaced) no longer matches — the next start then sees a failed handshake and the
    /// operator re-enrols. Each file is written to a temporary name and renamed.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| IdentityError::Io { path, source }
        };
        private_files::create_dir(dir).map_err(io(dir))?;
        let cluster = serde_json::to_string(&ClusterFile {
            cluster_id: self.cluster_id.clone(),
            cluster_secret: self.cluster_secret.clone(),
        })
        .map_err(|e| IdentityError::BadFile {
            path: CLUSTER_FILE.into(),
            message: e.to_string(),
        })?;
        for (name, text) in [
            (CLUSTER_FILE, cluster.as_str()),
            (CA_FILE, self.ca_pem.as_str()),
            (KEY_FILE, self.key_pem.as_str()),
            (CERT_FILE, self.cert_pem.as_str()),
        ] {
            let path = dir.join(name);
            let temporary = dir.join(format!("{name}.new"));
            private_files::write(&temporary, text.as_bytes()).map_err(io(&temporary))?;
            std::fs::rename(&temporary, &path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Every CA certificate (DER) of the trust bundle, in its order: what a mutual TLS peer of
    /// this cluster (the control plane, or another edge over the mesh) may chain to. A block
    /// that is not a certificate is left out.
    pub fn ca_bundle_der(&self) -> Vec<Vec<u8>> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes())
            .filter_map(Result::ok)
            .map(|der| der.to_vec())
            .collect()
    }

    /// The edge certificate's validity.
    pub fn validity(&self) -> Result<Validity, IdentityError> {
        let der = pem_der(&self.cert_pem).ok_or(IdentityError::BadCertificate(CERT_FILE))?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|_| IdentityError::BadCertificate(CERT_FILE))?;
        let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
        Ok(Validity {
            not_before: at(cert.validity().not_before.timestamp()),
            not_after: at(cert.validity().not_after.timestamp()),
        })
    }
}

/// The DER of the first PEM block of `pem_text`.
pub(crate) fn pem_der(pem_text: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem_text.as_bytes())
        .ok()
        .map(|der| der.to_vec())
}

//! The CAs this control-plane process trusts, held in memory for the TLS handshake (which cannot
//! wait on the database) and replaced whole when the set changes: after this process rotates or
//! retires a CA at once, and otherwise when the poll (every `edges.revocation_poll_ms`, beside the
//! revocation list) sees another process's rotation.
//!
//! Outside a rotation the set is one CA. During one it is two, oldest first: the **serving** CA
//! (the oldest) signs this process's server certificate, because every edge — renewed or not —
//! trusts it; the **issuing** CA (the newest) signs every new edge certificate; edge certificates
//! from either are accepted, and edges are handed both as their trust bundle. Retiring the old
//! CA (by an admin, or by itself after `edges.ca_overlap_seconds`) leaves the new one alone in
//! all three roles.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use tokio_util::sync::CancellationToken;

use super::{ClusterCa, TrustError};
use crate::store::Store;

/// One generation of trust: the CAs, and what the handshake needs built from them.
pub struct CaSet {
    /// Oldest first; never empty.
    cas: Vec<ClusterCa>,
    /// Accepts client certificates chained to any CA of the set (or none at all: enrolment).
    pub(super) verifier: Arc<dyn ClientCertVerifier>,
    /// This process's server certificate, under the serving CA, with its key.
    pub(super) server_key: Arc<CertifiedKey>,
}

impl CaSet {
    fn build(cas: Vec<ClusterCa>) -> Result<Self, TrustError> {
        let serving = cas
            .first()
            .ok_or(TrustError::Store(crate::store::StoreError::NotFound))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in &cas {
            roots.add(CertificateDer::from(ca.certificate_der().to_vec()))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TrustError::Tls(rustls::Error::General(e.to_string())))?;
        let identity = serving.server_identity()?;
        let chain = identity
            .chain
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der));
        let signing = provider.key_provider.load_private_key(key)?;
        Ok(Self {
            cas,
            verifier,
            server_key: Arc::new(CertifiedKey::new(chain, signing)),
        })
    }

    /// Every trusted CA, oldest first.
    pub fn cas(&self) -> &[ClusterCa] {
        &self.cas
    }

    /// The CA this process's server certificate is under: the one every edge trusts.
    pub fn serving(&self) -> &ClusterCa {
        &self.cas[0]
    }

    /// The CA new edge certificates are issued under.
    pub fn issuing(&self) -> &ClusterCa {
        &self.cas[self.cas.len() - 1]
    }

    /// Whether a rotation is under way (more than one CA trusted).
    pub fn overlapping(&self) -> bool {
        self.cas.len() > 1
    }

    /// The trust bundle handed to edges: every trusted CA's certificate (PEM), oldest first.
    pub fn bundle_pem(&self) -> String {
        let mut bundle = String::new();
        for ca in &self.cas {
            bundle.push_str(ca.certificate_pem().trim_end());
            bundle.push('\n');
        }
        bundle
    }

    /// Whether `fingerprint` is a trusted CA's.
    pub fn trusts_fingerprint(&self, fingerprint: &str) -> bool {
        self.cas.iter().any(|ca| ca.fingerprint() == fingerprint)
    }

    fn ids(&self) -> Vec<i64> {
        self.cas.iter().map(ClusterCa::id).collect()
    }
}

/// The process's current [`CaSet`], cheap to clone and shared by the TLS listener, enrolment,
/// renewal and the API.
#[derive(Clone)]
pub struct ClusterTrust(Arc<RwLock<Arc<CaSet>>>);

impl std::fmt::Debug for ClusterTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTrust")
            .field("cas", &self.current().ids())
            .finish()
    }
}

impl ClusterTrust {
    /// The store's trusted CAs, the first made if this is the cluster's first start.
    pub async fn load_or_create(store: &Store) -> Result<Self, TrustError> {
        let cas = ClusterCa::load_all_or_create(store).await?;
        Ok(Self(Arc::new(RwLock::new(Arc::new(CaSet::build(cas)?)))))
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<CaSet> {
        match self.0.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the trusted CAs again and, if they changed, builds and installs the new set;
    /// whether it changed.
    pub async fn refresh(&self, store: &Store) -> Result<bool, TrustError> {
        let ids = store.trusted_cluster_ca_ids().await?;
        if ids == self.current().ids() || ids.is_empty() {
            return Ok(false);
        }
        let cas = store
            .trusted_cluster_cas()
            .await?
            .iter()
            .map(ClusterCa::from_stored)
            .collect::<Result<Vec<_>, _>>()?;
        let set = Arc::new(CaSet::build(cas)?);
        tracing::info!(cas = ?set.ids(), serving = %set.serving().fingerprint(), issuing = %set.issuing().fingerprint(), "the cluster's trusted CAs changed");
        match self.0.write() {
            Ok(mut current) => *current = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(true)
    }

    /// Refreshes every `interval` until `shutdown`; a failed read keeps the last set. With
    /// `overlap` (`edges.ca_overlap_seconds`), retires the old CA once the newest is that old.
    pub async fn run(
        self,
        store: Store,
        interval: Duration,
        overlap: Option<Duration>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.refresh(&store).await {
                tracing::warn!(error = %e, "could not re-read the cluster's CAs; keeping the last set");
                continue;
            }
            let Some(overlap) = overlap else { continue };
            let set = self.current();
            let age_ms = freya_shared::ids::now_ms() - set.issuing().created_at_ms();
            if set.overlapping() && age_ms >= i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX)
            {
                let by = super::rotation::RotationActor {
                    actor: "edges.ca_overlap_seconds",
                    source_ip: None,
                };
                // Another replica may retire it first: its conflict is no failure.
                match super::rotation::retire(&store, &self, &by).await {
                    Ok(_) | Err(TrustError::Store(crate::store::StoreError::Conflict(_))) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not retire the old CA after its overlap")
                    }
                }
            }
        }
    }

    /// The cluster's id (the same for every CA of a rotation).
    pub fn cluster_id(&self) -> String {
        self.current().serving().cluster_id().to_owned()
    }

    /// The serving CA's fingerprint: what a join token made now pins, since the server's
    /// certificate an enrolling edge checks is under that CA.
    pub fn fingerprint(&self) -> String {
        self.current().serving().fingerprint()
    }

    /// The serving CA's certificate (PEM).
    pub fn certificate_pem(&self) -> String {
        self.current().serving().certificate_pem().to_owned()
    }

    /// The trust bundle handed to edges (see [`CaSet::bundle_pem`]).
    pub fn bundle_pem(&self) -> String {
        self.current().bundle_pem()
    }

    /// The secret the cluster's edges share, unchanged by rotations.
    pub fn cluster_secret(&self) -> String {
        self.current().serving().cluster_secret()
    }
}

//! The control plane as the cluster's certificate authority. The CA (an ECDSA P-256 key and a
//! self-signed certificate, made with rcgen on the first start of any control-plane process and
//! kept in the store, its key sealed) signs two kinds of certificate: each edge's client
//! certificate, short-lived, for the key the edge made itself (its CSR), whose subject names the
//! edge (CN) and the cluster (O); and each control-plane process's own TLS server certificate,
//! made at start and held in memory only. Edges trust nothing else for the control plane: the
//! CA's fingerprint travels in their join token.

pub mod anchors;
pub mod join;
pub mod revoked;
pub mod rotation;
pub mod tls;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use crate::store::{Store, StoreError, StoredCa};
use freya_shared::join_token::fingerprint;

/// The name every control-plane server certificate carries and every edge checks, whatever
/// address it dialled: trust comes from the pinned CA, not from DNS.
pub const CONTROL_SERVER_NAME: &str = "freya-control";
/// The organisation every certificate of a cluster names: `freya cluster <cluster id>`.
pub const CLUSTER_ORG_PREFIX: &str = "freya cluster ";
/// How long the CA is valid. Replacing it means re-enrolling every edge (see SECURITY.md).
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a control-plane process's server certificate is valid; a process is restarted
/// (upgrades, rolling restarts) far more often.
const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Allowance for clocks that differ between machines: a certificate is valid from up to this long
/// before it was issued.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Largest CSR accepted, in bytes (a P-256 or RSA-4096 CSR is well under 2 KiB).
pub const MAX_CSR_BYTES: usize = 8 * 1024;

/// Why the CA could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("the certificate signing request is larger than {MAX_CSR_BYTES} bytes")]
    CsrTooLarge,
    #[error("the certificate signing request is not valid: {0}")]
    BadCsr(rcgen::Error),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// A certificate the CA issued to an edge.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub certificate_pem: String,
    /// Lowercase hex, as stored and as the revocation check compares it.
    pub serial: String,
    pub not_after_unix: i64,
}

/// A TLS server identity for one control-plane process: its certificate chain (DER: its own,
/// then the CA's) and its key (PKCS#8 DER).
pub struct ServerIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key_der: Vec<u8>,
}

/// The cluster's CA, loaded.
pub struct ClusterCa {
    /// Its row in `cluster_trust` (0 for one not stored).
    id: i64,
    /// When it was made (ms).
    created_at_ms: i64,
    cluster_id: String,
    /// HMAC-SHA256 of a fixed label under the CA key, hex: see [`ClusterCa::cluster_secret`].
    cluster_secret: String,
    certificate_pem: String,
    certificate_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// The store's CA (the oldest trusted one, which control-plane servers present), made and
    /// stored first if this is the cluster's first start.
    pub async fn load_or_create(store: &Store) -> Result<Self, TrustError> {
        let mut all = Self::load_all_or_create(store).await?;
        Ok(all.remove(0))
    }

    /// Every CA the cluster trusts, oldest first (never empty), the first made and stored if
    /// this is the cluster's first start.
    pub async fn load_all_or_create(store: &Store) -> Result<Vec<Self>, TrustError> {
        let mut stored = store.trusted_cluster_cas().await?;
        if stored.is_empty() {
            let made = Self::generate(&uuid::Uuid::new_v4().to_string())?;
            stored = store.cluster_ca_or_insert(&made).await?;
            if stored
                .first()
                .is_some_and(|kept| kept.cluster_id == made.cluster_id)
            {
                tracing::info!(cluster = %made.cluster_id, "created the cluster's certificate authority");
            }
        }
        stored.iter().map(Self::from_stored).collect()
    }

    /// A new CA for cluster `cluster_id`, not stored (tests make foreign clusters with it).
    pub fn generate(cluster_id: &str) -> Result<StoredCa, TrustError> {
        Self::generate_named(cluster_id, &format!("Freya cluster CA {cluster_id}"))
    }

    /// A new CA for cluster `cluster_id` whose subject is `common_name`: each CA of a rotation
    /// has a name of its own, so that a chain never has two candidate issuers of one name.
    pub fn generate_named(cluster_id: &str, common_name: &str) -> Result<StoredCa, TrustError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = names(common_name, cluster_id);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = SystemTime::now();
        params.not_before = at(now - CLOCK_SKEW);
        params.not_after = at(now + CA_LIFETIME);
        params.serial_number = Some(random_serial());
        let certificate = params.self_signed(&key)?;
        Ok(StoredCa {
            id: 0,
            cluster_id: cluster_id.to_owned(),
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            cluster_secret: None,
            created_at_ms: freya_shared::ids::now_ms(),
        })
    }

    /// The CA from its stored form.
    pub fn from_stored(stored: &StoredCa) -> Result<Self, TrustError> {
        let key = KeyPair::from_pem(&stored.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&stored.certificate_pem, key)?;
        let certificate_der = pem_to_der(&stored.certificate_pem)?;
        let cluster_secret = match &stored.cluster_secret {
            Some(carried) => carried.clone(),
            None => {
                use hmac::{Hmac, Mac};
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(stored.key_pem.as_bytes())
                    .map_err(|_| TrustError::Generate(rcgen::Error::CouldNotParseKeyPair))?;
                mac.update(b"freya cluster secret v1");
                hex::encode(mac.finalize().into_bytes())
            }
        };
        Ok(Self {
            id: stored.id,
            created_at_ms: stored.created_at_ms,
            cluster_secret,
            cluster_id: stored.cluster_id.clone(),
            certificate_pem: stored.certificate_pem.clone(),
            certificate_der,
            issuer,
        })
    }

    /// Its row in `cluster_trust`: 1 for the cluster's first CA, one more per rotation.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// When it was made (ms since the epoch).
    pub fn created_at_ms(&self) -> i64 {
        self.created_at_ms
    }

    /// The cluster's id, named in every certificate's subject.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The secret every edge shares for gossip seals and stream tickets: derived from the CA
    /// key, so every control-plane process hands out the same one without storing another.
    pub fn cluster_secret(&self) -> String {
        self.cluster_secret.clone()
    }

    /// The CA certificate (PEM), handed to every enrolled edge.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate (DER): the one root of the server's client verification.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// SHA-256 of the CA certificate's DER, hex: what a join token pins.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.certificate_der)
    }

    /// A client certificate for `edge_id` over the key in `csr_der` (whose signature proves the
    /// edge holds that key), valid from now (less the skew allowance) for `lifetime`. Whatever
    /// the CSR asks for besides its key is ignored: the CA decides the subject and the use.
    pub fn issue_for_edge(
        &self,
        edge_id: &str,
        csr_der: &[u8],
        lifetime: Duration,
    ) -> Result<IssuedCertificate, TrustError> {
        let now = SystemTime::now();
        // Backdated for clock skew, but by a small share of a short life, so that the edge's
        // renewal point (two thirds of the validity) stays in the future.
        let backdate = CLOCK_SKEW.min(lifetime / 10);
        self.issue_between(edge_id, csr_der, now - backdate, now + lifetime)
    }

    /// [`issue_for_edge`](Self::issue_for_edge) with a given validity (tests issue expired ones).
    pub fn issue_between(
        &self,
        edge_id: &str,
        csr_der: &[u8],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCertificate, TrustError> {
        if csr_der.len() > MAX_CSR_BYTES {
            return Err(TrustError::CsrTooLarge);
        }
        let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(TrustError::BadCsr)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = names(edge_id, &self.cluster_id);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = at(not_before);
        params.not_after = at(not_after);
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        let certificate = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedCertificate {
            certificate_pem: certificate.pem(),
            serial: serial_hex,
            not_after_unix: unix_seconds(not_after),
        })
    }

    /// A fresh TLS server identity for this process, signed by the CA.
    pub fn server_identity(&self) -> Result<ServerIdentity, TrustError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![CONTROL_SERVER_NAME.to_owned()])?;
        params.distinguished_name = names(CONTROL_SERVER_NAME, &self.cluster_id);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        params.not_before = at(now - CLOCK_SKEW);
        params.not_after = at(now + SERVER_CERT_LIFETIME);
        params.serial_number = Some(random_serial());
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(ServerIdentity {
            chain: vec![certificate.der().to_vec(), self.certificate_der.clone()],
            key_der: key.serialize_der(),
        })
    }
}

fn names(common_name: &str, cluster_id: &str) -> DistinguishedName {
    let mut names = DistinguishedName::new();
    names.push(DnType::CommonName, common_name);
    names.push(
        DnType::OrganizationName,
        format!("{CLUSTER_ORG_PREFIX}{cluster_id}"),
    );
    names
}

/// 16 random bytes, the top bit clear so the DER integer stays positive and 16 bytes long.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn at(time: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_seconds(time)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn pem_to_der(pem_text: &str) -> Result<Vec<u8>, TrustError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem_text.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|_| TrustError::Generate(rcgen::Error::CouldNotParseCertificate))
}

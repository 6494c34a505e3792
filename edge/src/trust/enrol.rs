//! Enrolment: the edge makes its own key (ECDSA P-256, rcgen), sends a CSR with its join token
//! to `EdgeEnrolment.Enrol` over a TLS connection that trusts only the CA the token pins, and
//! keeps what comes back. The key never leaves the edge; the token is sent only to a server
//! proven to hold a certificate from the pinned CA.

use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::tls::{mtls_channel, pinned_client_config, ControlTls};
use super::ClusterIdentity;
use crate::control_link::LinkError;
use freya_proto::v1::edge_enrolment_client::EdgeEnrolmentClient;
use freya_proto::v1::{EnrolRequest, IssuedCertificate};
use freya_shared::join_token::{fingerprint, JoinToken, MalformedJoinToken};

/// Why enrolment did not give the edge a certificate.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("control.join_token: {0}")]
    Token(#[from] MalformedJoinToken),
    #[error("could not make the edge's key or CSR: {0}")]
    Key(#[from] rcgen::Error),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the control plane refused the enrolment: {}", .0.message())]
    Refused(tonic::Status),
    #[error("the control plane answered with a CA other than the one the join token pins")]
    WrongCa,
}

impl EnrolError {
    /// Whether trying again may help (the control plane was unreachable), rather than the
    /// enrolment being refused or the token unusable.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Refused(status) if matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded
        ))
    }
}

/// A new key (PKCS#8 PEM) and a CSR (DER) for it naming `edge_id`.
pub fn new_key_and_csr(edge_id: &str) -> Result<(String, Vec<u8>), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut names = DistinguishedName::new();
    names.push(DnType::CommonName, edge_id);
    params.distinguished_name = names;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// Enrols edge `edge_id` with the control plane at `url` (`https://...`) using `join_token`.
pub async fn enrol(
    url: &str,
    join_token: &str,
    edge_id: &str,
    connect_timeout: Duration,
) -> Result<ClusterIdentity, EnrolError> {
    let token = JoinToken::parse(join_token)?;
    let (key_pem, csr_der) = new_key_and_csr(edge_id)?;
    let tls = ControlTls::new(pinned_client_config(&token.ca_fingerprint)?);
    let channel = mtls_channel(url, tls, connect_timeout)?;
    let issued = EdgeEnrolmentClient::new(channel)
        .enrol(EnrolRequest {
            join_token: token.to_text(),
            edge_id: edge_id.to_owned(),
            csr_der,
        })
        .await
        .map_err(EnrolError::Refused)?
        .into_inner();
    let identity = identity_from(issued, key_pem);
    if !identity
        .ca_bundle_der()
        .iter()
        .any(|ca| fingerprint(ca) == token.ca_fingerprint)
    {
        return Err(EnrolError::WrongCa);
    }
    Ok(identity)
}

/// [`enrol`], tried again with backoff while the control plane is unreachable, for up to
/// `patience`; a refusal ends it at once.
pub async fn enrol_with_retries(
    url: &str,
    join_token: &str,
    edge_id: &str,
    connect_timeout: Duration,
    patience: Duration,
) -> Result<ClusterIdentity, EnrolError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match enrol(url, join_token, edge_id, connect_timeout).await {
            Err(e) if e.is_transient() && started.elapsed() + pause < patience => {
                tracing::warn!(error = %e, "could not reach the control plane to enrol; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            outcome => return outcome,
        }
    }
}

/// The identity an answer and the key it was issued for make.
pub(crate) fn identity_from(issued: IssuedCertificate, key_pem: String) -> ClusterIdentity {
    ClusterIdentity {
        ca_pem: issued.ca_certificate_pem,
        cert_pem: issued.certificate_pem,
        key_pem,
        cluster_id: issued.cluster_id,
        cluster_secret: issued.cluster_secret,
    }
}

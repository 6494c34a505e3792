//! Renewal: at two thirds of the certificate's life the edge makes a new key, asks
//! `EdgeControl.RenewCertificate` over its mutual TLS link (the current certificate vouches for
//! it), keeps the answer in `control.cert_dir` and hands the new configuration to the connector,
//! so the next connection presents the new certificate and trusts the new bundle — to the
//! control plane and on the mesh (the endpoint takes the new credentials for new connections,
//! without a restart). The control plane's `RenewNow` command (after a CA rotation) renews at
//! once. A failure is retried with backoff; the old certificate serves until it expires.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::enrol::identity_from;
use super::{mtls_client_config, new_key_and_csr, ClusterIdentity, ControlTls};
use crate::control_link::LinkContext;
use freya_proto::v1::CertificateRequest;

/// Renews `identity` before each expiry until shutdown.
pub(crate) async fn run(
    link: LinkContext,
    tls: ControlTls,
    mut identity: ClusterIdentity,
    dir: PathBuf,
    mesh: Option<crate::mesh::Mesh>,
) {
    loop {
        let renew_at = identity
            .validity()
            .map(|v| v.renew_at())
            .unwrap_or_else(|_| SystemTime::now());
        let wait = renew_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        // The control plane's `RenewNow` (after a CA rotation) cuts the wait short.
        let woken = tokio::select! {
            awake = link.pause(wait) => awake,
            _ = link.renew_now.notified() => true,
        };
        if !woken {
            return;
        }
        let mut backoff = link.backoff();
        loop {
            match renew_once(&link, &identity).await {
                Ok(renewed) => {
                    if let Err(e) = renewed.save(&dir) {
                        tracing::error!(error = %e, "could not keep the renewed certificate; the next start re-enrols");
                    }
                    match mtls_client_config(&renewed) {
                        Ok(config) => tls.replace(config),
                        Err(e) => {
                            tracing::error!(error = %e, "the renewed certificate is unusable")
                        }
                    }
                    if let Some(mesh) = &mesh {
                        let tls = crate::mesh::MeshTls::from_identity(&renewed);
                        if let Err(e) = mesh.replace_tls(&tls) {
                            tracing::error!(error = %e, "the mesh cannot use the renewed certificate");
                        }
                    }
                    tracing::info!("renewed this edge's certificate");
                    identity = renewed;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew this edge's certificate; retrying");
                    if !link.pause(backoff.next_delay()).await {
                        return;
                    }
                }
            }
        }
    }
}

async fn renew_once(
    link: &LinkContext,
    identity: &ClusterIdentity,
) -> anyhow::Result<ClusterIdentity> {
    let (key_pem, csr_der) = new_key_and_csr(&link.edge_id)?;
    let issued = link
        .client
        .clone()
        .renew_certificate(CertificateRequest { csr_der })
        .await?
        .into_inner();
    let renewed = identity_from(issued, key_pem);
    // During a CA rotation the bundle grows (old and new CA), then shrinks (the new alone): a
    // control plane of this cluster always answers with a bundle holding a CA trusted now.
    let current = identity.ca_bundle_der();
    let answered = renewed.ca_bundle_der();
    if answered.is_empty() || !answered.iter().any(|ca| current.contains(ca)) {
        anyhow::bail!("the control plane answered with a trust bundle sharing no CA with ours");
    }
    if answered != current {
        tracing::info!(
            cas = answered.len(),
            "the cluster's trust bundle changed (a CA rotation)"
        );
    }
    Ok(renewed)
}

//! How this start of the edge will trust its link to the control plane: the dev-only shared
//! secret, or mutual TLS with the identity in `control.cert_dir` — enrolling first, with
//! `control.join_token`, when there is none or it has expired.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::{enrol_with_retries, mtls_client_config, ClusterIdentity, ControlTls};
use crate::config::{ControlLinkConfig, EdgeConfig};
use crate::control_link::{client_for, mtls_client_for, ControlClient, LinkError};

/// How long a first start keeps trying to reach the control plane to enrol.
const ENROL_PATIENCE: Duration = Duration::from_secs(60);

/// The link's trust for this run.
pub(crate) enum LinkTrust {
    /// `control.shared_secret`: plaintext, for `freya dev` and tests only.
    SharedSecret(String),
    /// Mutual TLS with `identity`, renewed in `dir`.
    Mtls {
        tls: ControlTls,
        identity: ClusterIdentity,
        dir: PathBuf,
    },
}

impl LinkTrust {
    /// The secret the edges share for gossip seals and stream tickets.
    pub(crate) fn cluster_secret(&self) -> &str {
        match self {
            Self::SharedSecret(secret) => secret,
            Self::Mtls { identity, .. } => &identity.cluster_secret,
        }
    }

    /// A client for the control plane's URLs, on connections of its own.
    pub(crate) fn client(
        &self,
        control: &ControlLinkConfig,
        edge_id: &str,
    ) -> Result<ControlClient, LinkError> {
        self.client_factory(control, edge_id)()
    }

    /// What makes a client later, perhaps on another thread or runtime (the cluster's own
    /// thread makes the one its reports go through: `cluster/shell.rs`, `on_own_thread`).
    pub(crate) fn client_factory(
        &self,
        control: &ControlLinkConfig,
        edge_id: &str,
    ) -> impl FnOnce() -> Result<ControlClient, LinkError> + Send + 'static {
        let (urls, edge_id) = (control.all_urls(), edge_id.to_owned());
        let timeout = Duration::from_millis(u64::from(control.connect_timeout_ms));
        // `Ok`: the shared secret; `Err`: the mutual TLS configuration.
        let secret_or_tls = match self {
            Self::SharedSecret(secret) => Ok(secret.clone()),
            Self::Mtls { tls, .. } => Err(tls.clone()),
        };
        move || match secret_or_tls {
            Ok(secret) => client_for(&urls, &secret, &edge_id, timeout),
            Err(tls) => mtls_client_for(&urls, tls, &edge_id, timeout),
        }
    }
}

/// Decides (and, for a new edge, sets up) the link's trust.
pub(crate) async fn link_trust(config: &EdgeConfig, edge_id: &str) -> anyhow::Result<LinkTrust> {
    if let Some(secret) = &config.control.shared_secret {
        tracing::warn!(
            "control.shared_secret is set: the link to the control plane runs the dev-only \
             shared-secret mode (plaintext); a cluster enrols with control.join_token instead"
        );
        return Ok(LinkTrust::SharedSecret(secret.clone()));
    }
    let dir = config
        .control
        .cert_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("trust"));
    let kept = ClusterIdentity::load(&dir)
        .with_context(|| format!("while reading the edge's certificate in {}", dir.display()))?;
    let usable = kept.filter(|identity| {
        identity
            .validity()
            .is_ok_and(|v| v.not_after > SystemTime::now())
    });
    let identity = match usable {
        Some(identity) => identity,
        None => {
            let token = config.control.join_token.as_deref().context(
                "this edge has no valid certificate: set control.join_token to a token from \
                 `POST /v1/edges/join-tokens` (or control.shared_secret for the dev-only mode)",
            )?;
            // Enrolment goes to the first control-plane URL (`control.url`, else `control.urls`).
            let enrol_url = config
                .control
                .all_urls()
                .into_iter()
                .next()
                .unwrap_or_default();
            let identity = enrol_with_retries(
                &enrol_url,
                token,
                edge_id,
                Duration::from_millis(u64::from(config.control.connect_timeout_ms)),
                ENROL_PATIENCE,
            )
            .await
            .context("while enrolling with the control plane (control.join_token)")?;
            identity
                .save(&dir)
                .with_context(|| format!("while keeping the certificate in {}", dir.display()))?;
            tracing::info!(cluster = %identity.cluster_id, "enrolled with the control plane");
            identity
        }
    };
    let tls = ControlTls::new(
        mtls_client_config(&identity).context("the edge's certificate or key is unusable")?,
    );
    Ok(LinkTrust::Mtls { tls, identity, dir })
}

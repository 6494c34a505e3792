//! Rotating the cluster CA in two steps, each written to the trust audit.
//!
//! **Rotate** makes a new CA for the same cluster (its own subject name, the cluster secret
//! carried over so gossip seals and stream tickets keep working) and stores it beside the old:
//! both are trusted, new edge certificates come from the new one, edges receive both as their
//! trust bundle when they renew, and control-plane servers keep presenting a certificate under
//! the old one, which every edge trusts. **Retire**, once every edge has renewed, drops the old
//! CA (its key blanked): servers switch to a certificate under the new CA, and a certificate
//! from the old one is refused at the handshake. Retiring is an admin's call, or happens by
//! itself `edges.ca_overlap_seconds` after the rotation when that is set (`anchors.rs`). Join tokens pin the CA the servers present, so
//! a token made before retiring pins the old CA and stops working with it (the edge says which
//! CA the control plane now presents); make a new one.

use serde::Serialize;

use super::anchors::ClusterTrust;
use super::{ClusterCa, TrustError};
use crate::store::{Store, StoreError, TrustEvent};

/// One trusted CA, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrustedCa {
    /// Its row: 1 for the cluster's first CA, one more per rotation.
    pub id: i64,
    /// SHA-256 of its certificate (DER), hex.
    pub fingerprint: String,
    /// Whether control-plane servers present a certificate under it (the oldest trusted CA).
    pub serving: bool,
    /// Whether new edge certificates are issued under it (the newest).
    pub issuing: bool,
    pub certificate_pem: String,
}

/// The cluster's trust after a rotation step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaState {
    pub cluster_id: String,
    /// Oldest first; two while a rotation overlaps.
    pub cas: Vec<TrustedCa>,
    /// What join tokens made now pin (the serving CA's fingerprint).
    pub join_token_fingerprint: String,
}

/// Who asked, for the audit.
#[derive(Debug, Clone)]
pub struct RotationActor<'a> {
    pub actor: &'a str,
    pub source_ip: Option<String>,
}

/// The trust `trust` holds now.
pub fn state(trust: &ClusterTrust) -> CaState {
    let set = trust.current();
    let count = set.cas().len();
    CaState {
        cluster_id: set.serving().cluster_id().to_owned(),
        cas: set
            .cas()
            .iter()
            .enumerate()
            .map(|(i, ca)| TrustedCa {
                id: ca.id(),
                fingerprint: ca.fingerprint(),
                serving: i == 0,
                issuing: i + 1 == count,
                certificate_pem: ca.certificate_pem().to_owned(),
            })
            .collect(),
        join_token_fingerprint: set.serving().fingerprint(),
    }
}

/// Makes and stores the next CA (see the module's comment). A conflict while a rotation is
/// already under way.
pub async fn rotate(
    store: &Store,
    trust: &ClusterTrust,
    by: &RotationActor<'_>,
) -> Result<CaState, TrustError> {
    trust.refresh(store).await?;
    let set = trust.current();
    if set.overlapping() {
        return Err(TrustError::Store(StoreError::Conflict(
            "a CA rotation is under way: retire the old CA first (POST /v1/edges/ca/retire)".into(),
        )));
    }
    let current = set.issuing();
    let cluster_id = current.cluster_id();
    let next_id = current.id() + 1;
    let made = ClusterCa::generate_named(
        cluster_id,
        &format!("Freya cluster CA {cluster_id} #{next_id}"),
    )?;
    let made_ca = ClusterCa::from_stored(&made)?;
    let id = store
        .add_cluster_ca(&made, &current.cluster_secret())
        .await?;
    trust.refresh(store).await?;
    store
        .record_trust_event(TrustEvent {
            action: "ca.rotate",
            outcome: "ok",
            source_ip: by.source_ip.clone(),
            detail: serde_json::json!({
                "actor": by.actor,
                "old_ca": {"id": current.id(), "fingerprint": current.fingerprint()},
                "new_ca": {"id": id, "fingerprint": made_ca.fingerprint()},
            }),
            ..TrustEvent::default()
        })
        .await?;
    tracing::warn!(old = %current.fingerprint(), new = %made_ca.fingerprint(), "rotated the cluster CA: both trusted until the old one is retired");
    Ok(state(trust))
}

/// Retires every CA but the newest (see the module's comment). A conflict when no rotation is
/// under way.
pub async fn retire(
    store: &Store,
    trust: &ClusterTrust,
    by: &RotationActor<'_>,
) -> Result<CaState, TrustError> {
    trust.refresh(store).await?;
    let set = trust.current();
    if !set.overlapping() {
        return Err(TrustError::Store(StoreError::Conflict(
            "no CA rotation is under way: there is no old CA to retire".into(),
        )));
    }
    let keep = set.issuing();
    let retired: Vec<_> = set
        .cas()
        .iter()
        .filter(|ca| ca.id() != keep.id())
        .map(|ca| serde_json::json!({"id": ca.id(), "fingerprint": ca.fingerprint()}))
        .collect();
    store.retire_cluster_cas_before(keep.id()).await?;
    trust.refresh(store).await?;
    store
        .record_trust_event(TrustEvent {
            action: "ca.retire",
            outcome: "ok",
            source_ip: by.source_ip.clone(),
            detail: serde_json::json!({
                "actor": by.actor,
                "retired": retired,
                "kept": {"id": keep.id(), "fingerprint": keep.fingerprint()},
            }),
            ..TrustEvent::default()
        })
        .await?;
    tracing::warn!(kept = %keep.fingerprint(), "retired the old cluster CA: its certificates are refused from now on");
    Ok(state(trust))
}

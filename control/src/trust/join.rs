//! Making a join token (one-time, or for a given number of edges): 8 random bytes of id, 32 of secret, the fingerprint of the CA
//! the control plane presents (the serving CA, `anchors.rs`); only
//! the secret's hash is stored, and the making is written to the trust audit.

use std::time::Duration;

use crate::store::{NewJoinToken, Store, StoreError, TrustEvent};
use freya_shared::ids::{now_ms, rfc3339};
use freya_shared::join_token::JoinToken;

use super::anchors::ClusterTrust;

/// Who asks for a token, for the row and the audit.
pub struct TokenMaker<'a> {
    /// The workspace of the owner or admin (or `freya dev`'s own name).
    pub workspace_id: &'a str,
    /// `user:<id>`, `api_key:<id>` or `freya dev`.
    pub actor: &'a str,
    pub source_ip: Option<String>,
}

/// A new one-time join token, stored hashed, valid for `ttl`; returns it and its expiry (ms).
pub async fn make_join_token(
    store: &Store,
    ca: &ClusterTrust,
    maker: &TokenMaker<'_>,
    ttl: Duration,
) -> Result<(JoinToken, i64), StoreError> {
    make_shared_join_token(store, ca, maker, ttl, 1).await
}

/// A new join token that enrols up to `max_uses` edges within `ttl` (one Secret for a
/// DaemonSet's nodes); each edge id it enrols must hold no live certificate.
pub async fn make_shared_join_token(
    store: &Store,
    ca: &ClusterTrust,
    maker: &TokenMaker<'_>,
    ttl: Duration,
    max_uses: u32,
) -> Result<(JoinToken, i64), StoreError> {
    let token = JoinToken {
        id: hex::encode(rand::random::<[u8; 8]>()),
        secret: hex::encode(rand::random::<[u8; 32]>()),
        ca_fingerprint: ca.fingerprint(),
    };
    let expires_at_ms = now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    store
        .create_join_token(&NewJoinToken {
            id: &token.id,
            secret_hash: &token.secret_hash(),
            workspace_id: maker.workspace_id,
            created_by: maker.actor,
            expires_at_ms,
            max_uses,
        })
        .await?;
    store
        .record_trust_event(TrustEvent {
            action: "join_token.created",
            outcome: "ok",
            token_id: Some(&token.id),
            source_ip: maker.source_ip.clone(),
            detail: serde_json::json!({
                "actor": maker.actor,
                "workspace_id": maker.workspace_id,
                "expires_at": rfc3339(expires_at_ms),
                "max_uses": max_uses,
            }),
            ..TrustEvent::default()
        })
        .await?;
    Ok((token, expires_at_ms))
}

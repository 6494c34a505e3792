//! The cluster's trust in SQL: the CA (one row, its key sealed), one-time join tokens (only their
//! secret's hash), the certificates issued to edges, the revoked serials every process reads, and
//! the cluster-wide trust audit. Spending a token is one conditional `UPDATE`, so two enrolments
//! racing with one token cannot both win, on any engine and across control-plane processes.

use serde::Serialize;
use sqlx::Row;

use freya_shared::ids::{new_id, now_ms};

use super::columns::from_columns;
use super::{Store, StoreError};

/// The sealed key of CA row `id` is bound to its row (row 1: `cluster_trust:1`).
fn ca_key_aad(id: i64) -> String {
    format!("cluster_trust:{id}")
}

/// The cluster secret kept on CA row `id` is bound to its row and column.
fn cluster_secret_aad(id: i64) -> String {
    format!("cluster_trust:{id}:cluster_secret")
}

/// A cluster CA as stored, its key opened.
#[derive(Clone)]
pub struct StoredCa {
    /// Its row: 1 for the CA the cluster was made with, one more for each rotation.
    pub id: i64,
    pub cluster_id: String,
    pub certificate_pem: String,
    pub key_pem: String,
    /// The cluster secret carried over from the CA before it (rows after the first); `None`:
    /// derived from this CA's key.
    pub cluster_secret: Option<String>,
    /// When it was made (ms); an overlap (`edges.ca_overlap_seconds`) is counted from it.
    pub created_at_ms: i64,
}

impl std::fmt::Debug for StoredCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCa")
            .field("id", &self.id)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

/// A join token to keep (its secret already hashed).
#[derive(Debug, Clone)]
pub struct NewJoinToken<'a> {
    pub id: &'a str,
    pub secret_hash: &'a str,
    pub workspace_id: &'a str,
    pub created_by: &'a str,
    pub expires_at_ms: i64,
    /// How many edges may enrol with it (1 for a one-time token).
    pub max_uses: u32,
}

/// Why a join token was not accepted; each is audited under its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No token has this id.
    Unknown,
    /// A token that enrols several edges may only enrol an edge id that holds no live
    /// certificate: otherwise whoever holds a copy could take over a running edge's name.
    EdgeIdTaken,
    /// The id is known but the secret is not its secret.
    WrongSecret,
    /// Past its expiry.
    Expired,
    /// Already spent: a replayed enrolment.
    Used,
}

impl TokenRefusal {
    /// The audit's and the log's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown_token",
            Self::WrongSecret => "wrong_token",
            Self::Expired => "expired_token",
            Self::Used => "used_token",
            Self::EdgeIdTaken => "edge_id_taken",
        }
    }
}

/// One entry of the trust audit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrustAuditRecord {
    pub id: String,
    pub at_ms: i64,
    /// `join_token.created`, `edge.enrol`, `edge.renew`, `edge.revoke`, `tls.handshake`.
    pub action: String,
    /// `ok`, or why it was refused (`wrong_token`, `expired_token`, `used_token`,
    /// `unknown_token`, `bad_csr`, `rate_limited`, `bad_certificate`, ...).
    pub outcome: String,
    pub edge_id: Option<String>,
    pub token_id: Option<String>,
    pub source_ip: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// An entry to write to the trust audit.
#[derive(Debug, Clone, Default)]
pub struct TrustEvent<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    pub edge_id: Option<&'a str>,
    pub token_id: Option<&'a str>,
    pub source_ip: Option<String>,
    pub detail: serde_json::Value,
}

impl Store {
    /// The cluster CA: the stored ones, or `candidate` stored first (as row 1) when there is
    /// none. Two processes racing both insert-if-absent and both read back the row that won.
    pub async fn cluster_ca_or_insert(
        &self,
        candidate: &StoredCa,
    ) -> Result<Vec<StoredCa>, StoreError> {
        let sealed = self.sealer()?.seal(&ca_key_aad(1), &candidate.key_pem)?;
        sqlx::query(
            "INSERT INTO cluster_trust (id, cluster_id, ca_certificate_pem, ca_key_sealed, created_at_ms) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&candidate.cluster_id)
        .bind(&candidate.certificate_pem)
        .bind(&sealed)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        let kept = self.trusted_cluster_cas().await?;
        if kept.is_empty() {
            return Err(StoreError::NotFound);
        }
        Ok(kept)
    }

    /// Every CA the cluster trusts (not retired), oldest first: more than one only while a
    /// rotation overlaps.
    pub async fn trusted_cluster_cas(&self) -> Result<Vec<StoredCa>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, cluster_id, ca_certificate_pem, ca_key_sealed, cluster_secret_sealed, \
             created_at_ms FROM cluster_trust WHERE retired_at_ms IS NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        let sealer = self.sealer()?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let sealed: String = row.try_get("ca_key_sealed")?;
                let secret: Option<String> = row.try_get("cluster_secret_sealed")?;
                Ok(StoredCa {
                    id,
                    cluster_id: row.try_get("cluster_id")?,
                    certificate_pem: row.try_get("ca_certificate_pem")?,
                    key_pem: sealer.open(&ca_key_aad(id), &sealed)?,
                    cluster_secret: secret
                        .map(|s| sealer.open(&cluster_secret_aad(id), &s))
                        .transpose()?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// The ids of the trusted CAs, oldest first: cheap to poll, to notice another process's
    /// rotation.
    pub async fn trusted_cluster_ca_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM cluster_trust WHERE retired_at_ms IS NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores `candidate` as the next CA (one past the newest row), carrying `cluster_secret`
    /// over; its row id. Two rotations racing: one wins, the other gets a conflict.
    pub async fn add_cluster_ca(
        &self,
        candidate: &StoredCa,
        cluster_secret: &str,
    ) -> Result<i64, StoreError> {
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM cluster_trust")
            .fetch_one(self.pool())
            .await?;
        let id = newest.unwrap_or(0) + 1;
        let sealer = self.sealer()?;
        let key = sealer.seal(&ca_key_aad(id), &candidate.key_pem)?;
        let secret = sealer.seal(&cluster_secret_aad(id), cluster_secret)?;
        let added = sqlx::query(
            "INSERT INTO cluster_trust \
             (id, cluster_id, ca_certificate_pem, ca_key_sealed, created_at_ms, cluster_secret_sealed) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(&candidate.cluster_id)
        .bind(&candidate.certificate_pem)
        .bind(&key)
        .bind(now_ms())
        .bind(&secret)
        .execute(self.pool())
        .await?;
        if added.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "another rotation of the cluster CA got there first".into(),
            ));
        }
        Ok(id)
    }

    /// Retires every trusted CA older than row `keep` (their keys blanked: nothing is signed
    /// with them again); the ids retired.
    pub async fn retire_cluster_cas_before(&self, keep: i64) -> Result<Vec<i64>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM cluster_trust WHERE retired_at_ms IS NULL AND id < $1 ORDER BY id",
        )
        .bind(keep)
        .fetch_all(self.pool())
        .await?;
        if ids.is_empty() {
            return Ok(ids);
        }
        sqlx::query(
            "UPDATE cluster_trust SET retired_at_ms = $1, ca_key_sealed = '' \
             WHERE retired_at_ms IS NULL AND id < $2",
        )
        .bind(now_ms())
        .bind(keep)
        .execute(self.pool())
        .await?;
        Ok(ids)
    }

    /// Keeps a new join token.
    pub async fn create_join_token(&self, token: &NewJoinToken<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO edge_join_tokens (id, secret_hash, workspace_id, created_by, created_at_ms, expires_at_ms, max_uses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id)
        .bind(token.secret_hash)
        .bind(token.workspace_id)
        .bind(token.created_by)
        .bind(now_ms())
        .bind(token.expires_at_ms)
        .bind(i64::from(token.max_uses))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Spends one use of token `id` for `edge_id` if `secret_hash` is its secret's, it has not
    /// expired at `now_ms` and it has a use left; the inner error says which check failed. The
    /// use is taken by one conditional update, so replicas racing for the last use end with one
    /// winner.
    pub async fn spend_join_token(
        &self,
        id: &str,
        secret_hash: &str,
        edge_id: &str,
        now_ms: i64,
    ) -> Result<Result<(), TokenRefusal>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT secret_hash, expires_at_ms, uses, max_uses FROM edge_join_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let stored: String = row.try_get("secret_hash")?;
        let expires_at_ms: i64 = row.try_get("expires_at_ms")?;
        let uses: i64 = row.try_get("uses")?;
        let max_uses: i64 = row.try_get("max_uses")?;
        if !constant_time_eq(stored.as_bytes(), secret_hash.as_bytes()) {
            return Ok(Err(TokenRefusal::WrongSecret));
        }
        if uses >= max_uses {
            return Ok(Err(TokenRefusal::Used));
        }
        if expires_at_ms <= now_ms {
            return Ok(Err(TokenRefusal::Expired));
        }
        if max_uses > 1 && self.edge_has_live_certificate(edge_id, now_ms).await? {
            return Ok(Err(TokenRefusal::EdgeIdTaken));
        }
        let spent = sqlx::query(
            "UPDATE edge_join_tokens SET uses = uses + 1, used_at_ms = $1, used_by_edge = $2 \
             WHERE id = $3 AND uses < max_uses",
        )
        .bind(now_ms)
        .bind(edge_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(if spent.rows_affected() == 1 {
            Ok(())
        } else {
            Err(TokenRefusal::Used)
        })
    }

    /// Whether `edge_id` holds a certificate that is neither expired at `now_ms` nor revoked.
    async fn edge_has_live_certificate(
        &self,
        edge_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM edge_certificates c WHERE c.edge_id = $1 AND c.not_after_ms > $2 \
             AND NOT EXISTS (SELECT 1 FROM revoked_certificates r WHERE r.serial = c.serial)",
        )
        .bind(edge_id)
        .bind(now_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(live > 0)
    }

    /// Notes a certificate issued to `edge_id`.
    pub async fn record_edge_certificate(
        &self,
        serial: &str,
        edge_id: &str,
        not_after_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO edge_certificates (serial, edge_id, issued_at_ms, not_after_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(serial)
        .bind(edge_id)
        .bind(now_ms())
        .bind(not_after_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many certificates were issued to `edge_id` (renewals included).
    pub async fn edge_certificate_count(&self, edge_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM edge_certificates WHERE edge_id = $1")
                .bind(edge_id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Revokes every certificate of `edge_id` not yet expired; how many were revoked now.
    pub async fn revoke_edge_certificates(&self, edge_id: &str) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO revoked_certificates (serial, edge_id, revoked_at_ms) \
             SELECT serial, edge_id, $1 FROM edge_certificates WHERE edge_id = $2 AND not_after_ms > $1 \
             ON CONFLICT (serial) DO NOTHING",
        )
        .bind(now)
        .bind(edge_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Removes `edge_id` from the edge list; whether it was there. Its certificates are revoked
    /// by the caller first, so a deleted edge cannot come back with them.
    pub async fn delete_edge(&self, edge_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM edges WHERE id = $1")
            .bind(edge_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every revoked certificate: its serial (lowercase hex) and the edge it was issued to.
    pub async fn revoked_certificates(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT serial, edge_id FROM revoked_certificates")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Every revoked serial (lowercase hex).
    pub async fn revoked_serials(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT serial FROM revoked_certificates")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Writes one trust-audit entry.
    pub async fn record_trust_event(&self, event: TrustEvent<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trust_audit (id, at_ms, action, outcome, edge_id, token_id, source_ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(now_ms())
        .bind(event.action)
        .bind(event.outcome)
        .bind(event.edge_id)
        .bind(event.token_id)
        .bind(event.source_ip)
        .bind(event.detail.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest `limit` trust-audit entries, newest first.
    pub async fn trust_audit(&self, limit: i64) -> Result<Vec<TrustAuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, action, outcome, edge_id, token_id, source_ip, detail FROM trust_audit \
             ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(from_columns!(r => TrustAuditRecord {
                    id, at_ms, action, outcome, edge_id, token_id, source_ip;
                    detail: super::parse_json("trust audit detail", &detail)?,
                }))
            })
            .collect()
    }
}

/// Compares without an early exit, so timing does not tell how much of a hash matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! Re-sealing every secret under the current encryption key (`freya secrets rotate-key`).
//!
//! The sealed values live in five places: providers' `secret`, webhooks' `secret`, the secrets
//! inside agents' spec documents, the cluster CA's key and cluster secret, and the recording
//! keys' private halves. A rotation first
//! opens every one of them with the keys it was given and stops, having changed nothing, if any
//! does not open. Then it walks each table in pages and replaces each value not yet under the
//! current key by a compare-and-set `UPDATE` (the row keeps its old text unless it still holds
//! exactly what was read), a page's updates in one transaction: a value is always under the old
//! key or the new one, never lost, so a rotation stopped anywhere can be run again, and a
//! concurrent write (sealed under the new key by a control plane configured with it) is never
//! overwritten. Progress is kept in
//! `secret_key_rotations` (migration 0017).

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;

use freya_shared::ids::now_ms;

use super::{Sealer, Store, StoreError};

/// One column holding sealed values.
struct SealedColumn {
    /// What the report calls these values.
    kind: &'static str,
    table: &'static str,
    column: &'static str,
    /// The associated data a value of row `id` is sealed with; `None`: the column is an agent's
    /// spec document, with its secrets inside.
    aad: Option<fn(&str) -> String>,
}

const COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        kind: "provider",
        table: "providers",
        column: "secret",
        aad: Some(|id| format!("provider:{id}")),
    },
    SealedColumn {
        kind: "webhook",
        table: "webhooks",
        column: "secret",
        aad: Some(|id| format!("webhook:{id}")),
    },
    SealedColumn {
        kind: "agent",
        table: "agents",
        column: "spec",
        aad: None,
    },
    SealedColumn {
        kind: "cluster_ca_key",
        table: "cluster_trust",
        column: "ca_key_sealed",
        aad: Some(|id| format!("cluster_trust:{id}")),
    },
    SealedColumn {
        kind: "cluster_secret",
        table: "cluster_trust",
        column: "cluster_secret_sealed",
        aad: Some(|id| format!("cluster_trust:{id}:cluster_secret")),
    },
    SealedColumn {
        kind: "recording_keypair",
        table: "recording_keys",
        column: "private_key_sealed",
        aad: Some(super::recording_keys::sealed_for),
    },
];

/// The places in an agent's spec that hold a secret, and the name each is sealed for.
const AGENT_SECRETS: &[(&str, Option<&str>)] = &[
    ("stt", Some("api_key")),
    ("llm", Some("api_key")),
    ("llm_fallback", Some("api_key")),
    ("tts", Some("api_key")),
    ("tool_secret", None),
];

/// How a rotation runs.
#[derive(Debug, Clone, Copy)]
pub struct ResealOptions {
    /// Rows read per page.
    pub batch_size: u32,
    /// Stop after this many pages that re-sealed something (to rotate part of a large store, or
    /// to test a rotation stopped half-way); `None` runs to the end.
    pub stop_after_batches: Option<u32>,
}

impl Default for ResealOptions {
    fn default() -> Self {
        Self {
            batch_size: 200,
            stop_after_batches: None,
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// The key every value is now (or, if not `complete`, is being) sealed under.
    pub key_id: String,
    /// Values re-sealed by this run, by kind.
    pub resealed: BTreeMap<&'static str, u64>,
    /// Values already under the key (an earlier run, or written since the key was configured).
    pub already_current: u64,
    /// Values changed by someone else between reading and writing: left as written.
    pub changed_meanwhile: u64,
    /// Whether every table was walked to its end.
    pub complete: bool,
}

impl ResealReport {
    /// Values re-sealed by this run, all kinds.
    pub fn total_resealed(&self) -> u64 {
        self.resealed.values().sum()
    }
}

/// A sealed value that opens under none of the keys given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnopenedSecret {
    pub kind: &'static str,
    pub row: String,
    pub message: String,
}

/// Why a rotation did not run.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(
        "{count} stored row(s) hold a sealed value that opens under none of the keys given \
         (first: {} {}: {}); nothing was changed — is auth.encryption_key (or auth.previous_encryption_keys) the key \
         the store was sealed with?",
        .first.kind, .first.row, .first.message
    )]
    Unopened { count: usize, first: UnopenedSecret },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Opens every sealed value once with the configured keys; the ones that do not open.
    pub async fn unopened_secrets(&self) -> Result<Vec<UnopenedSecret>, StoreError> {
        let sealer = self.sealer()?.clone();
        let mut failed = Vec::new();
        for column in COLUMNS {
            let mut after = String::new();
            loop {
                let page = self.sealed_page(column, &after, 500).await?;
                let Some((last, _)) = page.last() else { break };
                after = last.clone();
                for (row, stored) in &page {
                    if let Err(e) = reseal_value(&sealer, column, row, stored, false) {
                        failed.push(UnopenedSecret {
                            kind: column.kind,
                            row: row.clone(),
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(failed)
    }

    /// Re-seals every value not under the current key (see the module's comment).
    pub async fn reseal_secrets(
        &self,
        options: ResealOptions,
    ) -> Result<ResealReport, ResealError> {
        let unopened = self.unopened_secrets().await?;
        if let Some(first) = unopened.first() {
            return Err(ResealError::Unopened {
                count: unopened.len(),
                first: first.clone(),
            });
        }
        let sealer = self.sealer()?.clone();
        let key_id = sealer.current_key_id().to_owned();
        self.note_rotation_started(&key_id).await?;
        let mut report = ResealReport {
            key_id: key_id.clone(),
            ..ResealReport::default()
        };
        let mut batches = 0;
        for column in COLUMNS {
            let mut after = String::new();
            loop {
                if options
                    .stop_after_batches
                    .is_some_and(|stop| batches >= stop)
                {
                    return Ok(report);
                }
                let page = self
                    .sealed_page(column, &after, options.batch_size.max(1))
                    .await?;
                let Some((last, _)) = page.last() else { break };
                after = last.clone();
                let mut updates = Vec::new();
                for (row, stored) in &page {
                    let outcome = reseal_value(&sealer, column, row, stored, true)?;
                    report.already_current += outcome.current;
                    if let Some(fresh) = outcome.text {
                        updates.push((row.as_str(), stored.as_str(), fresh, outcome.resealed));
                    }
                }
                let applied = self.apply_batch(column, &updates).await?;
                let mut resealed_here = 0;
                for ((_, _, _, count), done) in updates.iter().zip(applied) {
                    if done {
                        *report.resealed.entry(column.kind).or_default() += count;
                        resealed_here += count;
                    } else {
                        report.changed_meanwhile += count;
                    }
                }
                if resealed_here > 0 {
                    batches += 1;
                    self.note_rotation_progress(&key_id, resealed_here).await?;
                }
            }
        }
        self.note_rotation_finished(&key_id).await?;
        report.complete = true;
        Ok(report)
    }

    /// Writes one batch of re-sealed texts in one transaction (one commit, one sync, for the
    /// batch), each as a compare-and-set on the text read; whether each row took it.
    async fn apply_batch(
        &self,
        column: &SealedColumn,
        updates: &[(&str, &str, String, u64)],
    ) -> Result<Vec<bool>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE {table} SET {col} = $1 WHERE CAST(id AS TEXT) = $2 AND {col} = $3",
            table = column.table,
            col = column.column
        );
        super::retry(&self.health, || async {
            let mut tx = self.pool().begin().await?;
            let mut applied = Vec::with_capacity(updates.len());
            for (row, stored, fresh, _) in updates {
                let done = sqlx::query(&sql)
                    .bind(fresh)
                    .bind(*row)
                    .bind(*stored)
                    .execute(&mut *tx)
                    .await?;
                applied.push(done.rows_affected() == 1);
            }
            tx.commit().await?;
            Ok(applied)
        })
        .await
    }

    /// Up to `limit` rows of `column` holding a value, after row `after` (by id as text).
    async fn sealed_page(
        &self,
        column: &SealedColumn,
        after: &str,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = format!(
            "SELECT CAST(id AS TEXT) AS row_id, {col} AS stored FROM {table} \
             WHERE {col} IS NOT NULL AND {col} <> '' AND CAST(id AS TEXT) > $1 \
             ORDER BY CAST(id AS TEXT) LIMIT $2",
            table = column.table,
            col = column.column
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("row_id")?, r.try_get("stored")?)))
            .collect()
    }

    async fn note_rotation_started(&self, key_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secret_key_rotations (target_key_id, started_at_ms, resealed) \
             VALUES ($1, $2, 0) ON CONFLICT (target_key_id) DO NOTHING",
        )
        .bind(key_id)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn note_rotation_progress(&self, key_id: &str, resealed: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE secret_key_rotations SET resealed = resealed + $1 WHERE target_key_id = $2",
        )
        .bind(i64::try_from(resealed).unwrap_or(i64::MAX))
        .bind(key_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn note_rotation_finished(&self, key_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE secret_key_rotations SET finished_at_ms = $1 WHERE target_key_id = $2")
            .bind(now_ms())
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// When the rotation to key `key_id` finished, if it did, and how many values it re-sealed
    /// over all its runs.
    pub async fn secret_rotation_record(
        &self,
        key_id: &str,
    ) -> Result<Option<(Option<i64>, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT finished_at_ms, resealed FROM secret_key_rotations WHERE target_key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get("finished_at_ms")?, r.try_get("resealed")?)))
            .transpose()
    }
}

/// What re-sealing one stored text gives.
#[derive(Debug, Default)]
struct Resealed {
    /// The new text, if anything in it was re-sealed.
    text: Option<String>,
    /// Values in it re-sealed.
    resealed: u64,
    /// Values in it already under the current key.
    current: u64,
}

/// The stored text `stored` of `row` with every value not under the current key re-sealed
/// under it. With `write` false every value is opened (to check it opens) and re-sealed.
fn reseal_value(
    sealer: &Sealer,
    column: &SealedColumn,
    row: &str,
    stored: &str,
    write: bool,
) -> Result<Resealed, StoreError> {
    match column.aad {
        Some(aad) => {
            if !Sealer::is_sealed(stored) {
                return Ok(Resealed::default());
            }
            if write && sealer.is_current(stored) {
                return Ok(Resealed {
                    current: 1,
                    ..Resealed::default()
                });
            }
            let aad = aad(row);
            let plain = sealer.open(&aad, stored)?;
            Ok(Resealed {
                text: Some(sealer.seal(&aad, &plain)?),
                resealed: 1,
                current: 0,
            })
        }
        None => reseal_agent_spec(sealer, row, stored, write),
    }
}

/// An agent's spec with every secret in it re-sealed, the rest of the document unchanged.
fn reseal_agent_spec(
    sealer: &Sealer,
    agent_id: &str,
    text: &str,
    write: bool,
) -> Result<Resealed, StoreError> {
    let mut spec: Value = super::parse_json("agent spec", text)?;
    let mut outcome = Resealed::default();
    for (place, field) in AGENT_SECRETS {
        let slot = match field {
            Some(field) => spec.get_mut(*place).and_then(|p| p.get_mut(*field)),
            None => spec.get_mut(*place),
        };
        let Some(slot) = slot else { continue };
        let Some(stored) = slot.as_str().filter(|s| Sealer::is_sealed(s)) else {
            continue;
        };
        if write && sealer.is_current(stored) {
            outcome.current += 1;
            continue;
        }
        let aad = format!("agent:{agent_id}:{place}");
        let plain = sealer.open(&aad, stored)?;
        *slot = Value::String(sealer.seal(&aad, &plain)?);
        outcome.resealed += 1;
    }
    if outcome.resealed > 0 {
        outcome.text = Some(
            serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt {
                what: "agent spec",
                message: e.to_string(),
            })?,
        );
    }
    Ok(outcome)
}

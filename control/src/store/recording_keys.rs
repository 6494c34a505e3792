//! The control plane's recording keypairs: edges seal each recording's spool to the newest
//! public key (handed to them in the configuration snapshot), and the control plane opens an
//! uploaded spool with whichever private key it was sealed to. Private keys are sealed at rest
//! with `auth.encryption_key` like every other secret (row `recording_key:<id>`, re-sealed by
//! `freya secrets rotate-key`) and never deleted: a spool may wait on an edge's disk for as long
//! as the edge cannot reach a control plane, and it only opens with the key it was sealed to.

use sqlx::Row;
use zeroize::Zeroizing;

use freya_shared::ids::now_ms;
use freya_shared::recording_spool::{RecordingPublicKey, RecordingSecretKey};

use super::{Store, StoreError};

/// The associated data a recording key's private half is sealed with.
pub(crate) fn sealed_for(id: &str) -> String {
    format!("recording_key:{id}")
}

impl Store {
    /// The public key edges seal new recordings to, made now if there is none yet (at the
    /// first start of a control plane of this release).
    pub async fn ensure_recording_key(&self) -> Result<RecordingPublicKey, StoreError> {
        match self.current_recording_key().await? {
            Some(key) => Ok(key),
            None => self.rotate_recording_key().await,
        }
    }

    /// Makes a new recording keypair the one edges seal to from their next snapshot on; the
    /// earlier ones stay, to open what was sealed to them.
    pub async fn rotate_recording_key(&self) -> Result<RecordingPublicKey, StoreError> {
        let secret = RecordingSecretKey::from_bytes(rand::random());
        let public = secret.public();
        let id = public.to_hex();
        let hex_secret = Zeroizing::new(hex::encode(*secret.to_bytes()));
        let sealed = self.sealer()?.seal(&sealed_for(&id), &hex_secret)?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO recording_keys (id, private_key_sealed, created_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(&id)
        .bind(&sealed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let version = super::bump_config_version(&mut tx).await?;
        tx.commit().await?;
        self.notify_config_changed(version);
        Ok(public)
    }

    /// The newest recording key's public half, if any.
    pub async fn current_recording_key(&self) -> Result<Option<RecordingPublicKey>, StoreError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM recording_keys ORDER BY created_at_ms DESC, id DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        id.map(|id| parse_public(&id)).transpose()
    }

    /// Every recording key's private half, opened: what an uploaded spool may be sealed to.
    pub async fn recording_secret_keys(&self) -> Result<Vec<RecordingSecretKey>, StoreError> {
        let sealer = self.sealer()?;
        let rows = sqlx::query("SELECT id, private_key_sealed FROM recording_keys ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let stored: String = row.try_get("private_key_sealed")?;
                let hex_secret = Zeroizing::new(sealer.open(&sealed_for(&id), &stored)?);
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(hex_secret.as_bytes(), &mut bytes).map_err(|_| {
                    StoreError::Corrupt {
                        what: "recording key",
                        message: format!("the private key of {id} is not 64 hex characters"),
                    }
                })?;
                let secret = RecordingSecretKey::from_bytes(bytes);
                bytes.iter_mut().for_each(|b| *b = 0);
                if secret.public().to_hex() != id {
                    return Err(StoreError::Corrupt {
                        what: "recording key",
                        message: format!("the private key stored for {id} is another key's"),
                    });
                }
                Ok(secret)
            })
            .collect()
    }
}

fn parse_public(id: &str) -> Result<RecordingPublicKey, StoreError> {
    RecordingPublicKey::from_hex(id).ok_or_else(|| StoreError::Corrupt {
        what: "recording key",
        message: format!("the id {id} is not a 64-hex-character public key"),
    })
}

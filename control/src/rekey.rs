//! `freya secrets rotate-key`: re-seals every secret in the store under a new encryption key
//! (`store/reseal.rs` does the walking). The key comes from a file (`--new-key-file`, 64 hex
//! characters, as `openssl rand -hex 32` writes it) or, without one, is the configuration's
//! `auth.encryption_key`; values are opened with `auth.encryption_key` and
//! `auth.previous_encryption_keys`. A key file that is not a key stops the command before the
//! database is opened. Once every value in the store is under the key, the recordings' data
//! keys under `recordings.dir` are re-wrapped too (`recording_rewrap.rs`).

use std::path::{Path, PathBuf};

use crate::config::{parse_encryption_key, ControlConfig};
use crate::store::reseal::{ResealError, ResealOptions, ResealReport};
use crate::store::{PoolSize, Sealer, Store, StoreError};

/// Why a rotation did not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("--new-key-file {path}: {source}")]
    ReadKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--new-key-file {path}: must hold exactly 64 hex characters (32 random bytes, as \
         `openssl rand -hex 32` writes them); found {found} characters{hint}; nothing was changed"
    )]
    NotAKey {
        path: PathBuf,
        found: usize,
        hint: &'static str,
    },
    #[error(
        "auth.encryption_key and auth.previous_encryption_keys must be 64 hex characters each"
    )]
    BadConfiguredKey,
    #[error("while opening the database (database.url): {0}")]
    Connect(StoreError),
    #[error(transparent)]
    Reseal(#[from] ResealError),
    #[error(transparent)]
    Recordings(#[from] crate::recording_rewrap::RewrapError),
}

/// The 32-byte key in the file at `path` (64 hex characters, surrounding whitespace ignored).
pub fn read_key_file(path: &Path) -> Result<[u8; 32], RekeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| RekeyError::ReadKeyFile {
        path: path.to_owned(),
        source,
    })?;
    let text = text.trim();
    parse_encryption_key(text).ok_or_else(|| RekeyError::NotAKey {
        path: path.to_owned(),
        found: text.chars().count(),
        hint: if text.chars().all(|c| c.is_ascii_hexdigit()) {
            ""
        } else {
            ", not all of them hex digits"
        },
    })
}

/// The store of `config`, opened with `current` (and `previous`) and migrated: both rotations
/// work on a schema that is up to date, through a pool of at most two connections since the
/// command runs alone.
async fn open_store(
    config: &ControlConfig,
    current: &[u8; 32],
    previous: &[[u8; 32]],
) -> Result<Store, RekeyError> {
    let store = Store::connect(
        &config.database.url,
        PoolSize {
            min_connections: 1,
            max_connections: 2,
        },
    )
    .await
    .map_err(RekeyError::Connect)?
    .with_encryption_keys(current, previous);
    store.migrate().await.map_err(RekeyError::Connect)?;
    Ok(store)
}

/// Makes a new recording keypair current in the store of `config` (`freya secrets
/// rotate-recording-key`): edges seal new recordings to it from their next snapshot, and the
/// earlier keys stay to open what was sealed to them. Its public key.
pub async fn rotate_recording_key(
    config: &ControlConfig,
) -> Result<freya_shared::recording_spool::RecordingPublicKey, RekeyError> {
    let (current, previous) = config
        .auth
        .encryption_keys()
        .ok_or(RekeyError::BadConfiguredKey)?;
    let store = open_store(config, &current, &previous).await?;
    let made = store.rotate_recording_key().await;
    store.close().await;
    made.map_err(RekeyError::Connect)
}

/// Re-seals the store of `config` under the key in `new_key_file` (or `auth.encryption_key`).
pub async fn rotate(
    config: &ControlConfig,
    new_key_file: Option<&Path>,
    options: ResealOptions,
) -> Result<ResealReport, RekeyError> {
    let target = new_key_file.map(read_key_file).transpose()?;
    let (configured, mut previous) = config
        .auth
        .encryption_keys()
        .ok_or(RekeyError::BadConfiguredKey)?;
    let current = match target {
        Some(target) => {
            previous.insert(0, configured);
            target
        }
        None => configured,
    };
    let store = open_store(config, &current, &previous).await?;
    let outcome = store.reseal_secrets(options).await;
    store.close().await;
    let mut report = outcome?;
    if report.complete {
        // The recordings' data keys are wrapped by the same key (`recording_seal`): a
        // complete rotation re-wraps them too, or removing the previous key would lose them.
        let sealer = Sealer::with_previous(&current, &previous);
        let recordings =
            crate::recording_rewrap::rewrap_recordings(&config.recordings.dir, &sealer)?;
        if recordings.rewrapped > 0 {
            report
                .resealed
                .insert("recording key", recordings.rewrapped);
        }
        report.already_current += recordings.already_current;
    }
    Ok(report)
}

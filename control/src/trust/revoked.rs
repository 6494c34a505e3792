//! The revoked serials, held in memory for the TLS handshake (which cannot wait on the database):
//! filled from the store at start, refreshed every `edges.revocation_poll_ms` to see revocations
//! made by other control-plane processes, and updated at once by this process's own.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// The serials (lowercase hex) no handshake or request may use, cheap to clone.
#[derive(Clone, Default)]
pub struct RevokedSerials(Arc<RwLock<HashSet<String>>>);

impl RevokedSerials {
    /// Whether `serial` is revoked.
    pub fn contains(&self, serial: &str) -> bool {
        self.0
            .read()
            .map(|set| set.contains(serial))
            .unwrap_or(true)
    }

    /// Reads the whole list from the store again.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let serials: HashSet<String> = store.revoked_serials().await?.into_iter().collect();
        if let Ok(mut set) = self.0.write() {
            *set = serials;
        }
        Ok(())
    }

    /// Refreshes every `interval` until `shutdown`; a failed read keeps the last list.
    pub async fn run(self, store: Store, interval: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.refresh(&store).await {
                tracing::warn!(error = %e, "could not re-read the revoked certificates; keeping the last list");
            }
        }
    }
}

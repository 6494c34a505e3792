//! The revoked serials, held in memory for the TLS handshake (which cannot wait on the database):
//! filled from the store at start, refreshed every `edges.revocation_poll_ms` to see revocations
//! made by other control-plane processes, and updated at once by this process's own.
//!
//! Revocation bites at once, not at the edge's next connect: every accepted edge connection
//! holds a cut token for its certificate's serial ([`RevokedSerials::cut_for`]), cancelled when
//! that serial joins the list, which ends the connection and every gRPC stream on it; and each
//! change is announced ([`RevokedSerials::subscribe`]) so the command streams hand the whole list
//! to every edge, whose mesh and gossip then refuse the revoked edge too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// The serials (lowercase hex) no handshake or request may use, cheap to clone.
#[derive(Clone)]
pub struct RevokedSerials(Arc<Inner>);

struct Inner {
    /// Serial → the edge it was issued to.
    list: RwLock<HashMap<String, String>>,
    /// Bumped on every change of `list`.
    changes: watch::Sender<u64>,
    /// The open connections' cut tokens, by the serial their certificate carries.
    cuts: Mutex<HashMap<String, Vec<CancellationToken>>>,
}

impl Default for RevokedSerials {
    fn default() -> Self {
        Self(Arc::new(Inner {
            list: RwLock::default(),
            changes: watch::channel(0).0,
            cuts: Mutex::default(),
        }))
    }
}

impl RevokedSerials {
    /// Whether `serial` is revoked; a poisoned lock refuses (fail closed).
    pub fn contains(&self, serial: &str) -> bool {
        self.0
            .list
            .read()
            .map(|list| list.contains_key(serial))
            .unwrap_or(true)
    }

    /// Every revoked certificate as (serial, edge id), sorted by serial.
    pub fn certificates(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .0
            .list
            .read()
            .map(|list| list.iter().map(|(s, e)| (s.clone(), e.clone())).collect())
            .unwrap_or_default();
        all.sort();
        all
    }

    /// Told of every change of the list.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    /// A token cancelled when `serial` is revoked (at once if it already is): the connection
    /// presenting it ends then. Tokens of connections already gone are dropped here.
    pub fn cut_for(&self, serial: &str) -> CancellationToken {
        let token = CancellationToken::new();
        if self.contains(serial) {
            token.cancel();
            return token;
        }
        if let Ok(mut cuts) = self.0.cuts.lock() {
            cuts.retain(|_, tokens| {
                tokens.retain(|t| !t.is_cancelled());
                !tokens.is_empty()
            });
            cuts.entry(serial.to_owned())
                .or_default()
                .push(token.clone());
        }
        token
    }

    /// Reads the whole list from the store again; cuts the connections of newly revoked
    /// serials and announces the change.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let list: HashMap<String, String> =
            store.revoked_certificates().await?.into_iter().collect();
        let changed = match self.0.list.write() {
            Ok(mut current) if *current != list => {
                *current = list;
                true
            }
            _ => false,
        };
        if changed {
            self.cut_revoked();
            self.0.changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    fn cut_revoked(&self) {
        let Ok(mut cuts) = self.0.cuts.lock() else {
            return;
        };
        let revoked: Vec<String> = cuts
            .keys()
            .filter(|serial| self.contains(serial))
            .cloned()
            .collect();
        for serial in revoked {
            for token in cuts.remove(&serial).unwrap_or_default() {
                if !token.is_cancelled() {
                    tracing::warn!(%serial, "cut an edge connection: its certificate was revoked");
                }
                token.cancel();
            }
        }
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

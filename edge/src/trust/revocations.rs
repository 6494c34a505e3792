//! The control plane's revocation list as this edge last heard it (the command stream sends the
//! whole list when it opens and on every change), and the task that makes it bite: the mesh
//! refuses those certificates and closes their open connections, and gossip shows their edges
//! down. The list is plain data in a `watch`, so the mesh and the gossip task each read the
//! latest without the command stream waiting on either.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::mesh::Mesh;

/// One certificate the control plane revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Lowercase hex, as the certificate's serial.
    pub serial: String,
    /// The edge it was issued to.
    pub edge_id: String,
}

/// The latest list; cheap to clone.
#[derive(Clone)]
pub struct Revocations(Arc<watch::Sender<Arc<[RevokedCertificate]>>>);

impl Default for Revocations {
    fn default() -> Self {
        Self(Arc::new(watch::channel(Arc::from(Vec::new())).0))
    }
}

impl Revocations {
    /// Replaces the list (a no-op when it did not change).
    pub fn replace(&self, list: Vec<RevokedCertificate>) {
        self.0.send_if_modified(|current| {
            if current.as_ref() == list.as_slice() {
                return false;
            }
            *current = Arc::from(list);
            true
        });
    }

    /// A receiver that sees every later list.
    pub fn subscribe(&self) -> watch::Receiver<Arc<[RevokedCertificate]>> {
        self.0.subscribe()
    }

    /// The revoked edges' ids, for gossip.
    pub fn edges(list: &[RevokedCertificate]) -> Vec<Arc<str>> {
        list.iter().map(|c| Arc::from(c.edge_id.as_str())).collect()
    }
}

/// Applies each new list to `mesh` until shutdown.
pub(crate) async fn apply_to_mesh(mesh: Mesh, revocations: Revocations, stop: CancellationToken) {
    let mut list = revocations.subscribe();
    loop {
        let serials: Vec<String> = list
            .borrow_and_update()
            .iter()
            .map(|c| c.serial.clone())
            .collect();
        let closed = mesh.set_revoked(serials);
        if !closed.is_empty() {
            tracing::warn!(edges = ?closed, "closed mesh connections of revoked edges");
        }
        tokio::select! {
            changed = list.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
    }
}

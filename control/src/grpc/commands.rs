//! Commands from the control plane to edges. Each connected edge has one command stream; the hub
//! keeps the sending side so an API handler can reach an edge by id. Each stream opens with the
//! cluster's revocation list and carries it again whenever it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::trust::revoked::RevokedSerials;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{EdgeCommand, Revocations, RevokedCertificate};

/// Sends the whole revocation list now and after each change, until the stream or the process
/// ends. A list waits its turn behind queued commands (the stream holds 64).
async fn feed_revocations(tx: Sender, revoked: RevokedSerials, shutdown: CancellationToken) {
    let mut changes = revoked.subscribe();
    loop {
        changes.borrow_and_update();
        let list = Revocations {
            certificates: revoked
                .certificates()
                .into_iter()
                .map(|(serial, edge_id)| RevokedCertificate { serial, edge_id })
                .collect(),
        };
        let command = EdgeCommand {
            id: uuid::Uuid::now_v7().to_string(),
            command: Some(Command::Revocations(list)),
        };
        if tx.send(Ok(command)).await.is_err() {
            return;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            () = shutdown.cancelled() => return,
        }
    }
}

/// The edge has no open command stream here.
#[derive(Debug, Error)]
#[error("edge {0} is not connected to this control plane")]
pub struct NotConnected(pub String);

type Sender = mpsc::Sender<Result<EdgeCommand, Status>>;

/// The command streams of the edges connected to this process.
#[derive(Clone, Default)]
pub struct CommandHub {
    // Guarded by a std mutex: held only to insert, remove or clone a sender, never across await.
    streams: Arc<Mutex<HashMap<String, Sender>>>,
    /// Woken when a stream opens, so commands queued for that edge in the database go out at
    /// once (`relay.rs`), not at the next pass.
    attached: Arc<tokio::sync::Notify>,
}

impl CommandHub {
    /// Opens `edge_id`'s command stream, replacing an older one (the edge reconnected).
    pub(super) fn attach(
        &self,
        edge_id: &str,
        revoked: Option<RevokedSerials>,
        shutdown: CancellationToken,
    ) -> ReceiverStream<Result<EdgeCommand, Status>> {
        let (tx, rx) = mpsc::channel(64);
        if let Some(revoked) = revoked {
            tokio::spawn(feed_revocations(tx.clone(), revoked, shutdown.clone()));
        }
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(edge_id.to_owned(), tx.clone());
        }
        self.attached.notify_one();
        // Forget the stream when the edge goes away, and end it on shutdown (by dropping every
        // sender) so a graceful stop does not wait for the edge.
        let hub = self.clone();
        let edge_id = edge_id.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tx.closed() => {}
            }
            hub.forget(&edge_id, &tx);
        });
        ReceiverStream::new(rx)
    }

    /// Sends `command` to `edge_id`, waiting if its stream is full.
    pub async fn send(&self, edge_id: &str, command: EdgeCommand) -> Result<(), NotConnected> {
        let sender = self
            .streams
            .lock()
            .ok()
            .and_then(|streams| streams.get(edge_id).cloned());
        let Some(sender) = sender else {
            return Err(NotConnected(edge_id.to_owned()));
        };
        if sender.send(Ok(command)).await.is_err() {
            self.forget(edge_id, &sender);
            return Err(NotConnected(edge_id.to_owned()));
        }
        Ok(())
    }

    /// Whether `edge_id` has an open command stream here, i.e. can be handed a call now.
    pub fn is_connected(&self, edge_id: &str) -> bool {
        self.streams
            .lock()
            .is_ok_and(|streams| streams.get(edge_id).is_some_and(|s| !s.is_closed()))
    }

    /// The edges with an open command stream here.
    pub fn connected_edges(&self) -> Vec<String> {
        self.streams.lock().map_or_else(
            |_| Vec::new(),
            |streams| {
                streams
                    .iter()
                    .filter(|(_, s)| !s.is_closed())
                    .map(|(id, _)| id.clone())
                    .collect()
            },
        )
    }

    /// What wakes the relay: notified on every stream opened here.
    pub(super) fn attachments(&self) -> Arc<tokio::sync::Notify> {
        self.attached.clone()
    }

    /// Removes `edge_id`'s stream if it is still `sender` (not a newer reconnection).
    fn forget(&self, edge_id: &str, sender: &Sender) {
        if let Ok(mut streams) = self.streams.lock() {
            if streams.get(edge_id).is_some_and(|s| s.same_channel(sender)) {
                streams.remove(edge_id);
            }
        }
    }
}

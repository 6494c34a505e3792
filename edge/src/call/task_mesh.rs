//! The call task's side of legs that other edges carry: it asks the leg's edge over the mesh to
//! dial (a `Dial` control message naming the call, leg, workspace and number), registers the
//! leg with the mesh so that edge's frames and messages reach this call, sends the core's
//! [`Output::MeshTransmit`](super::core::Output) frames as datagrams, and turns what comes back
//! into the core's inputs: audio, `Join` (answered), `Hangup` (its cause), the connection lost.
//! One channel per call gathers every remote leg's news, so the task waits on one more branch
//! whatever the number of legs. Nothing here decides: a leg's end is the core's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::mpsc;

use super::core::{CallCore, LegId, LegSignal, MESH_PAYLOAD};
use super::task::CallSignal;
use crate::mesh::{
    AudioFrame, AudioHeader, ControlMessage, HangupCause, LegKey, MeshAccess, MeshInbound,
};

/// News of one remote leg for the call task.
#[derive(Debug)]
pub(super) enum RemoteNews {
    /// What the mesh brought for the leg.
    Inbound(MeshInbound),
    /// The request never reached the leg's edge.
    Unreachable(String),
}

/// A remote leg's peer.
struct RemotePeer {
    addr: SocketAddr,
    edge: String,
    key: LegKey,
}

/// The call's legs on other edges.
pub(super) struct RemoteLegs {
    access: Option<MeshAccess>,
    call: Option<uuid::Uuid>,
    workspace: String,
    peers: HashMap<LegId, RemotePeer>,
    news_tx: mpsc::Sender<(LegId, RemoteNews)>,
    news: mpsc::Receiver<(LegId, RemoteNews)>,
    buf: Vec<u8>,
}

impl RemoteLegs {
    /// No remote legs yet; `access` is `None` on an edge without a mesh.
    pub(super) fn new(access: Option<MeshAccess>, call_id: &str, workspace: &str) -> Self {
        let (news_tx, news) = mpsc::channel(64);
        Self {
            access,
            call: uuid::Uuid::parse_str(call_id).ok(),
            workspace: workspace.to_owned(),
            peers: HashMap::new(),
            news_tx,
            news,
            buf: Vec::with_capacity(256),
        }
    }

    /// Asks `edge` to dial `to` as `leg`; a leg that cannot even be asked for is reported
    /// failed through the call's news.
    pub(super) fn dial(&mut self, leg: LegId, to: &str, edge: &str) {
        let unreachable = move |detail: String| (leg, RemoteNews::Unreachable(detail));
        let (Some(access), Some(call)) = (self.access.clone(), self.call) else {
            let detail = "this edge runs no mesh to reach another edge".to_owned();
            let _ = self.news_tx.try_send(unreachable(detail));
            return;
        };
        let Some(addr) = access.peer_addr(edge) else {
            let detail = format!("edge {edge} is not a live member with a mesh");
            let _ = self.news_tx.try_send(unreachable(detail));
            return;
        };
        let key = LegKey {
            call,
            leg: u16::from(leg.0),
        };
        let mut inbound = match access.mesh.join(key, addr) {
            Ok(rx) => rx,
            Err(e) => {
                let _ = self.news_tx.try_send(unreachable(e.to_string()));
                return;
            }
        };
        self.peers.insert(
            leg,
            RemotePeer {
                addr,
                edge: edge.to_owned(),
                key,
            },
        );
        // The leg's own queue into the call's one channel; ends when the mesh drops the leg.
        let news = self.news_tx.clone();
        tokio::spawn(async move {
            while let Some(message) = inbound.recv().await {
                if news
                    .send((leg, RemoteNews::Inbound(message)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let dial = ControlMessage::Dial {
            key,
            workspace: self.workspace.clone(),
            to: to.to_owned(),
            from_edge: access.edge_id.to_string(),
        };
        let news = self.news_tx.clone();
        let edge = edge.to_owned();
        tokio::spawn(async move {
            if let Err(e) = access.mesh.send_control(addr, &dial).await {
                let detail = format!("edge {edge} unreachable over the mesh: {e}");
                let _ = news.send(unreachable(detail)).await;
            }
        });
    }

    /// Sends one frame of the core's mix for `leg` (dropped, as a late packet, when the
    /// connection is not up).
    pub(super) fn send_audio(&mut self, leg: LegId, sequence: u16, timestamp: u32, payload: &[u8]) {
        let (Some(access), Some(peer)) = (self.access.as_ref(), self.peers.get(&leg)) else {
            return;
        };
        let frame = AudioFrame {
            header: AudioHeader {
                key: peer.key,
                kind: MESH_PAYLOAD,
                sequence,
                timestamp,
            },
            payload,
        };
        access.mesh.send_audio(peer.addr, &frame, &mut self.buf);
    }

    /// The core hung `leg` up: its edge is told (unless it told us) and the mesh forgets it.
    /// False when `leg` is not remote.
    pub(super) fn hang_up(&mut self, leg: LegId) -> bool {
        let Some(peer) = self.peers.remove(&leg) else {
            return false;
        };
        if let Some(access) = self.access.clone() {
            access.mesh.leave(peer.key, peer.addr);
            let hangup = ControlMessage::Hangup {
                key: peer.key,
                cause: HangupCause::Ended,
            };
            tokio::spawn(async move {
                if let Err(e) = access.mesh.send_control(peer.addr, &hangup).await {
                    tracing::debug!(error = %e, "could not tell a remote leg's edge of its end");
                }
            });
        }
        true
    }

    /// The next news of any remote leg (never ready while there are none).
    pub(super) async fn recv(&mut self) -> (LegId, RemoteNews) {
        match self.news.recv().await {
            Some(news) => news,
            // The struct holds a sender: the channel never closes.
            None => std::future::pending().await,
        }
    }

    /// Hands one piece of news to the core.
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        leg: LegId,
        news: RemoteNews,
        core: &mut CallCore,
    ) {
        let edge = self.peers.get(&leg).map(|p| p.edge.clone());
        let edge = edge.as_deref().unwrap_or("the leg's edge");
        let signal = match news {
            RemoteNews::Inbound(MeshInbound::Audio { header, payload }) => {
                return core.handle_remote_audio(now, leg, &header, &payload);
            }
            RemoteNews::Inbound(MeshInbound::Control(ControlMessage::Join { .. })) => {
                LegSignal::RemoteAnswered
            }
            RemoteNews::Inbound(MeshInbound::Control(ControlMessage::Hangup { cause, .. })) => {
                if let Some(peer) = self.peers.remove(&leg) {
                    if let Some(access) = &self.access {
                        access.mesh.leave(peer.key, peer.addr);
                    }
                }
                match cause {
                    HangupCause::Remote | HangupCause::Ended => LegSignal::Hangup,
                    HangupCause::DialFailed => LegSignal::Failed {
                        detail: format!("the dial failed on edge {edge}"),
                    },
                    HangupCause::Refused => LegSignal::Failed {
                        detail: format!("edge {edge} refused to dial"),
                    },
                    HangupCause::Unavailable => LegSignal::Failed {
                        detail: format!("edge {edge} cannot carry the leg"),
                    },
                }
            }
            RemoteNews::Inbound(MeshInbound::Control(_)) => return,
            RemoteNews::Inbound(MeshInbound::Lost) => LegSignal::MeshLost {
                detail: format!("the mesh connection to edge {edge} dropped"),
            },
            RemoteNews::Unreachable(detail) => LegSignal::Failed { detail },
        };
        core.handle_signal(now, CallSignal::Leg { leg, signal });
    }
}

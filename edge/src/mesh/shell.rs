//! The mesh's tokio shell: one quinn endpoint (one UDP socket) per edge that both accepts and
//! opens connections, a driver task that does what [`MeshPeers`] asks (connect, close idle),
//! and per connection a datagram reader and a control-stream reader that decode and hand each
//! message to the leg it names by `try_send` (a full leg queue drops the frame and counts it:
//! audio is late anyway). A leg is bound to the peer it was joined with: frames and messages
//! naming it from any other connection are dropped. Each connection is bound to the edge its
//! verified certificate names (`verify.rs`): a join naming another edge is refused, and
//! [`Mesh::set_revoked`] closes the connections of revoked certificates. A renewed certificate
//! is taken by [`Mesh::replace_tls`] for new connections without a restart. It decides nothing
//! a core could.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

use super::codec::{AudioFrame, AudioHeader, ControlMessage, ControlReader, LegKey};
use super::peers::{FrameBudget, MeshPeers, PeerAction, PeerLimit, PeerSettings};
use super::tls::{MeshTls, MeshTlsError, MESH_SERVER_NAME};
use super::verify::{peer_of, PeerName, RevokedPeers};

/// What a leg receives from the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshInbound {
    /// One audio frame; `payload` is the datagram's tail.
    Audio { header: AudioHeader, payload: Bytes },
    /// A control message about this leg.
    Control(ControlMessage),
    /// The connection to the leg's peer dropped: nothing more will come for it.
    Lost,
}

/// Why the mesh could not do something.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Tls(#[from] MeshTlsError),
    #[error("while binding the mesh socket: {0}")]
    Bind(std::io::Error),
    #[error("a QUIC setting was refused: {0}")]
    Setting(String),
    #[error("no connection to mesh peer {0}")]
    Unreachable(SocketAddr),
    #[error("the control stream to {0} failed: {1}")]
    Stream(SocketAddr, String),
    #[error(transparent)]
    Codec(#[from] super::codec::MeshCodecError),
    #[error(transparent)]
    Limit(#[from] PeerLimit),
}

/// Settings of the shell besides the peer limits.
#[derive(Debug, Clone, Copy)]
pub struct MeshSettings {
    pub peers: PeerSettings,
    /// Frames queued per leg before new ones are dropped.
    pub leg_queue: usize,
    /// How long `send_control` waits for a connection to come up.
    pub connect_timeout: Duration,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            peers: PeerSettings::default(),
            leg_queue: 32,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Counters the edge's `/metrics` and tests read.
#[derive(Debug, Default)]
pub struct MeshCounters {
    /// Datagrams dropped: undecodable, over the peer's budget, for no known leg, or a full queue.
    pub dropped: AtomicU64,
    /// Handshakes that failed: a peer without a cluster certificate, or a broken one.
    pub refused: AtomicU64,
    /// Control streams ended for a malformed or oversized message.
    pub bad_control: AtomicU64,
    /// Joins refused because they named another edge than the sender's certificate.
    pub impersonations: AtomicU64,
    /// Open connections closed because the peer's certificate was revoked.
    pub revoked_closed: AtomicU64,
}

struct Link {
    conn: quinn::Connection,
    /// Who the peer's verified certificate names.
    peer: PeerName,
    control: Arc<tokio::sync::Mutex<Option<quinn::SendStream>>>,
}

struct Shared {
    endpoint: quinn::Endpoint,
    /// Shared with the handshake verifiers: serials refused on the mesh.
    revoked: RevokedPeers,
    /// Kept to build the TLS configurations again when the certificate is renewed.
    transport: Arc<quinn::TransportConfig>,
    /// What new connections dial with (replaced on renewal).
    client: Mutex<quinn::ClientConfig>,
    settings: MeshSettings,
    links: Mutex<HashMap<SocketAddr, Link>>,
    /// Each leg's peer (the only one whose frames and messages reach it) and queue.
    legs: Mutex<HashMap<LegKey, (SocketAddr, mpsc::Sender<MeshInbound>)>>,
    joins: mpsc::Sender<(SocketAddr, ControlMessage)>,
    peers: Mutex<MeshPeers>,
    wake: Notify,
    up: Notify,
    counters: MeshCounters,
    closed: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data behind the lock; a panic elsewhere cannot leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running mesh endpoint; cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    shared: Arc<Shared>,
}

impl Mesh {
    /// Binds `listen` and starts accepting cluster peers; the returned receiver gets every
    /// `Join` for a leg not registered here (a remote party asking into a call of ours).
    pub fn bind(
        listen: SocketAddr,
        tls: &MeshTls,
        settings: MeshSettings,
    ) -> Result<(Self, mpsc::Receiver<(SocketAddr, ControlMessage)>), MeshError> {
        let transport = Arc::new(transport(settings)?);
        let revoked = RevokedPeers::default();
        let (server, client) = configs(tls, &revoked, &transport)?;
        let endpoint = quinn::Endpoint::server(server, listen).map_err(MeshError::Bind)?;
        let (joins, joined) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            endpoint,
            revoked,
            transport,
            client: Mutex::new(client),
            settings,
            links: Mutex::new(HashMap::new()),
            legs: Mutex::new(HashMap::new()),
            joins,
            peers: Mutex::new(MeshPeers::new(settings.peers)),
            wake: Notify::new(),
            up: Notify::new(),
            counters: MeshCounters::default(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(accept(shared.clone()));
        tokio::spawn(drive(shared.clone()));
        Ok((Self { shared }, joined))
    }

    /// Uses `tls` (a renewed certificate) for every connection made or accepted from now on;
    /// open connections keep theirs.
    pub fn replace_tls(&self, tls: &MeshTls) -> Result<(), MeshError> {
        let (server, client) = configs(tls, &self.shared.revoked, &self.shared.transport)?;
        self.shared.endpoint.set_server_config(Some(server));
        *lock(&self.shared.client) = client;
        Ok(())
    }

    /// Replaces the revoked serials (the control plane's whole list): handshakes presenting one
    /// are refused from now on and open connections carrying one are closed. Returns the edges
    /// whose connections were closed.
    pub fn set_revoked(&self, serials: impl IntoIterator<Item = String>) -> Vec<String> {
        self.shared.revoked.replace(serials);
        let mut closed = Vec::new();
        // Closed here; each connection's reader then forgets it as it does any that ends (the
        // link, and the peers' bookkeeping so a later connection is asked for afresh).
        for link in lock(&self.shared.links).values() {
            if self.shared.revoked.contains(&link.peer.serial) && link.conn.close_reason().is_none()
            {
                link.conn.close(2u32.into(), b"certificate revoked");
                self.shared
                    .counters
                    .revoked_closed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %link.conn.remote_address(), edge = %link.peer.edge_id,
                    "closed the mesh connection of a revoked edge");
                closed.push(link.peer.edge_id.clone());
            }
        }
        closed
    }

    /// Who the open connection to `peer` is authenticated as (its certificate's names).
    pub fn peer_name(&self, peer: SocketAddr) -> Option<PeerName> {
        lock(&self.shared.links).get(&peer).map(|l| l.peer.clone())
    }

    /// The bound address, which peers dial.
    pub fn local_addr(&self) -> Result<SocketAddr, MeshError> {
        self.shared.endpoint.local_addr().map_err(MeshError::Bind)
    }

    /// The shell's counters.
    pub fn counters(&self) -> &MeshCounters {
        &self.shared.counters
    }

    /// Receives what the mesh brings for `key` until [`Mesh::leave`]; the leg counts against
    /// `peer`'s `max_legs`.
    pub fn join(
        &self,
        key: LegKey,
        peer: SocketAddr,
    ) -> Result<mpsc::Receiver<MeshInbound>, MeshError> {
        lock(&self.shared.peers).add_leg(Instant::now(), peer)?;
        let (tx, rx) = mpsc::channel(self.shared.settings.leg_queue);
        lock(&self.shared.legs).insert(key, (peer, tx));
        self.shared.wake.notify_one();
        Ok(rx)
    }

    /// The leg is gone: its frames are dropped from now on and the peer's count freed.
    pub fn leave(&self, key: LegKey, peer: SocketAddr) {
        lock(&self.shared.legs).remove(&key);
        lock(&self.shared.peers).remove_leg(Instant::now(), peer);
        self.shared.wake.notify_one();
    }

    /// Sends one frame as a datagram without waiting: false when there is no connection yet
    /// (one is asked for and the frame is lost, as a late RTP packet would be).
    pub fn send_audio(&self, peer: SocketAddr, frame: &AudioFrame<'_>, buf: &mut Vec<u8>) -> bool {
        let up = lock(&self.shared.peers).want(Instant::now(), peer);
        if !up {
            self.shared.wake.notify_one();
            return false;
        }
        if frame.encode_into(buf).is_err() {
            return false;
        }
        let conn = lock(&self.shared.links)
            .get(&peer)
            .map(|link| link.conn.clone());
        conn.is_some_and(|c| c.send_datagram(Bytes::copy_from_slice(buf)).is_ok())
    }

    /// Sends a control message on the peer's control stream, connecting first when needed.
    pub async fn send_control(
        &self,
        peer: SocketAddr,
        message: &ControlMessage,
    ) -> Result<(), MeshError> {
        let mut bytes = Vec::new();
        message.encode_into(&mut bytes)?;
        let control = self.link(peer).await?;
        let mut stream = control.lock().await;
        let fail = |e: &dyn std::fmt::Display| MeshError::Stream(peer, e.to_string());
        if stream.is_none() {
            let conn = lock(&self.shared.links)
                .get(&peer)
                .map(|l| l.conn.clone())
                .ok_or(MeshError::Unreachable(peer))?;
            *stream = Some(conn.open_uni().await.map_err(|e| fail(&e))?);
        }
        let Some(send) = stream.as_mut() else {
            return Err(MeshError::Unreachable(peer));
        };
        if let Err(e) = send.write_all(&bytes).await {
            *stream = None;
            return Err(fail(&e));
        }
        send.flush().await.map_err(|e| fail(&e))
    }

    async fn link(
        &self,
        peer: SocketAddr,
    ) -> Result<Arc<tokio::sync::Mutex<Option<quinn::SendStream>>>, MeshError> {
        let deadline = tokio::time::Instant::now() + self.shared.settings.connect_timeout;
        loop {
            let up = self.shared.up.notified();
            if let Some(link) = lock(&self.shared.links).get(&peer) {
                return Ok(link.control.clone());
            }
            lock(&self.shared.peers).want(Instant::now(), peer);
            self.shared.wake.notify_one();
            if tokio::time::timeout_at(deadline, up).await.is_err() {
                return Err(MeshError::Unreachable(peer));
            }
        }
    }

    /// Closes every connection and the socket.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        self.shared.endpoint.close(0u32.into(), b"closing");
    }
}

fn configs(
    tls: &MeshTls,
    revoked: &RevokedPeers,
    transport: &Arc<quinn::TransportConfig>,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), MeshError> {
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls.quic_server_with(revoked)?));
    server.transport_config(transport.clone());
    let mut client = quinn::ClientConfig::new(Arc::new(tls.quic_client_with(revoked)?));
    client.transport_config(transport.clone());
    Ok((server, client))
}

fn transport(settings: MeshSettings) -> Result<quinn::TransportConfig, MeshError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(settings.peers.idle_close + Duration::from_secs(30))
        .map_err(|e| MeshError::Setting(e.to_string()))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(Duration::from_secs(5)));
    // Control is one uni stream each way; nothing else is opened.
    t.max_concurrent_bidi_streams(0u32.into());
    t.max_concurrent_uni_streams(2u32.into());
    t.datagram_receive_buffer_size(Some(256 * 1024));
    Ok(t)
}

async fn accept(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => established(shared, conn),
                Err(e) => {
                    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "mesh peer refused in the handshake");
                }
            }
        });
    }
}

async fn drive(shared: Arc<Shared>) {
    loop {
        let next = lock(&shared.peers).poll_action();
        match next {
            Some(PeerAction::Connect(addr)) => {
                tokio::spawn(connect(shared.clone(), addr));
                continue;
            }
            Some(PeerAction::Close(addr)) => {
                if let Some(link) = lock(&shared.links).remove(&addr) {
                    link.conn.close(0u32.into(), b"idle");
                }
                continue;
            }
            None => {}
        }
        let deadline = lock(&shared.peers).poll_timeout();
        let wait = deadline.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        // Due work runs whichever woke us: a stream of wake-ups cannot starve the timers.
        if deadline.is_some_and(|at| at <= Instant::now()) {
            lock(&shared.peers).handle_timeout(Instant::now());
        }
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
    }
}

async fn connect(shared: Arc<Shared>, addr: SocketAddr) {
    let client = lock(&shared.client).clone();
    let attempt = match shared.endpoint.connect_with(client, addr, MESH_SERVER_NAME) {
        Ok(connecting) => connecting.await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match attempt {
        Ok(conn) => established(shared, conn),
        Err(error) => {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %addr, %error, "mesh connection failed");
            lock(&shared.peers).handle_failed(Instant::now(), addr);
            shared.wake.notify_one();
        }
    }
}

fn established(shared: Arc<Shared>, conn: quinn::Connection) {
    let addr = conn.remote_address();
    // The verifier accepted only a certificate naming an edge; this is where the connection is
    // bound to it. A list that grew during the handshake is applied here too.
    let Some(peer) = peer_of(&conn).filter(|p| !shared.revoked.contains(&p.serial)) else {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        conn.close(2u32.into(), b"certificate refused");
        lock(&shared.peers).handle_failed(Instant::now(), addr);
        shared.wake.notify_one();
        return;
    };
    let edge = peer.edge_id.clone();
    lock(&shared.links).insert(
        addr,
        Link {
            conn: conn.clone(),
            peer,
            control: Arc::new(tokio::sync::Mutex::new(None)),
        },
    );
    lock(&shared.peers).handle_connected(Instant::now(), addr);
    shared.up.notify_waiters();
    tokio::spawn(read_controls(shared.clone(), conn.clone(), edge));
    tokio::spawn(read_datagrams(shared, conn));
}

async fn read_datagrams(shared: Arc<Shared>, conn: quinn::Connection) {
    let addr = conn.remote_address();
    let mut budget = FrameBudget::new(Instant::now(), shared.settings.peers.max_frames_per_sec);
    let error = loop {
        let datagram = match conn.read_datagram().await {
            Ok(d) => d,
            Err(e) => break e,
        };
        if !budget.take(Instant::now()) || !deliver_audio(&shared, addr, datagram) {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    tracing::debug!(peer = %addr, %error, "mesh connection ended");
    let mut links = lock(&shared.links);
    if links
        .get(&addr)
        .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
    {
        links.remove(&addr);
        drop(links);
        lock(&shared.peers).handle_failed(Instant::now(), addr);
        shared.wake.notify_one();
        // Its legs hear of it; a queue too full to take it has its leg end by its silence.
        for (peer, leg) in lock(&shared.legs).values() {
            if *peer == addr {
                let _ = leg.try_send(MeshInbound::Lost);
            }
        }
    }
}

fn deliver_audio(shared: &Shared, from: SocketAddr, datagram: Bytes) -> bool {
    let Ok(frame) = AudioFrame::decode(&datagram) else {
        return false;
    };
    let header = frame.header;
    let offset = datagram.len() - frame.payload.len();
    let legs = lock(&shared.legs);
    let Some(leg) = legs
        .get(&header.key)
        .and_then(|(peer, leg)| (*peer == from).then_some(leg))
    else {
        return false;
    };
    leg.try_send(MeshInbound::Audio {
        header,
        payload: datagram.slice(offset..),
    })
    .is_ok()
}

async fn read_controls(shared: Arc<Shared>, conn: quinn::Connection, edge: String) {
    let addr = conn.remote_address();
    while let Ok(mut stream) = conn.accept_uni().await {
        let mut reader = ControlReader::default();
        let mut messages = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(Some(n)) => n,
                Ok(None) | Err(_) => break,
            };
            if let Err(error) = reader.push(&buf[..n], &mut messages) {
                shared.counters.bad_control.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %addr, %error, "mesh control stream refused");
                let _ = stream.stop(1u32.into());
                break;
            }
            for message in messages.drain(..) {
                deliver_control(&shared, addr, &edge, message).await;
            }
        }
    }
}

/// A control message may wait a moment for a busy leg (a hang-up must not be lost to a queue
/// full of audio); the wait holds up only this peer's control stream.
async fn deliver_control(shared: &Shared, from: SocketAddr, edge: &str, message: ControlMessage) {
    if let ControlMessage::Join { from_edge, .. } = &message {
        if from_edge != edge {
            shared
                .counters
                .impersonations
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %from, certificate = %edge, claimed = %from_edge,
                "mesh join naming another edge than its certificate: refused");
            return;
        }
    }
    let leg = lock(&shared.legs)
        .get(&message.key())
        .and_then(|(peer, leg)| (*peer == from).then(|| leg.clone()));
    let delivered = match (leg, &message) {
        (Some(leg), _) => leg
            .send_timeout(MeshInbound::Control(message), Duration::from_secs(1))
            .await
            .is_ok(),
        // A join or a dial for no leg here is a request: the edge's gate decides it.
        (None, ControlMessage::Join { .. } | ControlMessage::Dial { .. }) => {
            shared.joins.try_send((from, message)).is_ok()
        }
        (None, _) => false,
    };
    if !delivered {
        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

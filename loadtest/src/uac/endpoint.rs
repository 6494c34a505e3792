//! The SIP side of the load generator: one UDP socket shared by every call, and a demultiplexer
//! that hands each incoming message to its call by Call-ID.
//!
//! Why one shared socket rather than one per call: a SIP peer (an edge, a trunk) sees a single
//! well-known client address, as it would from a real SBC; a thousand calls cost one file
//! descriptor and one receive task instead of a thousand (RTP already needs one socket per call,
//! since each call's SDP names its own port); and retransmissions and stray responses all land
//! in one place where they are counted. The receive task owns the Call-ID → call table, and
//! calls register and leave through a channel (no shared lock). Registration is processed before
//! any datagram (a biased select), so a call that registers and then sends its INVITE cannot
//! miss the first response.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use freya_edge::sip::{parse_message, MAX_MESSAGE_SIZE};
use rsip::SipMessage;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages queued per call before the demultiplexer drops more (a call that does not read its
/// SIP messages is stuck anyway; retransmissions will follow).
const CALL_QUEUE: usize = 32;

/// A SIP message for one call, with its source.
#[derive(Debug)]
pub struct Inbound {
    /// The parsed, validated message.
    pub message: SipMessage,
    /// Who sent it.
    pub source: SocketAddr,
}

enum Command {
    Register(String, mpsc::Sender<Inbound>),
    Leave(String),
}

/// Counters of what the endpoint could not deliver.
#[derive(Debug, Default)]
pub struct EndpointCounters {
    /// Datagrams that did not parse as SIP.
    pub unparsable: AtomicU64,
    /// Messages for a Call-ID no live call owns (late retransmissions, mostly).
    pub unmatched: AtomicU64,
    /// Messages dropped because the call's queue was full.
    pub dropped: AtomicU64,
}

/// A shared SIP UDP socket; cheap to clone, one per run.
#[derive(Clone)]
pub struct SipEndpoint {
    socket: Arc<UdpSocket>,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<EndpointCounters>,
}

impl SipEndpoint {
    /// Binds `local` and starts the receive task, which stops when `cancel` fires.
    pub async fn bind(local: SocketAddr, cancel: CancellationToken) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(local).await?);
        let (commands, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(EndpointCounters::default());
        tokio::spawn(demultiplex(socket.clone(), rx, counters.clone(), cancel));
        Ok(Self {
            socket,
            commands,
            counters,
        })
    }

    /// The address calls write in Via and Contact.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// What could not be delivered so far.
    pub fn counters(&self) -> &EndpointCounters {
        &self.counters
    }

    /// Routes messages with `call_id` to the returned receiver until [`Self::leave`].
    pub fn register(&self, call_id: &str) -> mpsc::Receiver<Inbound> {
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        // Fails only when the endpoint is shutting down; the call then sees a closed channel.
        let _ = self
            .commands
            .send(Command::Register(call_id.to_owned(), tx));
        rx
    }

    /// Stops routing `call_id`.
    pub fn leave(&self, call_id: &str) {
        let _ = self.commands.send(Command::Leave(call_id.to_owned()));
    }

    /// Sends one datagram.
    pub async fn send(&self, bytes: &[u8], dest: SocketAddr) -> std::io::Result<()> {
        self.socket.send_to(bytes, dest).await.map(|_| ())
    }
}

async fn demultiplex(
    socket: Arc<UdpSocket>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    counters: Arc<EndpointCounters>,
    cancel: CancellationToken,
) {
    let mut calls: HashMap<String, mpsc::Sender<Inbound>> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE];
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            command = commands.recv() => match command {
                Some(Command::Register(id, tx)) => { calls.insert(id, tx); }
                Some(Command::Leave(id)) => { calls.remove(&id); }
                None => return,
            },
            received = socket.recv_from(&mut buf) => {
                let Ok((len, source)) = received else { continue };
                let Some(bytes) = buf.get(..len) else { continue };
                let message = match parse_message(bytes) {
                    Ok(m) => m,
                    Err(error) => {
                        counters.unparsable.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%error, %source, "unparsable SIP datagram");
                        continue;
                    }
                };
                let headers = match &message {
                    SipMessage::Request(r) => &r.headers,
                    SipMessage::Response(r) => &r.headers,
                };
                let Ok(call_id) = freya_edge::sip::message::call_id(headers) else { continue };
                match calls.get(call_id) {
                    Some(tx) => {
                        if tx.try_send(Inbound { message, source }).is_err() {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        counters.unmatched.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

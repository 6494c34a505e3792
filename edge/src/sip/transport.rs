//! The SIP task: the tokio shell around [`SipEndpoint`]. It moves messages and time — UDP
//! datagrams and TCP streams (`tcp.rs`) on the same address — decides each new call (admission
//! from the cached configuration, an RTP port, the SDP answer) and spawns its call task;
//! signalling for live calls is forwarded to them over channels. Outbound calls asked for by
//! the control link ([`SipCommand`]) are placed here too (`placing.rs`) and become call tasks
//! once answered. The endpoint sees only [`Peer`]s and bytes, and says which transport each
//! message leaves by. SIP over TLS (`tls.rs`) is one more listener whose connections, once
//! their handshake is done, are served as TCP ones with [`Transport::Tls`] peers.
//!
//! The task serves every call, so it never waits for one: a call's signals go by `try_send`
//! (`signals.rs` says what a full queue means for each, and a hang-up is never lost).
//!
//! Against INVITE floods, a new INVITE first passes its source's rate ([`InviteRateLimiter`])
//! and then needs a slot ([`CallSlots`]): a call holds an unconfirmed slot from its INVITE until
//! the caller's ACK (`EndpointEvent::Confirmed`) moves it to the capacity, and gives it back
//! when it ends without one (CANCEL, `EndpointEvent::Failed`, a hang-up). Every place a call
//! leaves `calls`, `ringing` or `pending` releases its slot.

mod accept;
mod events;
mod icmp;
mod legs;
mod media_setup;
mod placing;
mod records;
pub(crate) mod redirect;
mod refusal;
pub(crate) mod registrations;
mod signals;
mod tcp;
pub(crate) mod tls;

pub(crate) use legs::{HostedLegCommand, LegDial};
pub(crate) use placing::{PlaceCall, SipCommand};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::endpoint::{ByeOutcome, SipEndpoint};
use super::peer::{Peer, Transport};
use super::Timers;
use crate::call::invite_rate::{InviteRate, InviteRateLimiter};
use crate::call::ports::{MediaAddresses, PortAllocator};
use crate::call::slots::{CallSlots, SlotLimits};
use crate::call::task::{self, CallServices, CallSetup, CallSignal, DialogRequest};
use crate::metrics::{CallQueueCounter, RefusalCounter};
use freya_shared::model::outbound_proxy::parse_proxy_uri;
use freya_shared::model::EndReason;
use media_setup::MediaSetup;
use placing::PendingOutbound;
use refusal::Refusals;
use signals::{CallSignals, Delivery};
use tcp::{TcpConnections, TcpInput};

/// How the SIP task reaches the outside world.
pub(crate) struct SipService {
    pub socket: UdpSocket,
    /// The TCP listener on the same address, when SIP over TCP is on.
    pub tcp: Option<crate::serve::LimitedListener>,
    /// The TLS listener (`sip.tls_listen`), when configured.
    pub tls: Option<TlsListener>,
    /// Opens TLS connections to trunks whose transport is `tls`.
    pub tls_dialer: Option<Arc<tls::TlsDialer>>,
    /// Ping connections we opened after this long without traffic (`sip.keepalive_interval_ms`).
    pub keepalive: Duration,
    /// Outbound calls and hang-ups asked for by the control link.
    pub commands: mpsc::Receiver<SipCommand>,
    /// The address put in Contact and Via (the socket's, or a configured public one).
    pub public_addr: SocketAddr,
    /// The edge's media address per IP family: a call's media is in its offer's family.
    pub media: MediaAddresses,
    pub ports: Arc<PortAllocator>,
    pub services: CallServices,
    /// How long a call rings (180) before it is answered.
    pub ring: Duration,
    /// New INVITEs each source may send (`sip.invites_per_second_per_source`,
    /// `sip.invite_burst_per_source`).
    pub invite_rate: InviteRate,
    /// Capacity for confirmed calls and the budget of unconfirmed ones (`capacity`,
    /// `sip.max_unconfirmed`, `sip.max_unconfirmed_per_source`).
    pub slots: SlotLimits,
    /// `freya_edge_sip_invites_refused_total`.
    pub refused: RefusalCounter,
    /// Where a call this edge will not take can go instead (`redirect.rs`).
    pub redirects: redirect::Redirects,
    /// `freya_edge_sip_call_queue_full_total`.
    pub queue_full: CallQueueCounter,
    /// Where registration statuses are shown (`registrations.rs`).
    pub registrations: registrations::RegistrationBoard,
}

/// The TLS listener and what it serves.
pub(crate) struct TlsListener {
    pub listener: tokio::net::TcpListener,
    pub settings: tls::TlsListenerSettings,
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The address put in Contact and Via on TLS flows (the listener's, or a public one).
    pub public_addr: SocketAddr,
}

/// A call that rings and will be answered at `answer_at` unless the caller cancels first.
struct Ringing {
    answer_at: tokio::time::Instant,
    sdp: String,
    setup: CallSetup,
}

/// Signals a call may have queued; beyond this the SIP task drops or holds them (`signals.rs`).
const SIGNAL_QUEUE: usize = 16;

/// What the SIP task reads besides its UDP socket.
struct Inbox {
    /// Outbound calls and hang-ups from the control link.
    commands: mpsc::Receiver<SipCommand>,
    /// Connections opened and closed, and messages framed, by the TCP tasks.
    tcp: mpsc::Receiver<TcpInput>,
    /// What calls ask of their dialogs (BYE, REFER, INFO); call tasks wait when it is full.
    requests: mpsc::Receiver<DialogRequest>,
    /// One UDP datagram.
    buf: Vec<u8>,
    /// When registered UDP flows get their CRLF keep-alive.
    keepalive: tokio::time::Interval,
}

/// The SIP task's state between two wake-ups.
struct SipTask {
    socket: UdpSocket,
    /// Whether `socket` is IPv6 (dual-stack): IPv4 destinations are then written mapped.
    ipv6_socket: bool,
    endpoint: SipEndpoint,
    connections: TcpConnections,
    media: MediaAddresses,
    ports: Arc<PortAllocator>,
    services: CallServices,
    ring: Duration,
    rate: InviteRateLimiter,
    slots: CallSlots,
    refusals: Refusals,
    redirects: redirect::Redirects,
    /// Live calls' signal channels by dialog (the SIP Call-ID).
    calls: CallSignals,
    /// An inbound call's dialog by its record id, which is how the control plane names it.
    records: HashMap<String, String>,
    /// Calls that ring, by dialog.
    ringing: HashMap<String, Ringing>,
    /// Outbound calls being placed, by dialog.
    pending: HashMap<String, PendingOutbound>,
    /// Calls' added legs, by the leg's own dialog (`legs.rs`).
    legs: legs::LegDialogs,
    /// Our BYEs whose outcome a call's record awaits.
    byes: HashMap<String, oneshot::Sender<ByeOutcome>>,
    /// Given to each call task, for its [`DialogRequest`]s.
    requests: mpsc::Sender<DialogRequest>,
    /// The next SDP session id (RFC 4566 `o=`), one per call.
    session_id: u64,
    /// Registration statuses, as shown.
    registrations: registrations::RegistrationBoard,
}

impl SipService {
    /// Serves SIP until `shutdown`, then hangs up every call.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let (mut task, mut inbox) = SipTask::start(self, &shutdown);
        while task.wake(&mut inbox, &shutdown).await {}
    }
}

impl SipTask {
    /// The task's state and inbox; the TCP listener starts accepting.
    fn start(service: SipService, shutdown: &CancellationToken) -> (Self, Inbox) {
        let SipService {
            socket,
            tcp,
            tls,
            tls_dialer,
            keepalive,
            commands,
            public_addr,
            media,
            ports,
            services,
            ring,
            invite_rate,
            slots,
            refused,
            redirects,
            queue_full,
            registrations,
        } = service;
        // ICMP errors for our INVITEs and in-dialog requests fail them at once (`icmp.rs`).
        if let Err(e) = icmp::report_unreachable(&socket) {
            tracing::warn!(error = %e, "cannot ask for ICMP errors; a dead UDP trunk will cost its invite timeout");
        }
        let (tcp_tx, tcp_rx) = mpsc::channel::<TcpInput>(1024);
        let connections =
            TcpConnections::new(tcp_tx.clone(), shutdown.clone(), tls_dialer, keepalive);
        if let Some(listener) = tcp {
            tokio::spawn(tcp::accept(listener, tcp_tx.clone(), shutdown.clone()));
        }
        let mut endpoint = SipEndpoint::new(public_addr, Timers::default());
        if let Some(TlsListener {
            listener,
            settings,
            acceptor,
            public_addr,
        }) = tls
        {
            endpoint.set_tls_address(public_addr);
            let accept = tls::accept(listener, settings, acceptor, tcp_tx, shutdown.clone());
            tokio::spawn(accept);
        }
        let (request_tx, request_rx) = mpsc::channel::<DialogRequest>(256);
        let task = SipTask {
            ipv6_socket: socket.local_addr().is_ok_and(|a| a.is_ipv6()),
            socket,
            endpoint,
            connections,
            media,
            ports,
            services,
            ring,
            rate: InviteRateLimiter::new(invite_rate),
            slots: CallSlots::new(slots),
            refusals: Refusals::new(refused),
            redirects,
            calls: CallSignals::new(queue_full),
            records: HashMap::new(),
            ringing: HashMap::new(),
            pending: HashMap::new(),
            byes: HashMap::new(),
            legs: HashMap::new(),
            requests: request_tx,
            session_id: rand::random::<u32>().into(),
            registrations,
        };
        let mut keepalive_timer = tokio::time::interval(keepalive);
        keepalive_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let inbox = Inbox {
            commands,
            tcp: tcp_rx,
            requests: request_rx,
            buf: vec![0u8; 65_536],
            keepalive: keepalive_timer,
        };
        (task, inbox)
    }

    /// Waits for the next input or deadline, handles it, then drains the endpoint. False once
    /// the edge shuts down.
    async fn wake(&mut self, inbox: &mut Inbox, shutdown: &CancellationToken) -> bool {
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let wake = self
            .endpoint
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(far);
        let next_answer = self
            .ringing
            .values()
            .map(|r| r.answer_at)
            .min()
            .unwrap_or_else(far);
        let backlog = self.calls.has_backlog();
        tokio::select! {
            received = self.socket.recv_from(&mut inbox.buf) => match received {
                // A dual-stack socket's IPv4 peers arrive as mapped addresses; the core
                // (Via `received`, dialogs, trunks) knows them as IPv4.
                Ok((n, source)) => self.endpoint.handle_datagram(Instant::now(), icmp::canonical(source), inbox.buf.get(..n).unwrap_or_default()),
                // The socket's pending ICMP error: its details wait on the error queue. Tokio
                // does not always wake the error branch below for it, so read them here too.
                Err(e) => {
                    tracing::debug!(error = %e, "SIP receive error");
                    unreachable(&self.socket, &mut self.endpoint);
                }
            },
            _ = self.socket.ready(Interest::ERROR) => {
                // Returning WouldBlock clears the readiness until the next error arrives.
                let _ = self.socket.try_io(Interest::ERROR, || {
                    unreachable(&self.socket, &mut self.endpoint);
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            },
            Some(input) = inbox.tcp.recv() => match input {
                TcpInput::Opened { peer, writer } => self.connections.opened(canonical(peer), writer),
                TcpInput::Message { peer, bytes } => self.endpoint.handle_message(Instant::now(), canonical(peer), &bytes),
                TcpInput::Closed { peer } => self.connections.closed(canonical(peer)),
                TcpInput::Failed { peer } => {
                    let peer = canonical(peer);
                    self.connections.closed(peer);
                    self.endpoint.handle_connection_failed(Instant::now(), peer);
                }
            },
            Some(command) = inbox.commands.recv() => self.on_command(command).await,
            _ = tokio::time::sleep_until(wake) => self.endpoint.handle_timeout(Instant::now()),
            _ = tokio::time::sleep_until(next_answer) => self.answer_due(),
            Some(request) = inbox.requests.recv() => match request {
                DialogRequest::DialLeg(dial) => self.dial_leg(dial).await,
                request => self.on_dialog_request(request),
            },
            _ = inbox.keepalive.tick() => self.udp_keepalives().await,
            // Signals wait for room in a call's queue: offer them again (`calls.retry` below).
            _ = tokio::time::sleep(signals::RETRY_EVERY), if backlog => {}
            _ = shutdown.cancelled() => {
                self.shut_down().await;
                return false;
            }
        }
        for dialog in self.calls.retry() {
            self.endpoint.set_signals_full(&dialog, false);
        }
        while let Some(event) = self.endpoint.poll_event() {
            self.on_event(event).await;
        }
        self.flush().await;
        true
    }

    /// An outbound call or a hang-up from the control link.
    async fn on_command(&mut self, command: SipCommand) {
        match command {
            SipCommand::PlaceCall(call) => {
                self.session_id += 1;
                for trunk in call
                    .trunks
                    .iter()
                    .filter(|t| t.peer.transport == Transport::Tls)
                {
                    // The certificate must name the host we connect to: the proxy's, if any.
                    let proxy = trunk.outbound_proxy.as_deref().map(parse_proxy_uri);
                    let name = match &proxy {
                        Some(Ok(proxy)) => proxy.host.as_str(),
                        _ => trunk.host.as_str(),
                    };
                    self.connections.expect_tls_name(trunk.peer.addr, name);
                }
                let call_id = call.call_id.clone();
                // Placed and answered outbound calls hold capacity slots; unconfirmed
                // inbound ones (strangers' INVITEs) do not count against them.
                let active = self.slots.carried();
                let media =
                    MediaSetup::new(&self.media, &self.ports, &self.services, self.session_id);
                let placed = placing::place(&mut self.endpoint, call, &media, active).await;
                if let Some(placing) = placed {
                    self.slots.take_outbound(&call_id);
                    self.pending.insert(call_id, placing);
                }
            }
            SipCommand::EndAll => self.end_all().await,
            SipCommand::Hosted(hosted) => self.on_hosted_leg(hosted).await,
            SipCommand::Registrations(wanted) => self.set_registrations(wanted),
            SipCommand::Legs { call_id, command } => {
                // Calls we placed use their record id as their Call-ID.
                let dialog = self.records.get(&call_id).cloned().unwrap_or(call_id);
                self.signal(&dialog, CallSignal::Legs(command));
            }
            SipCommand::Hangup { call_id: record } => {
                let now = Instant::now();
                // Calls we placed use their record id as their Call-ID.
                let call_id = self.records.get(&record).cloned().unwrap_or(record);
                // The call's task sends the BYE (DialogRequest::Hangup) and records its outcome.
                let reason = EndReason::HangupRequested;
                if self.calls.hang_up(now, &call_id, reason, true) {
                    self.slots.release(&call_id);
                    tracing::info!(call = %call_id, "hang-up requested by the control plane");
                } else if self.pending.contains_key(&call_id) {
                    self.endpoint.hangup(now, &call_id); // CANCEL; reported as OutboundFailed
                } else if let Some(unanswered) = self.ringing.remove(&call_id) {
                    self.slots.release(&call_id);
                    let phrase = "Temporarily Unavailable";
                    self.endpoint.reject(now, &call_id, 480, phrase, None);
                    let reason = EndReason::HangupRequested;
                    records::record_unanswered(&self.services, &unanswered.setup, reason).await;
                } else {
                    tracing::info!(call = %call_id, "hang-up requested for a call this edge does not carry");
                }
            }
        }
    }

    /// Answers the calls whose ringing time is up and starts their tasks.
    fn answer_due(&mut self) {
        let now = tokio::time::Instant::now();
        let due: Vec<String> = self
            .ringing
            .iter()
            .filter(|(_, r)| r.answer_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for call_id in due {
            if let Some(call) = self.ringing.remove(&call_id) {
                self.endpoint.answer(Instant::now(), &call_id, call.sdp);
                self.start_call(call.setup);
            }
        }
    }

    /// What a call asks of its dialog.
    fn on_dialog_request(&mut self, request: DialogRequest) {
        let now = Instant::now();
        match request {
            DialogRequest::Hangup {
                dialog: call_id,
                bye,
            } => {
                self.calls.forget(&call_id);
                self.slots.release(&call_id);
                self.endpoint.hangup(now, &call_id);
                if let Some(bye) = bye.filter(|_| self.endpoint.bye_pending(&call_id)) {
                    self.byes.insert(call_id, bye);
                }
            }
            DialogRequest::Transfer {
                dialog: call_id,
                destination,
            } => self.endpoint.transfer(now, &call_id, &destination),
            DialogRequest::SendDtmf {
                dialog: call_id,
                digits,
            } => self.endpoint.send_dtmf_info(now, &call_id, &digits),
            DialogRequest::HangupLeg { dialog, leg } => self.hang_up_leg(&dialog, leg),
            // Reserving its port is async: `wake` dials it (`legs.rs`).
            DialogRequest::DialLeg(_) => {}
        }
    }

    /// A drain's deadline: every live call is hung up as the control plane would ask (its task
    /// sends the BYE and records `edge_shutdown`), ringing ones are refused; the task serves on.
    async fn end_all(&mut self) {
        let now = Instant::now();
        for dialog in self.calls.live() {
            if self
                .calls
                .hang_up(now, &dialog, EndReason::EdgeShutdown, true)
            {
                self.slots.release(&dialog);
            }
        }
        for (call_id, ringing) in std::mem::take(&mut self.ringing) {
            self.slots.release(&call_id);
            let phrase = "Service Unavailable (edge draining)";
            self.endpoint.reject(now, &call_id, 503, phrase, Some(5));
            let reason = EndReason::EdgeShutdown;
            records::record_unanswered(&self.services, &ringing.setup, reason).await;
        }
    }

    /// The edge stops: refuse ringing calls, hang up live and pending ones, send what that wrote.
    async fn shut_down(&mut self) {
        let now = Instant::now();
        for (call_id, ringing) in std::mem::take(&mut self.ringing) {
            let phrase = "Service Unavailable (edge shutting down)";
            self.endpoint.reject(now, &call_id, 503, phrase, None);
            let reason = EndReason::EdgeShutdown;
            records::record_unanswered(&self.services, &ringing.setup, reason).await;
        }
        for call_id in self.calls.shut_down() {
            self.endpoint.hangup(now, &call_id);
        }
        for call_id in self.pending.keys() {
            self.endpoint.hangup(now, call_id);
        }
        self.hang_up_legs();
        self.flush().await;
    }

    /// Spawns the task of an answered call.
    fn start_call(&mut self, setup: CallSetup) {
        let (signal_tx, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
        self.calls.insert(setup.dialog.clone(), signal_tx);
        let services = &self.services;
        services.state.call_started();
        let span = setup.trace.span.clone();
        let run = task::run(setup, signal_rx, services.clone(), self.requests.clone());
        tokio::spawn(run.instrument(span));
    }

    /// Hands `signal` to the call `call_id` without waiting for it (`signals.rs`). When it did
    /// not fit, the endpoint refuses the call's INFO digits (500, `Retry-After`) until there is
    /// room again.
    fn signal(&mut self, call_id: &str, signal: CallSignal) {
        let delivery = self.calls.signal(Instant::now(), call_id, signal);
        if let Delivery::Dropped | Delivery::Waiting = delivery {
            self.endpoint.set_signals_full(call_id, true);
        }
    }

    /// Ends a confirmed call with our BYE and tells its task why (the session lapsed, or the
    /// peer never acknowledged our answer to its re-INVITE).
    fn end_session(&mut self, call_id: &str, reason: EndReason) {
        let now = Instant::now();
        // The call's task sends the BYE (DialogRequest::Hangup) and records its outcome.
        if !self.calls.hang_up(now, call_id, reason, true) {
            self.endpoint.hangup(now, call_id);
        }
    }

    /// Sends what the endpoint wrote.
    async fn flush(&mut self) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            match transmit.transport {
                Transport::Udp => {
                    let dest = icmp::for_socket(self.ipv6_socket, transmit.dest);
                    let mut sent = self.socket.send_to(&transmit.bytes, dest).await;
                    // A pending ICMP error (about some other destination, still queued for the
                    // error branch) fails the next send on the socket once; send it again.
                    if sent
                        .as_ref()
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
                    {
                        sent = self.socket.send_to(&transmit.bytes, dest).await;
                    }
                    if let Err(e) = sent {
                        tracing::debug!(dest = %transmit.dest, error = %e, "SIP send failed");
                    }
                }
                transport @ (Transport::Tcp | Transport::Tls) => {
                    let peer = Peer {
                        transport,
                        addr: transmit.dest,
                    };
                    self.connections.send(peer, transmit.bytes);
                }
            }
        }
    }
}

/// A stream peer as the core knows it: IPv4 peers of a dual-stack listener unmapped.
fn canonical(peer: Peer) -> Peer {
    Peer {
        transport: peer.transport,
        addr: icmp::canonical(peer.addr),
    }
}

/// Reads the ICMP errors queued on the SIP socket and fails our transactions to each
/// destination reported unreachable.
fn unreachable(socket: &UdpSocket, endpoint: &mut SipEndpoint) {
    for dest in icmp::drain_unreachable(socket) {
        tracing::info!(%dest, "ICMP: destination unreachable");
        endpoint.handle_unreachable(Instant::now(), dest);
    }
}

//! The SIP task: the tokio shell around [`SipEndpoint`]. It moves messages and time — UDP
//! datagrams and TCP streams (`tcp.rs`) on the same address — decides each new call (admission
//! from the cached configuration, an RTP port, the SDP answer) and spawns its call task;
//! signalling for live calls is forwarded to them over channels. Outbound calls asked for by
//! the control link ([`SipCommand`]) are placed here too (`placing.rs`) and become call tasks
//! once answered. The endpoint sees only [`Peer`]s and bytes, and says which transport each
//! message leaves by; TLS would be one more listener and one more [`Transport`] variant.
//!
//! Against INVITE floods, a new INVITE first passes its source's rate ([`InviteRateLimiter`])
//! and then needs a slot ([`CallSlots`]): a call holds an unconfirmed slot from its INVITE until
//! the caller's ACK (`EndpointEvent::Confirmed`) moves it to the capacity, and gives it back
//! when it ends without one (CANCEL, `EndpointEvent::Failed`, a hang-up). Every place a call
//! leaves `calls`, `ringing` or `pending` releases its slot.

mod accept;
mod icmp;
mod placing;
mod refusal;
mod tcp;

pub use placing::{PlaceCall, SipCommand};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::endpoint::{EndpointEvent, SipEndpoint};
use super::peer::{Peer, Transport};
use super::Timers;
use crate::call::admission::rate_limited;
use crate::call::invite_rate::{InviteRate, InviteRateLimiter};
use crate::call::ports::{MediaAddresses, PortAllocator};
use crate::call::slots::{CallSlots, SlotLimits};
use crate::call::task::{self, CallServices, CallSetup, CallSignal, DialogRequest};
use crate::metrics::RefusalCounter;
use freya_shared::model::call_payloads::{CallEnded, CallStarted};
use freya_shared::model::{CallEvent, CallEventData, EndReason};
use placing::PendingOutbound;
use refusal::Refusals;
use tcp::{TcpConnections, TcpInput};

/// How the SIP task reaches the outside world.
pub struct SipService {
    pub socket: UdpSocket,
    /// The TCP listener on the same address, when SIP over TCP is on.
    pub tcp: Option<crate::serve::LimitedListener>,
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
}

/// A call that rings and will be answered at `answer_at` unless the caller cancels first.
struct Ringing {
    answer_at: tokio::time::Instant,
    sdp: String,
    setup: CallSetup,
}

/// Signalling messages a call's media may wait on; beyond this the SIP task waits.
const SIGNAL_QUEUE: usize = 16;

impl SipService {
    /// Serves SIP until `shutdown`, then hangs up every call.
    pub async fn run(self, shutdown: CancellationToken) {
        let SipService {
            socket,
            tcp,
            mut commands,
            public_addr,
            media,
            ports,
            services,
            ring,
            invite_rate,
            slots,
            refused,
        } = self;
        // ICMP errors for our INVITEs and in-dialog requests fail them at once (`icmp.rs`).
        if let Err(e) = icmp::report_unreachable(&socket) {
            tracing::warn!(error = %e, "cannot ask for ICMP errors; a dead UDP trunk will cost its invite timeout");
        }
        let ipv6_socket = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        let mut refusals = Refusals::new(refused);
        let mut rate = InviteRateLimiter::new(invite_rate);
        let mut slots = CallSlots::new(slots);
        let mut endpoint = SipEndpoint::new(public_addr, Timers::default());
        // Live and ringing calls by dialog (the SIP Call-ID); `records` finds an inbound call's
        // dialog from its record id, which is how the control plane names it.
        let mut calls: HashMap<String, mpsc::Sender<CallSignal>> = HashMap::new();
        let mut records: HashMap<String, String> = HashMap::new();
        let mut ringing: HashMap<String, Ringing> = HashMap::new();
        let mut pending: HashMap<String, PendingOutbound> = HashMap::new();
        let mut byes = HashMap::new(); // our BYEs whose outcome a call's record awaits
        let (tcp_tx, mut tcp_rx) = mpsc::channel::<TcpInput>(1024);
        let mut connections = TcpConnections::new(tcp_tx.clone(), shutdown.clone());
        if let Some(listener) = tcp {
            tokio::spawn(tcp::accept(listener, tcp_tx, shutdown.clone()));
        }
        // What calls ask of their dialogs (BYE, REFER, INFO); call tasks wait when it is full.
        let (request_tx, mut request_rx) = mpsc::channel::<DialogRequest>(256);
        let mut buf = vec![0u8; 65_536];
        let mut session_id: u64 = rand::random::<u32>().into();
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        loop {
            let wake = endpoint
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(far);
            let next_answer = ringing
                .values()
                .map(|r| r.answer_at)
                .min()
                .unwrap_or_else(far);
            tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    // A dual-stack socket's IPv4 peers arrive as mapped addresses; the core
                    // (Via `received`, dialogs, trunks) knows them as IPv4.
                    Ok((n, source)) => endpoint.handle_datagram(Instant::now(), icmp::canonical(source), buf.get(..n).unwrap_or_default()),
                    // The socket's pending ICMP error: its details wait on the error queue. Tokio
                    // does not always wake the error branch below for it, so read them here too.
                    Err(e) => {
                        tracing::debug!(error = %e, "SIP receive error");
                        unreachable(&socket, &mut endpoint);
                    }
                },
                _ = socket.ready(Interest::ERROR) => {
                    // Returning WouldBlock clears the readiness until the next error arrives.
                    let _ = socket.try_io(Interest::ERROR, || {
                        unreachable(&socket, &mut endpoint);
                        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                    });
                },
                Some(input) = tcp_rx.recv() => match input {
                    TcpInput::Opened { peer, writer } => connections.opened(icmp::canonical(peer), writer),
                    TcpInput::Message { peer, bytes } => endpoint.handle_message(Instant::now(), Peer::tcp(icmp::canonical(peer)), &bytes),
                    TcpInput::Closed { peer } => connections.closed(icmp::canonical(peer)),
                },
                Some(command) = commands.recv() => match command {
                    SipCommand::PlaceCall(call) => {
                        session_id += 1;
                        let call_id = call.call_id.clone();
                        // Placed and answered outbound calls hold capacity slots; unconfirmed
                        // inbound ones (strangers' INVITEs) do not count against them.
                        let active = slots.carried();
                        if let Some(placing) = placing::place(&mut endpoint, call, &media, session_id, &ports, &services, active).await {
                            slots.take_outbound(&call_id);
                            pending.insert(call_id, placing);
                        }
                    }
                    SipCommand::Hangup { call_id: record } => {
                        let now = Instant::now();
                        // Calls we placed use their record id as their Call-ID.
                        let call_id = records.get(&record).cloned().unwrap_or(record);
                        if let Some(tx) = calls.remove(&call_id) {
                            slots.release(&call_id);
                            tracing::info!(call = %call_id, "hang-up requested by the control plane");
                            // The call's task sends the BYE (DialogRequest::Hangup) and records its outcome.
                            let _ = tx.send(CallSignal::Hangup { reason: EndReason::HangupRequested, by_us: true }).await;
                        } else if pending.contains_key(&call_id) {
                            endpoint.hangup(now, &call_id); // CANCEL; reported as OutboundFailed
                        } else if let Some(unanswered) = ringing.remove(&call_id) {
                            slots.release(&call_id);
                            endpoint.reject(now, &call_id, 480, "Temporarily Unavailable", None);
                            record_unanswered(&services, &unanswered.setup, EndReason::HangupRequested).await;
                        } else {
                            tracing::info!(call = %call_id, "hang-up requested for a call this edge does not carry");
                        }
                    }
                },
                _ = tokio::time::sleep_until(wake) => endpoint.handle_timeout(Instant::now()),
                _ = tokio::time::sleep_until(next_answer) => {
                    let now = tokio::time::Instant::now();
                    let due: Vec<String> = ringing
                        .iter()
                        .filter(|(_, r)| r.answer_at <= now)
                        .map(|(id, _)| id.clone())
                        .collect();
                    for call_id in due {
                        if let Some(call) = ringing.remove(&call_id) {
                            endpoint.answer(Instant::now(), &call_id, call.sdp);
                            start_call(call.setup, &mut calls, &services, &request_tx);
                        }
                    }
                }
                Some(request) = request_rx.recv() => match request {
                    DialogRequest::Hangup { dialog: call_id, bye } => {
                        calls.remove(&call_id);
                        slots.release(&call_id);
                        endpoint.hangup(Instant::now(), &call_id);
                        if let Some(bye) = bye.filter(|_| endpoint.bye_pending(&call_id)) {
                            byes.insert(call_id, bye);
                        }
                    }
                    DialogRequest::Transfer { dialog: call_id, destination } => {
                        endpoint.transfer(Instant::now(), &call_id, &destination);
                    }
                    DialogRequest::SendDtmf { dialog: call_id, digits } => {
                        endpoint.send_dtmf_info(Instant::now(), &call_id, &digits);
                    }
                },
                _ = shutdown.cancelled() => {
                    let now = Instant::now();
                    for call_id in ringing.keys() {
                        endpoint.reject(now, call_id, 503, "Service Unavailable (edge shutting down)", None);
                    }
                    for (call_id, signal) in calls.drain() {
                        endpoint.hangup(now, &call_id);
                        let _ = signal.try_send(CallSignal::Hangup { reason: EndReason::EdgeShutdown, by_us: true });
                    }
                    for call_id in pending.keys() {
                        endpoint.hangup(now, call_id);
                    }
                    flush(&socket, ipv6_socket, &mut connections, &mut endpoint).await;
                    return;
                }
            }
            while let Some(event) = endpoint.poll_event() {
                match event {
                    EndpointEvent::IncomingCall(call) => {
                        session_id += 1;
                        // The endpoint's transaction absorbs retransmissions, so only new
                        // INVITEs reach the limiter; a refused one keeps no call state, only
                        // its transaction to repeat the 503.
                        if let Err(wait) = rate.handle_invite(Instant::now(), call.source.ip()) {
                            refusals.refuse_admission(&mut endpoint, &call, rate_limited(wait));
                            continue;
                        }
                        let source = call.source.ip();
                        let room = slots.check_inbound(source);
                        let accepted = accept::accept(
                            &mut endpoint,
                            call,
                            &media,
                            session_id,
                            &ports,
                            &services,
                            room,
                            &mut refusals,
                        )
                        .await;
                        let Some((sdp, setup)) = accepted else {
                            continue;
                        };
                        slots.take_inbound(&setup.dialog, source);
                        if records.len() > 2 * (calls.len() + ringing.len()) + 64 {
                            records.retain(|_, d| calls.contains_key(d) || ringing.contains_key(d));
                        }
                        records.insert(setup.call_id.clone(), setup.dialog.clone());
                        if ring.is_zero() {
                            endpoint.answer(Instant::now(), &setup.dialog, sdp);
                            start_call(setup, &mut calls, &services, &request_tx);
                        } else {
                            endpoint.ring(Instant::now(), &setup.dialog);
                            let answer_at = tokio::time::Instant::now() + ring;
                            ringing.insert(
                                setup.dialog.clone(),
                                Ringing {
                                    answer_at,
                                    sdp,
                                    setup,
                                },
                            );
                        }
                    }
                    EndpointEvent::Confirmed { call_id } => {
                        slots.confirm(&call_id);
                        signal(&calls, &call_id, CallSignal::Confirmed).await
                    }
                    EndpointEvent::Dtmf { call_id, digit } => {
                        signal(&calls, &call_id, CallSignal::Dtmf(digit)).await
                    }
                    EndpointEvent::RemoteHangup { call_id, cancelled } => {
                        let reason = if cancelled {
                            EndReason::CallerCancelled
                        } else {
                            EndReason::CallerHangup
                        };
                        slots.release(&call_id);
                        if let Some(unanswered) = ringing.remove(&call_id) {
                            record_unanswered(&services, &unanswered.setup, reason.clone()).await;
                        }
                        if let Some(tx) = calls.remove(&call_id) {
                            let _ = tx
                                .send(CallSignal::Hangup {
                                    reason,
                                    by_us: false,
                                })
                                .await;
                        }
                    }
                    EndpointEvent::OutboundRinging { call_id } => {
                        tracing::info!(call = %call_id, "outbound call ringing");
                    }
                    EndpointEvent::OutboundAnswered {
                        call_id,
                        trunk_id,
                        answer,
                        attempts,
                    } => {
                        let Some(placed) = pending.remove(&call_id) else {
                            continue;
                        };
                        tracing::info!(call = %call_id, trunk = %trunk_id, "outbound call answered");
                        let through = placing::Answer {
                            trunk_id: &trunk_id,
                            sdp: &answer,
                            failed_first: &attempts,
                        };
                        match placing::answered(&call_id, placed, through, &services).await {
                            Some(setup) => start_call(setup, &mut calls, &services, &request_tx),
                            None => {
                                slots.release(&call_id);
                                endpoint.hangup(Instant::now(), &call_id);
                            }
                        }
                    }
                    EndpointEvent::OutboundFailed { call_id, failure } => {
                        if let Some(placed) = pending.remove(&call_id) {
                            slots.release(&call_id);
                            placing::failed(&call_id, placed, &failure, &services).await;
                        }
                    }
                    EndpointEvent::MediaDirection { call_id, direction } => {
                        signal(&calls, &call_id, CallSignal::Direction(direction)).await
                    }
                    EndpointEvent::ByeOutcome { call_id, outcome } => {
                        if let Some(bye) = byes.remove(&call_id) {
                            let _ = bye.send(outcome);
                        }
                    }
                    EndpointEvent::Transfer { call_id, progress } => {
                        signal(&calls, &call_id, CallSignal::Transfer(progress)).await
                    }
                    EndpointEvent::SessionExpired { call_id } => {
                        slots.release(&call_id);
                        end_session(
                            &mut endpoint,
                            &mut calls,
                            &call_id,
                            EndReason::SessionExpired,
                        )
                        .await;
                    }
                    EndpointEvent::ReinviteUnacknowledged { call_id } => {
                        slots.release(&call_id);
                        let reason = EndReason::ReinviteUnacknowledged;
                        end_session(&mut endpoint, &mut calls, &call_id, reason).await;
                    }
                    EndpointEvent::Failed { call_id, reason } => {
                        tracing::info!(call = %call_id, reason, "call lost in signalling");
                        slots.release(&call_id);
                        if let Some(tx) = calls.remove(&call_id) {
                            let _ = tx
                                .send(CallSignal::Hangup {
                                    reason: EndReason::SignallingFailed,
                                    by_us: false,
                                })
                                .await;
                        }
                    }
                }
            }
            flush(&socket, ipv6_socket, &mut connections, &mut endpoint).await;
        }
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

/// Ends a confirmed call with our BYE and tells its task why (the session lapsed, or the peer
/// never acknowledged our answer to its re-INVITE).
async fn end_session(
    endpoint: &mut SipEndpoint,
    calls: &mut HashMap<String, mpsc::Sender<CallSignal>>,
    call_id: &str,
    reason: EndReason,
) {
    match calls.remove(call_id) {
        // The call's task sends the BYE (DialogRequest::Hangup) and records its outcome.
        Some(tx) => {
            let _ = tx
                .send(CallSignal::Hangup {
                    reason,
                    by_us: true,
                })
                .await;
        }
        None => endpoint.hangup(Instant::now(), call_id),
    }
}

/// Spawns the task of an answered call.
fn start_call(
    setup: CallSetup,
    calls: &mut HashMap<String, mpsc::Sender<CallSignal>>,
    services: &CallServices,
    requests: &mpsc::Sender<DialogRequest>,
) {
    let (signal_tx, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
    calls.insert(setup.dialog.clone(), signal_tx);
    services.state.call_started();
    let span = tracing::info_span!("call", call_id = %setup.call_id, edge = %services.edge_id, workspace = %setup.workspace_id);
    tokio::spawn(task::run(setup, signal_rx, services.clone(), requests.clone()).instrument(span));
}

/// Records a call that ended while it rang (the caller gave up).
async fn record_unanswered(services: &CallServices, setup: &CallSetup, reason: EndReason) {
    let started = CallStarted {
        direction: Some("inbound".to_owned()),
        from: Some(setup.caller.clone()),
        to: Some(setup.dialled.clone()),
        agent_id: Some(Some(setup.agent.id.clone())),
        edge_id: Some(services.edge_id.to_string()),
        ..CallStarted::default()
    };
    let started = CallEvent::new(
        setup.call_id.clone(),
        setup.workspace_id.clone(),
        CallEventData::Started(started),
    );
    let ended = CallEnded {
        answered: Some(false),
        ..CallEnded::because(reason)
    };
    let ended = CallEvent::new(
        setup.call_id.clone(),
        setup.workspace_id.clone(),
        CallEventData::Ended(ended),
    );
    for event in [started, ended] {
        let _ = services.events.send(event).await;
    }
}

async fn signal(
    calls: &HashMap<String, mpsc::Sender<CallSignal>>,
    call_id: &str,
    signal: CallSignal,
) {
    if let Some(tx) = calls.get(call_id) {
        let _ = tx.send(signal).await;
    }
}

async fn flush(
    socket: &UdpSocket,
    ipv6_socket: bool,
    connections: &mut TcpConnections,
    endpoint: &mut SipEndpoint,
) {
    while let Some(transmit) = endpoint.poll_transmit() {
        match transmit.transport {
            Transport::Udp => {
                let dest = icmp::for_socket(ipv6_socket, transmit.dest);
                let mut sent = socket.send_to(&transmit.bytes, dest).await;
                // A pending ICMP error (about some other destination, still queued for the
                // error branch) fails the next send on the socket once; send it again.
                if sent
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
                {
                    sent = socket.send_to(&transmit.bytes, dest).await;
                }
                if let Err(e) = sent {
                    tracing::debug!(dest = %transmit.dest, error = %e, "SIP send failed");
                }
            }
            Transport::Tcp => connections.send(transmit.dest, transmit.bytes),
        }
    }
}

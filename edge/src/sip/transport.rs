//! The SIP socket task: the tokio shell around [`SipEndpoint`]. It moves datagrams and time,
//! decides each new call (admission from the cached configuration, an RTP port, the SDP answer)
//! and spawns its call task; signalling for live calls is forwarded to them over channels.
//! UDP today; the endpoint takes bytes and addresses, so TCP and TLS are further shells.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::endpoint::{EndpointEvent, IncomingCall, SipEndpoint};
use super::sdp::{self, Codec, Direction, LocalMedia, SdpError, SessionDescription};
use super::Timers;
use crate::call::admission::admit;
use crate::call::ports::PortAllocator;
use crate::call::task::{self, CallServices, CallSetup, CallSignal};

/// How the SIP task reaches the outside world.
pub struct SipService {
    pub socket: UdpSocket,
    /// The address put in Contact and Via (the socket's, or a configured public one).
    pub public_addr: SocketAddr,
    /// The IP put in SDP for callers' media.
    pub media_ip: IpAddr,
    pub ports: Arc<PortAllocator>,
    pub services: CallServices,
}

/// Signalling messages a call's media may wait on; beyond this the SIP task waits.
const SIGNAL_QUEUE: usize = 16;

impl SipService {
    /// Serves SIP until `shutdown`, then hangs up every call.
    pub async fn run(self, shutdown: CancellationToken) {
        let SipService {
            socket,
            public_addr,
            media_ip,
            ports,
            services,
        } = self;
        let mut endpoint = SipEndpoint::new(public_addr, Timers::default());
        let mut calls: HashMap<String, mpsc::Sender<CallSignal>> = HashMap::new();
        let (hangup_tx, mut hangup_rx) = mpsc::channel::<String>(256);
        let mut buf = vec![0u8; 65_536];
        let mut session_id: u64 = rand::random::<u32>().into();
        loop {
            let wake = endpoint
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => endpoint.handle_datagram(Instant::now(), source, buf.get(..n).unwrap_or_default()),
                    // ICMP port unreachable from an earlier send surfaces here on some systems.
                    Err(e) => tracing::debug!(error = %e, "SIP receive error"),
                },
                _ = tokio::time::sleep_until(wake) => endpoint.handle_timeout(Instant::now()),
                Some(call_id) = hangup_rx.recv() => {
                    calls.remove(&call_id);
                    endpoint.hangup(Instant::now(), &call_id);
                }
                _ = shutdown.cancelled() => {
                    let now = Instant::now();
                    for (call_id, signal) in calls.drain() {
                        endpoint.hangup(now, &call_id);
                        let _ = signal.try_send(CallSignal::Hangup { reason: "edge_shutdown" });
                    }
                    flush(&socket, &mut endpoint).await;
                    return;
                }
            }
            while let Some(event) = endpoint.poll_event() {
                match event {
                    EndpointEvent::IncomingCall(call) => {
                        session_id += 1;
                        let accepted = accept(
                            &mut endpoint,
                            call,
                            media_ip,
                            session_id,
                            &ports,
                            &services,
                            &calls,
                        )
                        .await;
                        if let Some((call_id, setup)) = accepted {
                            let (signal_tx, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
                            calls.insert(call_id.clone(), signal_tx);
                            services.state.call_started();
                            let span = tracing::info_span!("call", call_id = %call_id, edge = %services.edge_id, workspace = %setup.workspace_id);
                            tokio::spawn(
                                task::run(setup, signal_rx, services.clone(), hangup_tx.clone())
                                    .instrument(span),
                            );
                        }
                    }
                    EndpointEvent::Confirmed { call_id } => {
                        signal(&calls, &call_id, CallSignal::Confirmed).await
                    }
                    EndpointEvent::Dtmf { call_id, digit } => {
                        signal(&calls, &call_id, CallSignal::Dtmf(digit)).await
                    }
                    EndpointEvent::RemoteHangup { call_id, cancelled } => {
                        let reason = if cancelled {
                            "caller_cancelled"
                        } else {
                            "caller_hangup"
                        };
                        if let Some(tx) = calls.remove(&call_id) {
                            let _ = tx.send(CallSignal::Hangup { reason }).await;
                        }
                    }
                    EndpointEvent::Failed { call_id, reason } => {
                        tracing::info!(call = %call_id, reason, "call lost in signalling");
                        if let Some(tx) = calls.remove(&call_id) {
                            let _ = tx
                                .send(CallSignal::Hangup {
                                    reason: "signalling_failed",
                                })
                                .await;
                        }
                    }
                }
            }
            flush(&socket, &mut endpoint).await;
        }
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

async fn flush(socket: &UdpSocket, endpoint: &mut SipEndpoint) {
    while let Some(transmit) = endpoint.poll_transmit() {
        if let Err(e) = socket.send_to(&transmit.bytes, transmit.dest).await {
            tracing::debug!(dest = %transmit.dest, error = %e, "SIP send failed");
        }
    }
}

/// Decides an incoming call: refuses it with the right response, or answers it and returns
/// what its task needs.
async fn accept(
    endpoint: &mut SipEndpoint,
    call: IncomingCall,
    media_ip: IpAddr,
    session_id: u64,
    ports: &PortAllocator,
    services: &CallServices,
    calls: &HashMap<String, mpsc::Sender<CallSignal>>,
) -> Option<(String, CallSetup)> {
    let now = Instant::now();
    let snapshot = services.state.snapshot();
    let active = u32::try_from(calls.len()).unwrap_or(u32::MAX);
    let route = match admit(
        &snapshot,
        &call.dialled,
        services.state.is_draining(),
        active,
        services.state.capacity(),
    ) {
        Ok(route) => route,
        Err(refusal) => {
            tracing::info!(call = %call.call_id, dialled = %call.dialled, code = refusal.code, "call refused");
            endpoint.reject(
                now,
                &call.call_id,
                refusal.code,
                refusal.reason,
                refusal.retry_after,
            );
            return None;
        }
    };
    if call.offer.is_empty() {
        tracing::info!(call = %call.call_id, "refused an INVITE without an SDP offer");
        endpoint.reject(
            now,
            &call.call_id,
            488,
            "Not Acceptable Here (SDP offer required)",
            None,
        );
        return None;
    }
    let offer = match SessionDescription::parse(&call.offer) {
        Ok(offer) => offer,
        Err(e) => {
            tracing::info!(call = %call.call_id, error = %e, "refused an INVITE with bad SDP");
            endpoint.reject(now, &call.call_id, 400, "Bad SDP", None);
            return None;
        }
    };
    let Some(socket) = ports.bind().await else {
        tracing::warn!(call = %call.call_id, "no free RTP port");
        endpoint.reject(
            now,
            &call.call_id,
            503,
            "Service Unavailable (no media ports)",
            Some(5),
        );
        return None;
    };
    let port = socket.local_addr().map(|a| a.port()).unwrap_or_default();
    let local = LocalMedia {
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        address: media_ip,
        port,
        direction: Direction::SendRecv,
        session_id,
        opus_payload_type: 111,
        telephone_event_payload_type: 101,
        ptime: 20,
    };
    let answer = match sdp::answer(&offer, &local) {
        Ok(answer) => answer,
        Err(e @ (SdpError::NoCommonCodec | SdpError::NoAudio)) => {
            tracing::info!(call = %call.call_id, error = %e, "no common codec");
            endpoint.reject(now, &call.call_id, 488, "Not Acceptable Here", None);
            return None;
        }
        Err(e) => {
            tracing::info!(call = %call.call_id, error = %e, "cannot answer this SDP");
            endpoint.reject(now, &call.call_id, 400, "Bad SDP", None);
            return None;
        }
    };
    endpoint.answer(now, &call.call_id, answer.sdp);
    let setup = CallSetup {
        call_id: call.call_id.clone(),
        workspace_id: route.number.workspace_id.clone(),
        agent: route.agent.clone(),
        caller: call.caller,
        dialled: call.dialled,
        audio: answer.audio,
        socket,
    };
    Some((call.call_id, setup))
}

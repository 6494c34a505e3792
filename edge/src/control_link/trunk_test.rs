//! A trunk tested on demand (`TestTrunk`, sent when someone presses "Test" on a provider): the
//! trunk of this edge's configuration is checked now and the outcome goes back with
//! `ReportTrunkTest`, named by the command's id. Over UDP one OPTIONS is sent by the same core
//! as the periodic pings ([`TrunkPinger`], from its own socket on the SIP listener's IP); over
//! TCP a connection is opened and an OPTIONS sent on it; over TLS the handshake is made by the
//! dialer the trunk's calls use ([`TlsDialer`]: the chain checked against `sip.tls_ca_file` or
//! the system roots, the name against the trunk's `host`), a refusal said in words (an unknown
//! issuer, a certificate for another name, an expired one), then an OPTIONS sent over it.
//! Everything is bounded by `sip.options_timeout_ms` (plus the resolver's own 3 s; the
//! handshake also by `sip.tls_handshake_timeout_ms`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio_rustls::rustls;

use super::trunk_health_report::{target_of, unresolved};
use super::LinkContext;
use crate::sip::transport::tls::{TlsDialer, TlsError};
use crate::sip::trunk_health::{
    final_answer, stream_options_request, ProbeTarget, TrunkPinger, TrunkState, TrunkTarget,
};
use crate::state::EdgeState;
use freya_proto::v1::{TestTrunk, TrunkTestResult};
use freya_shared::model::{ProviderSpec, SipTransport, SipTrunkSpec};

/// How long a test waits for a snapshot holding a trunk it does not know yet.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// Largest answer read (UDP datagram or the head of a TCP answer).
const MAX_ANSWER: usize = 8 * 1024;

/// Where and how patiently trunks are tested: the SIP listener's IP and
/// `sip.options_timeout_ms`; TLS trunks with the dialer their calls use, so a test trusts
/// exactly what a call would.
#[derive(Clone)]
pub(crate) struct TrunkProbe {
    pub ip: IpAddr,
    pub timeout: Duration,
    pub tls: Arc<TlsDialer>,
}

/// What a test found, before it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    ok: bool,
    latency: Duration,
    status: Option<u16>,
    detail: String,
}

impl Outcome {
    fn failed(latency: Duration, detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            latency,
            status: None,
            detail: detail.into(),
        }
    }
}

/// Starts the test the command `command_id` asks for, in a task of its own (the command
/// stream goes on meanwhile).
pub(super) fn spawn(link: &LinkContext, state: &EdgeState, command_id: String, test: TestTrunk) {
    tokio::spawn(run(link.clone(), state.clone(), command_id, test));
}

/// Tests `test`'s trunk and reports the outcome.
async fn run(link: LinkContext, state: EdgeState, command_id: String, test: TestTrunk) {
    let spec = trunk_in_snapshot(&state, &test.provider_id).await;
    let (transport, outcome) = match &spec {
        None => (
            String::new(),
            Outcome::failed(
                Duration::ZERO,
                "this edge's configuration has no such SIP trunk (yet)",
            ),
        ),
        Some(spec) => (
            transport_name(spec.transport).to_owned(),
            test_trunk(&link.trunk_probe, &test.provider_id, spec).await,
        ),
    };
    tracing::info!(provider_id = %test.provider_id, ok = outcome.ok, detail = %outcome.detail, "trunk tested on request");
    let result = TrunkTestResult {
        edge_id: link.edge_id.to_string(),
        command_id,
        provider_id: test.provider_id,
        ok: outcome.ok,
        latency_ms: u32::try_from(outcome.latency.as_micros().div_ceil(1_000))
            .unwrap_or(u32::MAX)
            .max(1),
        status: outcome.status.map_or(0, u32::from),
        detail: outcome.detail,
        transport,
    };
    if let Err(status) = link.client.clone().report_trunk_test(result).await {
        super::log_failure("reporting a trunk test", &status);
    }
}

/// The trunk `provider_id` of the configuration, waiting up to [`SNAPSHOT_WAIT`] for a
/// snapshot that has it (a trunk created a moment ago is tested at once).
async fn trunk_in_snapshot(state: &EdgeState, provider_id: &str) -> Option<SipTrunkSpec> {
    let find = |snapshot: &freya_shared::snapshot::EdgeConfigSnapshot| {
        snapshot
            .providers
            .iter()
            .find(|p| p.id == provider_id)
            .and_then(|p| match &p.spec {
                ProviderSpec::SipTrunk(spec) => Some(spec.clone()),
                ProviderSpec::Twilio(_) => None,
            })
    };
    let mut snapshots = state.watch_snapshot();
    let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
    loop {
        if let Some(spec) = find(&snapshots.borrow_and_update()) {
            return Some(spec);
        }
        match tokio::time::timeout_at(deadline, snapshots.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}

fn transport_name(transport: SipTransport) -> &'static str {
    match transport {
        SipTransport::Udp => "udp",
        SipTransport::Tcp => "tcp",
        SipTransport::Tls => "tls",
    }
}

async fn test_trunk(probe: &TrunkProbe, provider_id: &str, spec: &SipTrunkSpec) -> Outcome {
    match spec.transport {
        SipTransport::Udp => match target_of(provider_id, spec).await {
            target @ ProbeTarget::Udp { .. } => udp_options(probe, provider_id, target).await,
            ProbeTarget::Unpingable { reason, .. } => Outcome::failed(Duration::ZERO, reason),
        },
        SipTransport::Tcp | SipTransport::Tls => {
            let Some(trunk) = super::commands::resolve(provider_id, spec).await else {
                let ProbeTarget::Unpingable { reason, .. } = unresolved(spec) else {
                    return Outcome::failed(Duration::ZERO, "cannot resolve the trunk");
                };
                return Outcome::failed(Duration::ZERO, reason);
            };
            let tls = spec.transport == SipTransport::Tls;
            stream_check(probe, trunk.peer.addr, &spec.host, tls).await
        }
    }
}

/// One OPTIONS over UDP, by the pinger's core.
async fn udp_options(probe: &TrunkProbe, provider_id: &str, target: ProbeTarget) -> Outcome {
    let socket = match UdpSocket::bind(SocketAddr::new(probe.ip, 0)).await {
        Ok(socket) => socket,
        Err(error) => return Outcome::failed(Duration::ZERO, format!("no UDP socket: {error}")),
    };
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(error) => return Outcome::failed(Duration::ZERO, format!("no UDP socket: {error}")),
    };
    let token = format!("{:016x}", rand::random::<u64>());
    // An interval far beyond the timeout: one ping, never a second.
    let interval = probe.timeout.saturating_mul(4);
    let mut pinger = TrunkPinger::new(local, interval, probe.timeout, token);
    let started = Instant::now();
    pinger.set_trunks(
        started,
        vec![TrunkTarget {
            provider_id: provider_id.to_owned(),
            target,
        }],
    );
    let mut buf = vec![0u8; MAX_ANSWER];
    loop {
        while let Some(transmit) = pinger.poll_transmit() {
            if let Err(error) = socket.send_to(&transmit.bytes, transmit.to).await {
                return Outcome::failed(started.elapsed(), format!("OPTIONS not sent: {error}"));
            }
        }
        if let Some(status) = pinger.statuses().into_iter().next() {
            if status.checked_at.is_some() {
                return Outcome {
                    ok: status.state == TrunkState::Up,
                    latency: status.rtt.unwrap_or_else(|| started.elapsed()),
                    status: status.last_status,
                    detail: match (status.state, status.last_status) {
                        (TrunkState::Up, Some(code)) => format!("OPTIONS answered {code}"),
                        _ => status.last_error.unwrap_or_else(|| "no answer".into()),
                    },
                };
            }
        }
        let wake = pinger
            .poll_timeout()
            .unwrap_or(started + probe.timeout)
            .min(started + interval);
        tokio::select! {
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                pinger.handle_timeout(Instant::now());
            }
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    pinger.handle_datagram(Instant::now(), from, &buf[..n]);
                }
            }
        }
    }
}

/// A connection to the trunk (over TLS, its handshake too) and an OPTIONS on it.
async fn stream_check(probe: &TrunkProbe, addr: SocketAddr, host: &str, tls: bool) -> Outcome {
    let started = Instant::now();
    let connect = async {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }?;
        if probe.ip.is_ipv4() == addr.is_ipv4() && !probe.ip.is_unspecified() {
            socket.bind(SocketAddr::new(probe.ip, 0))?;
        }
        socket.connect(addr).await
    };
    let stream = match tokio::time::timeout(probe.timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            return Outcome::failed(started.elapsed(), format!("cannot connect: {error}"))
        }
        Err(_) => {
            return Outcome::failed(
                started.elapsed(),
                format!("no connection within {} ms", probe.timeout.as_millis()),
            )
        }
    };
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(error) => {
            return Outcome::failed(started.elapsed(), format!("connected, but: {error}"))
        }
    };
    let remaining = probe.timeout.saturating_sub(started.elapsed());
    let (answer, over) = if tls {
        let handshake = probe.tls.connect(stream, addr, Some(host));
        let stream = match tokio::time::timeout(remaining, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Outcome::failed(started.elapsed(), handshake_failure(&error, host))
            }
            Err(_) => {
                return Outcome::failed(
                    started.elapsed(),
                    format!(
                        "connected, but no TLS handshake within {} ms",
                        probe.timeout.as_millis()
                    ),
                )
            }
        };
        let remaining = probe.timeout.saturating_sub(started.elapsed());
        let options = stream_options(stream, local, addr, host, true);
        (tokio::time::timeout(remaining, options).await, "TLS")
    } else {
        let options = stream_options(stream, local, addr, host, false);
        (tokio::time::timeout(remaining, options).await, "TCP")
    };
    match answer {
        Ok(Ok((status, reason))) => Outcome {
            ok: status != 503,
            latency: started.elapsed(),
            status: Some(status),
            detail: format!("OPTIONS over {over} answered {status} {reason}")
                .trim_end()
                .to_owned(),
        },
        Ok(Err(detail)) => Outcome::failed(started.elapsed(), detail),
        Err(_) => Outcome::failed(
            started.elapsed(),
            format!(
                "connected, but no answer to OPTIONS within {} ms",
                probe.timeout.as_millis()
            ),
        ),
    }
}

/// Why a trunk's TLS handshake failed, in words a person setting up the trunk can act on: the
/// certificate's issuer, name or dates, or what rustls said.
fn handshake_failure(error: &TlsError, host: &str) -> String {
    let rustls_error = match error {
        TlsError::Handshake(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    let Some(rustls::Error::InvalidCertificate(problem)) = rustls_error else {
        return format!("TLS handshake failed: {error}");
    };
    use rustls::CertificateError as Problem;
    let why = match problem {
        Problem::NotValidForName | Problem::NotValidForNameContext { .. } => {
            format!("the trunk's certificate is not valid for `{host}` (the trunk's host)")
        }
        Problem::UnknownIssuer => "the trunk's certificate is not signed by a CA this edge \
                                   trusts (sip.tls_ca_file, or the system roots when unset)"
            .to_owned(),
        Problem::Expired | Problem::ExpiredContext { .. } => {
            "the trunk's certificate has expired".to_owned()
        }
        Problem::NotValidYet | Problem::NotValidYetContext { .. } => {
            "the trunk's certificate is not valid yet".to_owned()
        }
        _ => "the trunk's certificate was refused".to_owned(),
    };
    format!("TLS handshake failed: {why} ({problem})")
}

/// Sends an OPTIONS on `stream` (a TCP or TLS connection from `local`) and reads until its
/// final answer (or the peer closes).
async fn stream_options(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    local: SocketAddr,
    addr: SocketAddr,
    host: &str,
    tls: bool,
) -> Result<(u16, String), String> {
    let call_id = format!("test-{:016x}", rand::random::<u64>());
    let request = stream_options_request(local, addr, host, &call_id, tls);
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("connected, but OPTIONS not sent: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("connected, but: {e}"))?;
        if n == 0 {
            return Err("connected, but the trunk closed the connection without answering".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Answers may be preceded by provisional ones: look at each complete head.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            if let Some(answer) = final_answer(&head, &call_id) {
                return Ok(answer);
            }
        }
        if buf.len() > MAX_ANSWER {
            return Err("connected, but the answer was not SIP".into());
        }
    }
}

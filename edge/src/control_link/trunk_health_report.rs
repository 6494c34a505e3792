//! Trunk health, the shell: one UDP socket (on the SIP listener's IP, its own port) drives the
//! [`TrunkPinger`] core over the SIP trunks of the current snapshot, and a second task reports
//! the states to the control plane with `ReportTrunkHealth` whenever one changes, and at least
//! once per interval. A trunk's host is resolved as outbound calls resolve it (its outbound
//! proxy when it has one), once per snapshot and once per interval.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{log_failure, LinkContext};
use crate::sip::trunk_health::{ProbeTarget, TrunkPinger, TrunkState, TrunkStatus, TrunkTarget};
use crate::state::EdgeState;
use freya_proto::v1::{TrunkHealth, TrunkHealthReport};
use freya_shared::ids::now_ms;
use freya_shared::model::{ProviderSpec, SipTransport, SipTrunkSpec};
use freya_shared::snapshot::EdgeConfigSnapshot;

/// Largest datagram read; a bigger one is cut and will not parse.
const MAX_DATAGRAM: usize = 8 * 1024;

/// How often and how patiently trunks are pinged (`sip.options_interval_ms`,
/// `sip.options_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PingSettings {
    pub interval: Duration,
    pub timeout: Duration,
}

/// The trunks of `snapshot` this edge may use, resolved.
async fn targets_of(snapshot: &EdgeConfigSnapshot) -> Vec<TrunkTarget> {
    let mut targets = Vec::new();
    for provider in &snapshot.providers {
        let ProviderSpec::SipTrunk(spec) = &provider.spec else {
            continue;
        };
        if !provider.spec.serves(&snapshot.region) {
            continue;
        }
        targets.push(TrunkTarget {
            provider_id: provider.id.clone(),
            target: target_of(&provider.id, spec).await,
        });
    }
    targets
}

/// Where the trunk `spec` is pinged (its host, or its outbound proxy, resolved); also used by
/// the on-demand test (`trunk_test.rs`).
pub(super) async fn target_of(provider_id: &str, spec: &SipTrunkSpec) -> ProbeTarget {
    match spec.transport {
        SipTransport::Udp => match super::commands::resolve(provider_id, spec).await {
            Some(trunk) => ProbeTarget::Udp {
                addr: trunk.peer.addr,
                host: spec.host.clone(),
            },
            None => unresolved(spec),
        },
        SipTransport::Tcp | SipTransport::Tls => ProbeTarget::Unpingable {
            state: TrunkState::Unknown,
            reason: "OPTIONS pings are sent over UDP only; this trunk uses TCP or TLS".into(),
        },
    }
}

/// A trunk whose host did not resolve.
pub(super) fn unresolved(spec: &SipTrunkSpec) -> ProbeTarget {
    ProbeTarget::Unpingable {
        state: TrunkState::Down,
        reason: format!("cannot resolve `{}`", spec.host),
    }
}

/// Pings the snapshot's trunks until shutdown, publishing their states on `out`.
async fn ping(
    socket: UdpSocket,
    state: EdgeState,
    settings: PingSettings,
    out: watch::Sender<Vec<TrunkStatus>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let local = match socket.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            tracing::warn!(%error, "trunk pings are off: the socket has no address");
            return;
        }
    };
    let token = format!("{:016x}", rand::random::<u64>());
    let mut pinger = TrunkPinger::new(local, settings.interval, settings.timeout, token);
    let mut snapshots = state.watch_snapshot();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut resolve_at = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= resolve_at {
            let snapshot = snapshots.borrow_and_update().clone();
            let targets = targets_of(&snapshot).await;
            pinger.set_trunks(Instant::now(), targets);
            resolve_at = tokio::time::Instant::now() + settings.interval;
        }
        while let Some(transmit) = pinger.poll_transmit() {
            if let Err(error) = socket.send_to(&transmit.bytes, transmit.to).await {
                tracing::debug!(%error, to = %transmit.to, "OPTIONS ping not sent");
            }
        }
        if pinger.take_changed() {
            out.send_replace(pinger.statuses());
        }
        let wake = pinger
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(resolve_at)
            .min(resolve_at);
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = snapshots.changed() => {
                if changed.is_err() { return }
                resolve_at = tokio::time::Instant::now();
            }
            () = tokio::time::sleep_until(wake) => pinger.handle_timeout(Instant::now()),
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let dropped = pinger.dropped();
                    pinger.handle_datagram(Instant::now(), from, &buf[..n]);
                    if pinger.dropped() > dropped {
                        tracing::debug!(%from, bytes = n, "trunk ping socket: not an answer to a ping");
                    }
                }
                // ICMP errors surface here on Linux; the ping times out on its own.
                Err(error) => tracing::trace!(%error, "trunk ping socket"),
            },
        }
    }
}

/// A status as the report carries it.
fn wire(status: &TrunkStatus, now: Instant, now_ms: i64) -> TrunkHealth {
    let checked_at_unix_ms = status.checked_at.map_or(0, |at| {
        let ago = i64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(0);
        now_ms.saturating_sub(ago)
    });
    TrunkHealth {
        provider_id: status.provider_id.clone(),
        state: status.state.name().to_owned(),
        // Whole milliseconds rounded up, so that a sub-millisecond round trip (a trunk on the
        // same host) reads 1, not the wire's "none".
        rtt_ms: status.rtt.map_or(0, |d| {
            u32::try_from(d.as_micros().div_ceil(1_000))
                .unwrap_or(u32::MAX)
                .max(1)
        }),
        checked_at_unix_ms,
        last_error: status.last_error.clone().unwrap_or_default(),
        last_status: status.last_status.map_or(0, u32::from),
    }
}

/// Reports the latest states on change, and at least once per `interval`.
async fn report(
    link: LinkContext,
    mut states: watch::Receiver<Vec<TrunkStatus>>,
    interval: Duration,
) {
    let mut backoff = link.backoff();
    loop {
        let statuses = states.borrow_and_update().clone();
        let (now, now_ms) = (Instant::now(), now_ms());
        let report = TrunkHealthReport {
            edge_id: link.edge_id.to_string(),
            trunks: statuses.iter().map(|s| wire(s, now, now_ms)).collect(),
        };
        match link.client.clone().report_trunk_health(report).await {
            Ok(_) => backoff.reset(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!("the control plane takes no trunk health reports (older version)");
                return;
            }
            Err(status) => {
                log_failure("reporting trunk health", &status);
                if !link.pause(backoff.next_delay()).await {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            () = link.shutdown.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Pings the trunks from `ip` and reports their health until shutdown.
pub(crate) async fn run(
    link: LinkContext,
    state: EdgeState,
    ip: std::net::IpAddr,
    settings: PingSettings,
) {
    let socket = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, %ip, "trunk pings are off: cannot bind a UDP socket");
            return;
        }
    };
    let (tx, rx) = watch::channel(Vec::new());
    let shutdown = link.shutdown.clone();
    tokio::join!(
        ping(socket, state, settings, tx, shutdown),
        report(link, rx, settings.interval),
    );
}

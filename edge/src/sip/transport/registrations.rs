//! Registrations with PBXs and trunks, the shell's side: which providers register comes from
//! the configuration snapshot ([`watch`] resolves their registrars and hands the SIP task the
//! list as [`SipCommand::Registrations`]); the SIP task starts, replaces and stops them in the
//! endpoint (`freya_sip::register` does the protocol), sends CRLF keep-alives on registered
//! UDP flows (TCP and TLS flows are pinged by their connection task), and records each status
//! change in the [`RegistrationBoard`] that the edge's HTTP listener shows and the heartbeat
//! reports to the control plane (`control_link/registration.rs`), at once on each change.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{SipCommand, SipTask};
use crate::sip::digest::Credentials;
use crate::sip::register::{RegistrationSettings, RegistrationState, RegistrationStatus};
use crate::sip::{Peer, Transport};
use crate::state::EdgeState;
use freya_shared::model::{ProviderSpec, SipTransport};
use freya_shared::snapshot::EdgeConfigSnapshot;

/// How long a registrar's host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Back-off bounds after a failed registration (RFC 5626 section 4.5's base and cap).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegistrationRetry {
    pub base: Duration,
    pub max: Duration,
}

/// A registration as the API shows it: `{"state", "expires_at", "last_error"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RegistrationReport {
    pub state: &'static str,
    /// Unix milliseconds when the binding lapses unless refreshed.
    pub expires_at: Option<u64>,
    pub last_error: Option<String>,
}

/// The latest status of each registration, by provider id, and a wake-up for whoever reports
/// them on (the heartbeat), so a change reaches the control plane without waiting a beat.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistrationBoard {
    reports: Arc<Mutex<HashMap<String, RegistrationReport>>>,
    changed: Arc<Notify>,
}

impl RegistrationBoard {
    /// Every registration's latest report.
    pub(crate) fn reports(&self) -> HashMap<String, RegistrationReport> {
        self.reports.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Resolves at the next change of any report (or at once if one changed since the last
    /// call), so the heartbeat can send it early.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await
    }

    fn record(&self, provider_id: &str, status: &RegistrationStatus) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let expires_at = status.expires_at.map(|at| {
            let wall_at = wall + at.saturating_duration_since(now);
            let since = wall_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        let report = RegistrationReport {
            state: status.state.as_str(),
            expires_at,
            last_error: status.last_error.clone(),
        };
        if let Ok(mut map) = self.reports.lock() {
            map.insert(provider_id.to_owned(), report);
        }
        self.changed.notify_one();
    }

    fn forget(&self, provider_id: &str) {
        if let Ok(mut map) = self.reports.lock() {
            map.remove(provider_id);
        }
        self.changed.notify_one();
    }
}

/// Tells the SIP task which registrations the configuration asks for, now and after each
/// change of it, until `shutdown`.
pub(crate) async fn watch(
    state: EdgeState,
    commands: mpsc::Sender<SipCommand>,
    retry: RegistrationRetry,
    shutdown: CancellationToken,
) {
    let mut snapshots = state.watch_snapshot();
    let mut last = None;
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let wanted = wanted(&snapshot, retry).await;
        if last.as_ref() != Some(&wanted) {
            let command = SipCommand::Registrations(wanted.clone());
            if commands.send(command).await.is_err() {
                return;
            }
            last = Some(wanted);
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The registrations `snapshot` asks for, registrars resolved (one that does not resolve is
/// skipped, with a log line, until the next change).
async fn wanted(
    snapshot: &EdgeConfigSnapshot,
    retry: RegistrationRetry,
) -> Vec<RegistrationSettings> {
    let mut wanted = Vec::new();
    for provider in &snapshot.providers {
        let ProviderSpec::SipTrunk(spec) = &provider.spec else {
            continue;
        };
        let (Some(registration), Some(user)) = (&spec.registration, &spec.username) else {
            continue;
        };
        let (host, port) = match registration.registrar_host_port() {
            Some((host, port)) => (host, port),
            None => (
                spec.host.trim_matches(['[', ']']).to_owned(),
                Some(spec.port),
            ),
        };
        let port = port.unwrap_or(match spec.transport {
            SipTransport::Tls => 5061,
            SipTransport::Udp | SipTransport::Tcp => 5060,
        });
        let Some(addr) = resolve(&host, port).await else {
            tracing::warn!(provider = %provider.id, %host, "cannot resolve a registrar; not registering");
            continue;
        };
        let registrar = match spec.transport {
            SipTransport::Udp => Peer::udp(addr),
            SipTransport::Tcp => Peer::tcp(addr),
            SipTransport::Tls => Peer::tls(addr),
        };
        wanted.push(RegistrationSettings {
            id: provider.id.clone(),
            registrar,
            domain: host,
            user: user.clone(),
            number: registration.number.clone(),
            credentials: spec.password.as_ref().map(|password| Credentials {
                username: user.clone(),
                password: password.clone(),
            }),
            expires: Duration::from_secs(u64::from(registration.expires_seconds)),
            // The endpoint puts its own address on the registrar's transport.
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            retry_base: retry.base,
            retry_max: retry.max,
        });
    }
    wanted
}

async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(mut addrs)) => addrs.next(),
        _ => None,
    }
}

impl SipTask {
    /// Keeps exactly the registrations in `wanted`: new or changed ones start, others stop.
    pub(super) fn set_registrations(&mut self, wanted: Vec<RegistrationSettings>) {
        let now = Instant::now();
        let ids: HashSet<String> = wanted.iter().map(|s| s.id.clone()).collect();
        for id in self.endpoint.registration_ids() {
            if !ids.contains(&id) {
                tracing::info!(provider = %id, "no longer registering");
                self.endpoint.stop_registration(now, &id);
                self.registrations.forget(&id);
            }
        }
        for settings in wanted {
            if settings.registrar.transport == Transport::Tls {
                self.connections
                    .expect_tls_name(settings.registrar.addr, &settings.domain);
            }
            self.endpoint.register(now, settings);
        }
    }

    /// A registration's status changed: logged and shown.
    pub(super) fn on_registration(&mut self, provider_id: &str, status: &RegistrationStatus) {
        match status.state {
            RegistrationState::Registered => tracing::info!(provider = %provider_id, "registered"),
            RegistrationState::Registering => {
                tracing::debug!(provider = %provider_id, "registering")
            }
            RegistrationState::Failed | RegistrationState::Stopped => {
                let error = status.last_error.as_deref().unwrap_or("");
                tracing::warn!(provider = %provider_id, state = status.state.as_str(), %error, "registration not in place");
            }
        }
        self.registrations.record(provider_id, status);
    }

    /// A CRLF keep-alive (RFC 5626 section 4.4.1's double CRLF, as a datagram) to each
    /// registrar we are registered with over UDP, so the NAT binding calls come in through
    /// stays open.
    pub(super) async fn udp_keepalives(&mut self) {
        for dest in self.endpoint.registered_udp_registrars() {
            let dest = super::icmp::for_socket(self.ipv6_socket, dest);
            if let Err(e) = self.socket.send_to(b"\r\n\r\n", dest).await {
                tracing::debug!(%dest, error = %e, "SIP keep-alive not sent");
            }
        }
    }
}

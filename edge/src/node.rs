//! Starting and stopping an edge: its identity and disk state (configuration cache, event spool,
//! recordings waiting for upload),
//! its operator HTTP listener (with the Twilio webhook and media streams) and its link to the
//! control plane.

use crate::sip::transport::registrations::{RegistrationBoard, RegistrationRetry};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::call::invite_rate::InviteRate;
use crate::call::media::MediaSettings;
use crate::call::ports::{ConfiguredMedia, MediaAddresses, PortAllocator};
use crate::call::slots::SlotLimits;
use crate::call::task::CallServices;
use crate::config::EdgeConfig;
use crate::control_link::snapshot_cache::SnapshotCache;
use crate::control_link::spool::EventSpool;
use crate::control_link::{self, LinkContext, Registration};
use crate::metrics::EdgeMetrics;
use crate::recordings::RecordingOutbox;
use crate::serve::LimitedListener;
use crate::sip::sdp::Codec;
use crate::sip::transport::{SipCommand, SipService};
use crate::state::EdgeState;
use crate::trust::link::{link_trust, LinkTrust};
use crate::trust::ClusterIdentity;
use crate::twilio::ticket::{TicketKey, UsedTickets};
use crate::twilio::TwilioEdge;
use crate::voice::{VoiceDefaults, VoiceFactory};
use freya_shared::model::CallEvent;

/// A running edge.
pub struct Edge {
    pub id: String,
    /// The edge's certificates and key in the cluster (as enrolled, before any renewal); `None`
    /// in the dev-only shared-secret mode.
    pub identity: Option<ClusterIdentity>,
    pub http_addr: SocketAddr,
    /// Where the edge listens for SIP (the bound address, so port 0 in config is resolved).
    pub sip_addr: SocketAddr,
    /// Where cluster gossip listens (as peers reach it); `None` without `cluster.bind`.
    pub gossip_addr: Option<SocketAddr>,
    /// Where SIP over TLS is served (bound), when `sip.tls_listen` is set.
    pub sip_tls_addr: Option<SocketAddr>,
    /// Where the QUIC mesh listens (as peers dial it); `None` without `mesh.listen`.
    pub mesh_addr: Option<SocketAddr>,
    pub state: EdgeState,
    events: mpsc::Sender<CallEvent>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// How long calls may continue once the edge drains (`drain.deadline_seconds`).
    drain_deadline: Duration,
    /// The SIP task's commands: a drain's deadline ends the calls left through it.
    sip_commands: mpsc::Sender<SipCommand>,
    /// Events written but not yet acknowledged by the control plane (`events_spooled`).
    events_spooled: prometheus_client::metrics::gauge::Gauge,
}

/// Longest wait, after a drain's deadline ended the calls left, for their ends to be published.
const DRAIN_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// How often a draining edge looks whether its last call has ended.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// Events waiting to be spooled; a full queue makes call tasks wait (events are never dropped).
const EVENT_QUEUE: usize = 1024;
/// Commands (place a call, hang up) waiting for the SIP task; beyond this the command stream
/// waits.
const SIP_COMMAND_QUEUE: usize = 64;

impl Edge {
    /// Loads the edge's disk state, binds its listener and connects (lazily) to the control plane.
    pub async fn start(config: &EdgeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("while creating data_dir {}", config.data_dir.display()))?;
        let id = match &config.id {
            Some(id) => id.clone(),
            None => stable_id(&config.data_dir)?,
        };
        let cache = Arc::new(SnapshotCache::new(&config.data_dir).with_context(|| {
            format!(
                "while opening the configuration cache in {}",
                config.data_dir.display()
            )
        })?);
        let cached = cache
            .load()
            .unwrap_or_else(|| freya_shared::snapshot::EdgeConfigSnapshot {
                region: config.region.clone(),
                ..Default::default()
            });
        if cached.version > 0 {
            tracing::info!(
                version = cached.version,
                "serving calls from the cached configuration until the control plane answers"
            );
        }
        let state = EdgeState::new(cached, config.capacity);
        let spool = EventSpool::open(&config.data_dir.join("spool"))
            .context("while opening the event spool")?;
        let recordings = RecordingOutbox::open(&config.data_dir.join("recordings"))
            .context("while opening the recordings directory")?;

        let listener = TcpListener::bind(&config.http.addr)
            .await
            .with_context(|| format!("while binding http.addr {}", config.http.addr))?;
        let http_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(EdgeMetrics::new(
            &config.metrics,
            config.capacity,
            &config.region,
        ));
        let mut tasks = JoinSet::new();

        let trust = link_trust(config, &id).await?;
        // Each call builds channels of its own: connections of their own.
        let new_client = || match &trust {
            LinkTrust::SharedSecret(secret) => control_link::client_for(
                &config.control.all_urls(),
                secret,
                &id,
                Duration::from_millis(u64::from(config.control.connect_timeout_ms)),
            ),
            LinkTrust::Mtls { tls, .. } => control_link::mtls_client_for(
                &config.control.all_urls(),
                tls.clone(),
                &id,
                Duration::from_millis(u64::from(config.control.connect_timeout_ms)),
            ),
        };
        let client = new_client()?;
        // Cluster reports on a connection of their own, never queued behind the event stream
        // or a recording upload (`control_link/cluster_report.rs`), made on the cluster's own
        // thread (`cluster/shell.rs`, `on_own_thread`).
        let report_client = {
            let (urls, id) = (config.control.all_urls(), id.clone());
            let timeout = Duration::from_millis(u64::from(config.control.connect_timeout_ms));
            // `Ok`: the shared secret; `Err`: the mutual TLS configuration.
            let secret_or_tls = match &trust {
                LinkTrust::SharedSecret(secret) => Ok(secret.clone()),
                LinkTrust::Mtls { tls, .. } => Err(tls.clone()),
            };
            move || match secret_or_tls {
                Ok(secret) => control_link::client_for(&urls, &secret, &id, timeout),
                Err(tls) => control_link::mtls_client_for(&urls, tls, &id, timeout),
            }
        };
        let cluster_secret = trust.cluster_secret().to_owned();
        let (sip_socket, sip_tcp) = bind_sip(&config.sip.addr).await?;
        let sip_addr = sip_socket.local_addr()?;
        let tls_dialer = crate::sip::transport::tls::dialer_from_config(&config.sip)?;
        let link = LinkContext {
            client,
            edge_id: Arc::from(id.as_str()),
            region: Arc::from(config.region.as_str()),
            max_backoff: Duration::from_millis(u64::from(config.control.max_backoff_ms)),
            shutdown: shutdown.clone(),
            renew_now: Arc::default(),
            trunk_probe: control_link::TrunkProbe {
                ip: sip_addr.ip(),
                timeout: Duration::from_millis(u64::from(config.sip.options_timeout_ms)),
                tls: tls_dialer.clone(),
            },
        };
        let (sip_commands, sip_commands_rx) = mpsc::channel(SIP_COMMAND_QUEUE);
        let sip_commands_for_drain = sip_commands.clone();
        let sip_commands_for_registrations = sip_commands.clone();
        let external_ip: Option<IpAddr> = match &config.sip.external_ip {
            Some(ip) => Some(ip.parse().context("sip.external_ip")?),
            None => None,
        };
        let public_sip: SocketAddr = match (&config.sip.public_addr, external_ip) {
            (Some(public), _) => public.parse().context("sip.public_addr")?,
            (None, Some(ip)) => SocketAddr::new(ip, sip_addr.port()),
            (None, None) => sip_addr,
        };
        let ip = |key: &str, value: &Option<String>| -> anyhow::Result<Option<IpAddr>> {
            value
                .as_deref()
                .map(|v| v.parse().with_context(|| key.to_owned()))
                .transpose()
        };
        let configured = ConfiguredMedia {
            ip: ip("rtp.ip", &config.rtp.ip)?,
            public_ip: ip("rtp.public_ip", &config.rtp.public_ip)?
                .or(external_ip.filter(IpAddr::is_ipv4)),
            ip_v6: ip("rtp.ip_v6", &config.rtp.ip_v6)?,
            public_ip_v6: ip("rtp.public_ip_v6", &config.rtp.public_ip_v6)?
                .or(external_ip.filter(IpAddr::is_ipv6)),
        };
        let media = MediaAddresses::derive(sip_addr.ip(), public_sip.ip(), configured);
        let primary = media.primary().context(
            "no media address: set rtp.public_ip or rtp.public_ip_v6 (sip.addr is a wildcard)",
        )?;
        tracing::info!(v4 = ?media.v4, v6 = ?media.v6, "media addresses");
        let enrolled = match &trust {
            LinkTrust::Mtls { identity, .. } => Some(identity),
            LinkTrust::SharedSecret(_) => None,
        };
        let mesh = crate::mesh::bind(&config.mesh, public_sip.ip(), enrolled)?;
        {
            use crate::metrics::certificates::CertificateSource::File;
            if let LinkTrust::Mtls { dir, .. } = &trust {
                metrics
                    .certificates
                    .watch("cluster", File(dir.join("cert.pem")));
                metrics.certificates.watch("ca", File(dir.join("ca.pem")));
            }
            if let (Some(_), Some(cert)) = (&config.sip.tls_listen, &config.sip.tls_cert_file) {
                metrics
                    .certificates
                    .watch("sip_tls", File(std::path::PathBuf::from(cert)));
            }
        }
        let revocations = crate::trust::Revocations::default();
        let mesh_addr = mesh.as_ref().map(|m| m.addr);
        let cluster = crate::cluster::bind(
            &config.cluster,
            crate::cluster::SelfDescription {
                edge_id: &id,
                region: &config.region,
                sip_addr: public_sip,
                http_addr,
                mesh_addr,
                secret: &cluster_secret,
            },
            state.clone(),
            &metrics,
            revocations.subscribe(),
        )
        .await?;
        let registrations = RegistrationBoard::default();
        let me = Registration {
            rtp_addr: primary.public.to_string(),
            sip_addr: public_sip.to_string(),
            http_addr: http_addr.to_string(),
            capacity: config.capacity,
            gossip_addr: cluster
                .as_ref()
                .map(|c| c.addr.to_string())
                .unwrap_or_default(),
            generation: cluster.as_ref().map_or(0, |c| c.generation),
            cluster_peers: cluster.as_ref().map(|c| c.peers.clone()),
            registrations: registrations.clone(),
        };
        let gossip_addr = cluster.as_ref().map(|c| c.addr);
        let cluster_view = cluster.as_ref().map(|c| c.snapshots.clone());
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        // The voice pipeline's edge-wide defaults come from the environment, read once here.
        let defaults = VoiceDefaults::from_env(std::env::vars());
        match &defaults.llm_base_url {
            Some(url) => tracing::info!(%url, model = %defaults.llm_model,
                "agents without an `llm` section use this OpenAI-compatible model"),
            None => tracing::info!("agents without an `llm` section use the offline `rules` table"),
        }
        // Operator-configured endpoints (the environment's defaults, Twilio) use a plain client;
        // every customer-supplied URL goes through the egress guard.
        let http_client = reqwest::Client::new();
        let egress = crate::egress::Egress::new(&config.egress)?;
        if egress.allows_private() {
            tracing::warn!(
                "egress.allow_private_targets is on: customer URLs may reach this network"
            );
        }
        let voice = Arc::new(VoiceFactory::new(http_client.clone(), egress, defaults));
        tokio::spawn(crate::speech::stt::local::adapt::adapt_in_background());
        let services = CallServices {
            edge_id: Arc::from(id.as_str()),
            state: state.clone(),
            events: events.clone(),
            voice: Some(voice),
            recordings: Some(recordings.clone()),
            media: MediaSettings {
                inactivity_timeout: Duration::from_millis(u64::from(
                    config.rtp.inactivity_timeout_ms,
                )),
                hold_timeout: Duration::from_millis(u64::from(config.rtp.hold_timeout_ms)),
                rtcp_interval: Duration::from_millis(u64::from(config.rtp.rtcp_interval_ms)),
                codecs: config
                    .rtp
                    .codecs
                    .iter()
                    .filter_map(|name| Codec::from_name(name))
                    .collect(),
            },
            legs: crate::call::core::LegSettings {
                max_legs: config.legs.max_per_call,
                remote_silence: Duration::from_millis(u64::from(config.legs.remote_silence_ms)),
                dial_timeout: Duration::from_millis(u64::from(config.legs.dial_timeout_ms)),
            },
            rtp_departure: metrics.rtp_departure.clone(),
            rtp_foreign: metrics.rtp_foreign.clone(),
            srtp: config.srtp.clone(),
            srtp_dropped: metrics.srtp_dropped.clone(),
            providers: metrics.providers.clone(),
            mesh: mesh.as_ref().map(|m| crate::mesh::MeshAccess {
                mesh: m.mesh.clone(),
                edge_id: Arc::from(id.as_str()),
                cluster: cluster_view.clone(),
            }),
        };
        let public_url = match &config.http.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => crate::serve::tls::default_public_url(&config.http.tls(), http_addr),
        };
        let twilio = TwilioEdge {
            services: services.clone(),
            public_url: Arc::from(public_url.as_str()),
            tickets: TicketKey::from_secret(&cluster_secret),
            used_tickets: Arc::new(Mutex::new(UsedTickets::new(&services.edge_id))),
            shutdown: shutdown.clone(),
            http: http_client,
            webhooks: metrics.twilio_webhooks.clone(),
            cluster: cluster_view.clone(),
            region: Arc::from(config.region.as_str()),
        };
        let app = crate::http::router(
            state.clone(),
            metrics.clone(),
            cluster_view.clone(),
            registrations.clone(),
        )
        .merge(crate::twilio::webhook::router(twilio.clone()));
        let https =
            crate::serve::tls::from_config(&config.http.tls(), "edge HTTP", http_addr, &shutdown)
                .await?;
        tasks.spawn(crate::serve::serve_https(
            LimitedListener {
                listener,
                limits: config.http.limits(),
            },
            https,
            app,
            "edge HTTP",
            shutdown.clone(),
        ));
        let sip_tls = crate::sip::transport::tls::from_config(&config.sip, public_sip).await?;
        let sip_tls_addr = match &sip_tls {
            Some(tls) => Some(tls.listener.local_addr()?),
            None => None,
        };
        let sip = SipService {
            socket: sip_socket,
            tcp: Some(LimitedListener {
                listener: sip_tcp,
                limits: config.sip.tcp_limits(),
            }),
            tls: sip_tls,
            tls_dialer: Some(tls_dialer),
            keepalive: Duration::from_millis(u64::from(config.sip.keepalive_interval_ms)),
            commands: sip_commands_rx,
            public_addr: public_sip,
            media,
            ports: Arc::new(PortAllocator::new(
                primary.bind,
                config.rtp.port_min,
                config.rtp.port_max,
            )),
            services: services.clone(),
            ring: Duration::from_millis(u64::from(config.sip.ring_ms)),
            invite_rate: InviteRate {
                per_second: config.sip.invites_per_second_per_source,
                burst: config.sip.invite_burst_per_source,
            },
            slots: SlotLimits {
                capacity: config.capacity,
                max_unconfirmed: config.sip.max_unconfirmed,
                max_unconfirmed_per_source: config.sip.max_unconfirmed_per_source,
            },
            refused: metrics.sip_invites_refused.clone(),
            redirects: crate::sip::transport::redirect::Redirects {
                cluster: cluster_view.clone(),
                region: Arc::from(config.region.as_str()),
                counter: metrics.sip_invites_redirected.clone(),
                last_resort: Duration::from_secs(u64::from(config.drain.last_resort_seconds)),
            },
            queue_full: metrics.sip_call_queue_full.clone(),
            registrations,
        };
        tasks.spawn(sip.run(shutdown.clone()));
        tasks.spawn(crate::sip::transport::registrations::watch(
            state.clone(),
            sip_commands_for_registrations,
            RegistrationRetry {
                base: Duration::from_millis(u64::from(config.sip.registration_retry_base_ms)),
                max: Duration::from_millis(u64::from(config.sip.registration_retry_max_ms)),
            },
            shutdown.clone(),
        ));
        if let Some(cluster) = cluster {
            let (report_link, stop) = (link.clone(), shutdown.clone());
            let snapshots = cluster.snapshots.clone();
            let task = cluster.task;
            let ended = crate::cluster::shell::on_own_thread("cluster", move || async move {
                match report_client() {
                    Ok(client) => {
                        let link = LinkContext {
                            client,
                            ..report_link
                        };
                        tokio::spawn(control_link::run_cluster_report(link, snapshots));
                    }
                    Err(e) => tracing::error!(error = %e, "no client for cluster reports"),
                }
                match task.on_this_runtime() {
                    Ok(task) => task.run(stop).await,
                    Err(e) => tracing::error!(error = %e, "cannot move the gossip socket"),
                }
            })
            .context("while starting the cluster's thread")?;
            tasks.spawn(async move {
                let _ = ended.await;
            });
        }
        let mut grants = None;
        let mesh_endpoint = mesh.as_ref().map(|bound| bound.mesh.clone());
        if let Some(bound) = mesh.as_ref() {
            tasks.spawn(crate::trust::revocations::apply_to_mesh(
                bound.mesh.clone(),
                revocations.clone(),
                shutdown.clone(),
            ));
        }
        if let (Some(bound), Some(access)) = (mesh, services.mesh.clone()) {
            let endpoint = bound.mesh.clone();
            let stop = shutdown.clone();
            let (grant_tx, grant_rx) = mpsc::channel(256);
            grants = Some(grant_tx);
            let hosting = crate::mesh::hosting::Hosting {
                access,
                settings: config.mesh.host_settings(),
                services: services.clone(),
                sip: sip_commands.clone(),
                refused: metrics.mesh_dials_refused.clone(),
            };
            tasks.spawn(async move {
                tokio::select! {
                    () = hosting.run(bound.joins, grant_rx) => {}
                    () = stop.cancelled() => {}
                }
                endpoint.close();
            });
        }
        if config.sip.options_interval_ms != 0 {
            tasks.spawn(control_link::run_trunk_health(
                link.clone(),
                state.clone(),
                sip_addr.ip(),
                control_link::PingSettings {
                    interval: Duration::from_millis(u64::from(config.sip.options_interval_ms)),
                    timeout: Duration::from_millis(u64::from(config.sip.options_timeout_ms)),
                },
            ));
        }
        tasks.spawn(control_link::run_registration(
            link.clone(),
            state.clone(),
            me,
        ));
        tasks.spawn(control_link::run_config_watch(
            link.clone(),
            state.clone(),
            cache,
        ));
        tasks.spawn(control_link::run_publisher(
            link.clone(),
            spool,
            events_rx,
            control_link::PublisherMetrics {
                spooled: metrics.events_spooled.clone(),
                calls: metrics.call_observer(),
            },
        ));
        tasks.spawn(control_link::run_recording_upload(link.clone(), recordings));
        let identity = match trust {
            LinkTrust::Mtls { tls, identity, dir } => {
                tasks.spawn(crate::trust::renewal::run(
                    link.clone(),
                    tls,
                    identity.clone(),
                    dir,
                    mesh_endpoint,
                ));
                Some(identity)
            }
            LinkTrust::SharedSecret(_) => None,
        };
        tasks.spawn(control_link::run_commands(
            link,
            state.clone(),
            events.clone(),
            sip_commands,
            twilio,
            grants,
            revocations,
        ));
        tracing::info!(edge = %id, region = %config.region, %http_addr, %sip_addr, "edge started");
        Ok(Self {
            id,
            identity,
            http_addr,
            sip_addr,
            gossip_addr,
            sip_tls_addr,
            mesh_addr,
            state,
            events,
            shutdown,
            tasks,
            drain_deadline: Duration::from_secs(u64::from(config.drain.deadline_seconds)),
            sip_commands: sip_commands_for_drain,
            events_spooled: metrics.events_spooled.clone(),
        })
    }

    /// Where calls report their events (durably spooled, then published).
    pub fn events(&self) -> mpsc::Sender<CallEvent> {
        self.events.clone()
    }

    /// A token that stops this edge when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Drains, then stops — what SIGTERM does, so that a rolling restart loses no call: the
    /// edge says `draining` in its gossip health (peers stop choosing it) and redirects new
    /// INVITEs to peers; calls in progress continue until they end or `drain.deadline_seconds`
    /// passes, when those left are hung up (`edge_shutdown`); then the edge leaves the cluster
    /// (peers mark it down at once) and its tasks stop. `stop` cuts the wait short.
    pub async fn drain_and_stop(self, stop: CancellationToken) {
        self.state.set_draining(true);
        let deadline = tokio::time::Instant::now() + self.drain_deadline;
        self.state.set_drain_deadline(deadline.into_std());
        tracing::info!(
            active_calls = self.state.active_calls(),
            deadline_seconds = self.drain_deadline.as_secs(),
            "draining before the stop"
        );
        while self.state.active_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(DRAIN_POLL) => {}
                _ = stop.cancelled() => break,
                _ = self.shutdown.cancelled() => break,
            }
        }
        if stop.is_cancelled() {
            self.stop().await;
            return;
        }
        let left = self.state.active_calls();
        if left > 0 {
            tracing::warn!(
                calls = left,
                "drain over with calls in progress: ending them"
            );
            // Ended while the publisher runs, so the calls' own ends (`edge_shutdown`) reach
            // the control plane before the edge leaves.
            let _ = self.sip_commands.send(SipCommand::EndAll).await;
        }
        // Whether the calls ended by themselves or at the deadline, their ends are published
        // before the edge leaves: its peers' `down` would otherwise end them as `edge_lost`.
        let flush = async {
            while self.state.active_calls() > 0 {
                tokio::time::sleep(DRAIN_POLL).await;
            }
            // The last call's end travels from its task to the spool.
            tokio::time::sleep(2 * DRAIN_POLL).await;
            while self.events_spooled.get() > 0 {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(DRAIN_FLUSH_LIMIT, flush) => {}
            _ = stop.cancelled() => {}
        }
        self.stop().await;
    }

    /// Stops every task of this edge.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

/// Binds SIP on UDP and TCP at the same address (RFC 3261 section 18: both, always). With port
/// 0, a port free for both is searched for: the UDP port the system picks may be taken on TCP.
async fn bind_sip(addr: &str) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let wanted: SocketAddr = addr
        .parse()
        .with_context(|| format!("sip.addr `{addr}` is not IP:PORT"))?;
    let attempts = if wanted.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(wanted)
            .await
            .with_context(|| format!("while binding sip.addr {addr} (UDP)"))?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some((bound, e)),
        }
    }
    match last_error {
        Some((bound, e)) => {
            Err(anyhow::Error::new(e).context(format!("while binding sip.addr {bound} (TCP)")))
        }
        None => Err(anyhow::anyhow!(
            "while binding sip.addr {addr}: no attempt made"
        )),
    }
}

/// The id kept in `data_dir/edge-id`, created on first start.
fn stable_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("edge-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let uuid = freya_shared::ids::new_id();
            let tail: String = uuid
                .chars()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let id = format!("edge-{tail}");
            std::fs::write(&path, &id)
                .with_context(|| format!("while saving the edge id to {}", path.display()))?;
            Ok(id)
        }
    }
}

//! Starting and stopping an edge: its identity and disk state (configuration cache, event spool,
//! recordings waiting for upload),
//! its operator HTTP listener (with the Twilio webhook and media streams) and its link to the
//! control plane.
//!
//! Start-up in its parts: `disk.rs` (what the edge keeps between starts), `addresses.rs` (SIP
//! bound, public and media addresses), `settings.rs` (the configuration as the tasks' plain
//! values), `peers.rs` (gossip and the mesh) and `drain.rs` (the stop that loses no call).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::call::invite_rate::InviteRate;
use crate::call::ports::PortAllocator;
use crate::call::slots::SlotLimits;
use crate::call::task::CallServices;
use crate::config::{EdgeConfig, SipConfig};
use crate::control_link::{self, LinkContext, Registration};
use crate::metrics::EdgeMetrics;
use crate::serve::LimitedListener;
use crate::sip::transport::registrations::RegistrationBoard;
use crate::sip::transport::{SipCommand, SipService};
use crate::state::EdgeState;
use crate::trust::link::{link_trust, LinkTrust};
use crate::trust::ClusterIdentity;
use crate::twilio::ticket::{TicketKey, UsedTickets};
use crate::twilio::TwilioEdge;
use crate::voice::{VoiceDefaults, VoiceFactory};
use freya_shared::model::CallEvent;

mod addresses;
mod disk;
mod drain;
mod peers;
mod settings;

use addresses::{bind_sip, Advertised};
use disk::DiskState;

/// A running edge.
pub struct Edge {
    pub id: String,
    /// The edge's certificates and key in the cluster (as enrolled, before any renewal); `None`
    /// in the dev-only shared-secret mode.
    pub identity: Option<ClusterIdentity>,
    pub http_addr: SocketAddr,
    /// Where the plain-HTTP listener redirecting to HTTPS is bound (`http.http_redirect`),
    /// when there is one.
    pub http_redirect_addr: Option<SocketAddr>,
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

/// Events waiting to be spooled; a full queue makes call tasks wait (events are never dropped).
const EVENT_QUEUE: usize = 1024;
/// Commands (place a call, hang up) waiting for the SIP task; beyond this the command stream
/// waits.
const SIP_COMMAND_QUEUE: usize = 64;

impl Edge {
    /// Loads the edge's disk state, binds its listener and connects (lazily) to the control plane.
    pub async fn start(config: &EdgeConfig) -> anyhow::Result<Self> {
        let DiskState {
            id,
            cache,
            state,
            spool,
            recordings,
        } = DiskState::open(config)?;

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
        let client = trust.client(&config.control, &id)?;
        // Cluster reports on a connection of their own, never queued behind the event stream
        // or a recording upload (`control_link/cluster_report.rs`), made on the cluster's own
        // thread (`cluster/shell.rs`, `on_own_thread`).
        let report_client = trust.client_factory(&config.control, &id);
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
        let Advertised {
            public_sip,
            media,
            primary,
        } = Advertised::from_config(config, sip_addr)?;
        let enrolled = match &trust {
            LinkTrust::Mtls { identity, .. } => Some(identity),
            LinkTrust::SharedSecret(_) => None,
        };
        let mesh = crate::mesh::bind(&config.mesh, public_sip.ip(), enrolled)?;
        watch_certificates(&metrics, &trust, &config.sip);
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
        // Operator-configured endpoints (the environment's defaults, Twilio) use a plain client;
        // every customer-supplied URL goes through the egress guard.
        let http_client = reqwest::Client::new();
        let voice = voice_factory(config, &http_client)?;
        tokio::spawn(crate::speech::stt::local::adapt::adapt_in_background());
        let services = CallServices {
            edge_id: Arc::from(id.as_str()),
            state: state.clone(),
            events: events.clone(),
            voice: Some(voice),
            recordings: Some(recordings.clone()),
            media: settings::media(&config.rtp),
            legs: settings::legs(&config.legs),
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
            None => crate::serve::tls::default_public_url(&config.http.listener().tls, http_addr),
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
        let https = crate::serve::tls::from_config(
            &config.http.listener().tls,
            "edge HTTP",
            http_addr,
            &shutdown,
        )
        .await?;
        let http_redirect_addr = https.as_ref().and_then(|h| h.redirect_addr());
        tasks.spawn(crate::serve::serve_https(
            LimitedListener {
                listener,
                limits: config.http.listener().limits(),
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
            settings::registration_retry(&config.sip),
            shutdown.clone(),
        ));
        if let Some(cluster) = cluster {
            peers::spawn_cluster(&mut tasks, cluster, &link, report_client, &shutdown)?;
        }
        let mesh_endpoint = mesh.as_ref().map(|bound| bound.mesh.clone());
        let grants = match mesh {
            Some(bound) => {
                let hosting = services
                    .mesh
                    .clone()
                    .map(|access| crate::mesh::hosting::Hosting {
                        access,
                        settings: config.mesh.host_settings(),
                        services: services.clone(),
                        sip: sip_commands.clone(),
                        refused: metrics.mesh_dials_refused.clone(),
                    });
                peers::spawn_mesh(&mut tasks, bound, hosting, &revocations, &shutdown)
            }
            None => None,
        };
        if let Some(pings) = settings::trunk_pings(&config.sip) {
            tasks.spawn(control_link::run_trunk_health(
                link.clone(),
                state.clone(),
                sip_addr.ip(),
                pings,
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
            http_redirect_addr,
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

/// Watches the expiry of the certificates the edge presents: the cluster identity's and its
/// CA's (mutual TLS), and SIP over TLS's, for `/metrics`.
fn watch_certificates(metrics: &EdgeMetrics, trust: &LinkTrust, sip: &SipConfig) {
    use crate::metrics::certificates::CertificateSource::File;
    if let LinkTrust::Mtls { dir, .. } = trust {
        metrics
            .certificates
            .watch("cluster", File(dir.join("cert.pem")));
        metrics.certificates.watch("ca", File(dir.join("ca.pem")));
    }
    if let (Some(_), Some(cert)) = (&sip.tls_listen, &sip.tls_cert_file) {
        metrics
            .certificates
            .watch("sip_tls", File(std::path::PathBuf::from(cert)));
    }
}

/// The voice pipeline for the edge's calls: its edge-wide defaults read once from the
/// environment, customer-supplied URLs behind the egress guard.
fn voice_factory(
    config: &EdgeConfig,
    http_client: &reqwest::Client,
) -> anyhow::Result<Arc<VoiceFactory>> {
    let defaults = VoiceDefaults::from_env(std::env::vars());
    match &defaults.llm_base_url {
        Some(url) => tracing::info!(%url, model = %defaults.llm_model,
            "agents without an `llm` section use this OpenAI-compatible model"),
        None => tracing::info!("agents without an `llm` section use the offline `rules` table"),
    }
    let egress = crate::egress::Egress::new(&config.egress)?;
    if egress.allows_private() {
        tracing::warn!("egress.allow_private_targets is on: customer URLs may reach this network");
    }
    Ok(Arc::new(VoiceFactory::new(
        http_client.clone(),
        egress,
        defaults,
    )))
}

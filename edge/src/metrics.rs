//! The edge's Prometheus metrics, served as text at the edge's `/metrics`.
//!
//! Names follow Prometheus' conventions: the unit in the name (`_seconds`, `_calls`), `_total`
//! on counters (added by the encoder), and labels from small fixed sets — a reason, a state, a
//! provider's kind and name, a region, an agent among the first `metrics.agent_label_limit` —
//! never a call id. Call-level figures come from the call events (`metrics/calls.rs`), the
//! headroom gauge from `metrics/headroom.rs`.

mod calls;
/// `freya_certificate_expiry_timestamp_seconds`: the control plane exports it too.
pub mod certificates;
/// Registering a metric and writing `/metrics`: the control plane's metrics use them too.
pub mod exposition;
mod headroom;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub(crate) use calls::{CallMetrics, CallObserver, HistogramFamily, Labels};
use exposition::registered;
use headroom::{HeadroomInputs, LatencyWindow};

use crate::config::MetricsConfig;
use crate::cpu::CpuSampler;

/// Gauges the edge keeps; one registry per edge instance.
pub(crate) struct EdgeMetrics {
    registry: Registry,
    pub active_calls: Gauge,
    pub draining: Gauge,
    pub config_version: Gauge,
    pub events_spooled: Gauge,
    pub twilio_webhooks: WebhookCounter,
    pub rtp_departure: Histogram,
    /// `freya_edge_rtp_foreign_packets_total`: media dropped for coming from an address other
    /// than the one a call latched (see `rtp::latch`).
    pub rtp_foreign: Counter,
    /// `freya_edge_sip_invites_refused_total{reason}`: new INVITEs answered with a refusal
    /// (`rate_limited`, `source_unconfirmed_share`, `unconfirmed_budget`, `capacity`, ...).
    pub sip_invites_refused: RefusalCounter,
    /// `freya_edge_sip_invites_redirected_total{cause}`: new INVITEs answered 302 towards a
    /// peer of the cluster (`capacity`, `draining`, `out_of_region`; see
    /// `sip/transport/redirect.rs`).
    pub sip_invites_redirected: RedirectCounter,
    /// `freya_edge_sip_call_queue_full_total{signal,action}`: signals the SIP task could not
    /// put in a call's full queue, `dropped` or left `waiting` (see `sip/transport/signals.rs`).
    pub sip_call_queue_full: CallQueueCounter,
    /// `freya_edge_cluster_datagrams_dropped_total{reason}`: gossip datagrams dropped before
    /// (or refused by) the membership core (see `cluster/seal.rs`, `Dropped::label`).
    pub cluster_dropped: ClusterDropCounter,
    /// `freya_edge_cluster_members{state}`: members this edge's gossip sees, itself included.
    pub cluster_members: ClusterMemberGauge,
    /// `freya_edge_mesh_dials_refused_total{reason}`: peers' requests to dial a leg that the
    /// mesh's gate refused (`no_grant`, `not_home`, `mismatch`, `workspace_not_served`,
    /// `rate_limited`, `too_many_legs`; see `mesh/host.rs`).
    pub mesh_dials_refused: crate::mesh::hosting::DialRefusedCounter,

    /// `freya_edge_srtp_packets_dropped_total{reason}`: SRTP/SRTCP packets a call refused
    /// (`auth`, `replay`, `malformed`; see `rtp::srtp::SrtpError::label`).
    pub srtp_dropped: SrtpDropCounter,
    /// What the call events feed (`metrics/calls.rs`).
    pub calls: CallMetrics,
    /// `freya_edge_provider_request_duration_seconds{kind,provider}` and
    /// `freya_edge_provider_errors_total{kind,provider}`.
    pub providers: ProviderMetrics,
    /// `freya_edge_headroom_calls`: set at each scrape (see `metrics/headroom.rs`).
    headroom: Gauge,
    headroom_inputs: HeadroomSettings,
    cpu: Mutex<CpuSampler>,
    region: String,
    /// The certificates' expiry, by kind (set by `Edge::start`).
    pub(crate) certificates: certificates::CertificateExpiry,
}

/// The fixed inputs of the headroom gauge.
struct HeadroomSettings {
    capacity: u32,
    cores: u32,
    target_cpu_percent: u32,
    target_v2v: Duration,
    agent_label_limit: usize,
}

/// Provider work of calls, by `kind` (`stt`, `llm`, `tts`, `tool`) and `provider` (the
/// client's fixed name: `openai`, `deepgram`, `espeak`, ...; `tool` for customer tools, whose
/// names are not labels).
/// One pointer, cloned into every call's provider side (kept small: it sits in the call task's
/// future).
#[derive(Clone)]
pub(crate) struct ProviderMetrics(Arc<ProviderFamilies>);

struct ProviderFamilies {
    latency: HistogramFamily,
    errors: Family<Labels, Counter>,
}

impl ProviderMetrics {
    /// Handles that count nowhere (tests of a call's provider side).
    pub(crate) fn detached() -> Self {
        Self(Arc::new(ProviderFamilies {
            latency: HistogramFamily::new_with_constructor(provider_histogram),
            errors: Family::default(),
        }))
    }

    /// One request of `kind` to `provider` took `elapsed` (to its answer, or its first token
    /// or audio for a stream) and succeeded or not.
    pub(crate) fn observe(&self, kind: &str, provider: &str, elapsed: Duration, ok: bool) {
        let labels = vec![
            ("kind".to_owned(), kind.to_owned()),
            ("provider".to_owned(), provider.to_owned()),
        ];
        if ok {
            self.0
                .latency
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
        } else {
            self.0.errors.get_or_create(&labels).inc();
        }
    }
}

fn provider_histogram() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
    ])
}

fn v2v_histogram() -> Histogram {
    Histogram::new([
        0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0,
    ])
}

/// Cluster members by `state` (`alive`, `suspect`, `down`).
pub type ClusterMemberGauge = Family<Vec<(String, String)>, Gauge>;

/// Dropped gossip datagrams by `reason` (`bad_tag`, `oversized`, `replayed`, ...).
pub type ClusterDropCounter = Family<Vec<(String, String)>, Counter>;

/// Refused INVITEs by `reason` (see `call::admission::RefusalCause::label`).
pub type RefusalCounter = Family<Vec<(String, String)>, Counter>;

/// SRTP packets dropped by calls, by reason (`freya_edge_srtp_packets_dropped_total`).
pub type SrtpDropCounter = Family<Vec<(String, String)>, Counter>;

/// Redirected INVITEs by `cause` (see `cluster::routing::RedirectCause::label`).
pub type RedirectCounter = Family<Vec<(String, String)>, Counter>;

/// Signals for a call whose queue was full, by `signal` (`dtmf`, `hangup`, ...) and `action`
/// (`dropped`, `waiting`).
pub type CallQueueCounter = Family<Vec<(String, String)>, Counter>;

/// Provider webhooks by `outcome` (`connected`, `bad_signature`, ...).
pub type WebhookCounter = Family<Vec<(String, String)>, Counter>;

impl EdgeMetrics {
    /// The edge's registry; `capacity` and `region` are the edge's own, `settings` its
    /// `[metrics]` section.
    pub(crate) fn new(settings: &MetricsConfig, capacity: u32, region: &str) -> Self {
        let mut registry = Registry::with_prefix("freya_edge");
        let r = &mut registry;
        let srtp_dropped = registered(
            r,
            "srtp_packets_dropped",
            "SRTP and SRTCP packets calls dropped, by reason: auth (tag did not verify: junk, \
             tampering or another key), replay (already received or behind the replay window), \
             malformed",
            SrtpDropCounter::default(),
        );
        let mesh_dials_refused = registered(
            r,
            "mesh_dials_refused",
            "Peers' requests to dial a leg refused by the mesh's gate, by reason",
            crate::mesh::hosting::DialRefusedCounter::default(),
        );
        let cluster_members = registered(
            r,
            "cluster_members",
            "Cluster members this edge's gossip sees (itself included), by state",
            ClusterMemberGauge::default(),
        );
        let cluster_dropped = registered(
            r,
            "cluster_datagrams_dropped",
            "Gossip datagrams dropped, by reason: oversized, malformed, bad_tag (not sealed \
             with the cluster's key), stale (outside the replay window), replayed, refused",
            ClusterDropCounter::default(),
        );
        let active_calls = registered(r, "active_calls", "Calls in progress", Gauge::default());
        let calls = registered_calls(r);
        let providers = ProviderMetrics::detached();
        r.register(
            "provider_request_duration_seconds",
            "Provider requests of calls that succeeded, by kind (stt, llm, tts, tool) and \
             provider: to the transcript, the model's first event, the first audio of a \
             sentence, the tool's answer",
            providers.0.latency.clone(),
        );
        r.register(
            "provider_errors",
            "Provider requests of calls that failed, by kind and provider",
            providers.0.errors.clone(),
        );
        let headroom = registered(
            r,
            "headroom_calls",
            "Calls this edge can still take at its target latency: capacity minus calls in \
             progress, bounded by the CPU left under metrics.target_cpu_percent, and 0 while \
             the recent voice-to-voice p95 is over metrics.target_v2v_ms (for autoscaling)",
            Gauge::default(),
        );
        let draining = registered(
            r,
            "draining",
            "1 while refusing new calls",
            Gauge::default(),
        );
        let config_version = registered(
            r,
            "config_version",
            "Version of the configuration snapshot in use",
            Gauge::default(),
        );
        let events_spooled = registered(
            r,
            "events_spooled",
            "Call events waiting for the control plane's acknowledgement",
            Gauge::default(),
        );
        let twilio_webhooks = registered(
            r,
            "twilio_webhooks",
            "Twilio voice and status webhooks, by outcome",
            WebhookCounter::default(),
        );
        let rtp_departure = registered(
            r,
            "rtp_departure_deviation_seconds",
            "How far each outgoing RTP packet's spacing from the previous one strays from the \
             media time between them (the edge's own inter-departure jitter)",
            departure_histogram(),
        );
        let rtp_foreign = registered(
            r,
            "rtp_foreign_packets",
            "RTP and RTCP datagrams dropped because they came from an address other than the \
             one the call's media latched onto (a stranger injecting audio, or a NAT that rebound)",
            Counter::default(),
        );
        let sip_invites_refused = registered(
            r,
            "sip_invites_refused",
            "New INVITEs refused, by reason: rate_limited (over the source's INVITE rate), \
             source_unconfirmed_share and unconfirmed_budget (too many calls not yet \
             acknowledged), capacity, draining, unknown_number",
            RefusalCounter::default(),
        );
        let sip_invites_redirected = registered(
            r,
            "sip_invites_redirected",
            "New INVITEs answered 302 towards a live peer of the cluster, by cause: capacity, \
             draining, out_of_region (the number's home region is elsewhere)",
            RedirectCounter::default(),
        );
        let sip_call_queue_full = registered(
            r,
            "sip_call_queue_full",
            "Signals for a call (digits, hang-ups, hold, transfer news) that did not fit in its \
             full queue, by signal and action: dropped, or waiting for room (a hang-up always \
             waits)",
            CallQueueCounter::default(),
        );
        Self {
            registry,
            active_calls,
            draining,
            config_version,
            events_spooled,
            twilio_webhooks,
            rtp_departure,
            rtp_foreign,
            sip_invites_refused,
            sip_invites_redirected,
            sip_call_queue_full,
            cluster_dropped,
            mesh_dials_refused,
            cluster_members,
            srtp_dropped,
            calls,
            providers,
            headroom,
            headroom_inputs: HeadroomSettings {
                capacity,
                cores: std::thread::available_parallelism()
                    .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
                target_cpu_percent: settings.target_cpu_percent,
                target_v2v: Duration::from_millis(u64::from(settings.target_v2v_ms)),
                agent_label_limit: settings.agent_label_limit,
            },
            cpu: Mutex::new(CpuSampler::new()),
            region: region.to_owned(),
            certificates: certificates::CertificateExpiry::default(),
        }
    }

    /// The observer that turns this edge's call events into metrics (one, in the publisher).
    pub(crate) fn call_observer(&self) -> CallObserver {
        CallObserver::new(
            self.calls.clone(),
            &self.region,
            self.headroom_inputs.agent_label_limit,
        )
    }

    /// Sets the headroom gauge from the edge's state now.
    fn update_headroom(&self) {
        let now = Instant::now();
        let cpu_permille = self.cpu.lock().map_or(0, |mut cpu| cpu.sample());
        let v2v_p95 = self
            .calls
            .recent_v2v
            .lock()
            .ok()
            .and_then(|mut w| w.p95(now));
        let settings = &self.headroom_inputs;
        let value = headroom::headroom(HeadroomInputs {
            capacity: settings.capacity,
            active: u32::try_from(self.active_calls.get().max(0)).unwrap_or(u32::MAX),
            cpu_permille,
            cores: settings.cores,
            target_cpu_percent: settings.target_cpu_percent,
            v2v_p95,
            target_v2v: settings.target_v2v,
        });
        self.headroom.set(i64::from(value));
    }

    /// The exposition for `/metrics`, the headroom gauge set first.
    pub(crate) fn render(&self) -> String {
        self.update_headroom();
        exposition::render(&self.registry, &self.certificates)
    }
}

/// Buckets fine around the few milliseconds a 20 ms stream may stray before a receiver's jitter
/// buffer notices, coarse beyond.
pub(crate) fn departure_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
    ])
}

/// What the call events feed, registered.
fn registered_calls(r: &mut Registry) -> CallMetrics {
    CallMetrics {
        setup: registered(
            r,
            "call_setup_seconds",
            "From taking a call (its INVITE accepted, or dialled) to its answer",
            Histogram::new([0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0]),
        ),
        failed: registered(
            r,
            "calls_failed",
            "Calls that never got going, by reason (no_common_codec, unknown_number, ...)",
            Family::default(),
        ),
        ended: registered(
            r,
            "calls_ended",
            "Calls that ended, by reason (caller_hangup, agent_hangup, rtp_timeout, ...)",
            Family::default(),
        ),
        voice_to_voice: registered(
            r,
            "voice_to_voice_seconds",
            "From the end of the caller's turn to the first packet of the reply, by region and \
             agent (the first metrics.agent_label_limit agents; later ones count as other)",
            HistogramFamily::new_with_constructor(v2v_histogram),
        ),
        rtp_lost: registered(
            r,
            "rtp_lost_packets",
            "Caller RTP packets never received (gaps at playout), counted at each call's end",
            Counter::default(),
        ),
        rtp_late: registered(
            r,
            "rtp_late_packets",
            "Caller RTP packets dropped for arriving after their playout time, counted at each \
             call's end",
            Counter::default(),
        ),
        rtp_jitter: registered(
            r,
            "rtp_jitter_seconds",
            "Interarrival jitter of each call's incoming RTP (RFC 3550), at its end",
            Histogram::new([0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16]),
        ),
        jitter_buffer: registered(
            r,
            "jitter_buffer_delay_seconds",
            "The playout delay each call's jitter buffer had settled on at its end (its depth)",
            Histogram::new([0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5]),
        ),
        recent_v2v: Arc::new(Mutex::new(LatencyWindow::default())),
    }
}

//! The edge's Prometheus metrics, served as text at the edge's `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
}

/// Cluster members by `state` (`alive`, `suspect`, `down`).
pub type ClusterMemberGauge = Family<Vec<(String, String)>, Gauge>;

/// Dropped gossip datagrams by `reason` (`bad_tag`, `oversized`, `replayed`, ...).
pub type ClusterDropCounter = Family<Vec<(String, String)>, Counter>;

/// Refused INVITEs by `reason` (see `call::admission::RefusalCause::label`).
pub type RefusalCounter = Family<Vec<(String, String)>, Counter>;

/// Redirected INVITEs by `cause` (see `cluster::routing::RedirectCause::label`).
pub type RedirectCounter = Family<Vec<(String, String)>, Counter>;

/// Signals for a call whose queue was full, by `signal` (`dtmf`, `hangup`, ...) and `action`
/// (`dropped`, `waiting`).
pub type CallQueueCounter = Family<Vec<(String, String)>, Counter>;

/// Provider webhooks by `outcome` (`connected`, `bad_signature`, ...).
pub type WebhookCounter = Family<Vec<(String, String)>, Counter>;

impl EdgeMetrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("freya_edge");
        let active_calls = Gauge::default();
        let draining = Gauge::default();
        let config_version = Gauge::default();
        let events_spooled = Gauge::default();
        let twilio_webhooks = WebhookCounter::default();
        let rtp_departure = departure_histogram();
        let rtp_foreign = Counter::default();
        let sip_invites_refused = RefusalCounter::default();
        let sip_invites_redirected = RedirectCounter::default();
        let sip_call_queue_full = CallQueueCounter::default();
        let cluster_dropped = ClusterDropCounter::default();
        let cluster_members = ClusterMemberGauge::default();
        registry.register(
            "cluster_members",
            "Cluster members this edge's gossip sees (itself included), by state",
            cluster_members.clone(),
        );
        registry.register(
            "cluster_datagrams_dropped",
            "Gossip datagrams dropped, by reason: oversized, malformed, bad_tag (not sealed \
             with the cluster's key), stale (outside the replay window), replayed, refused",
            cluster_dropped.clone(),
        );
        registry.register("active_calls", "Calls in progress", active_calls.clone());
        registry.register("draining", "1 while refusing new calls", draining.clone());
        registry.register(
            "config_version",
            "Version of the configuration snapshot in use",
            config_version.clone(),
        );
        registry.register(
            "events_spooled",
            "Call events waiting for the control plane's acknowledgement",
            events_spooled.clone(),
        );
        registry.register(
            "twilio_webhooks",
            "Twilio voice and status webhooks, by outcome",
            twilio_webhooks.clone(),
        );
        registry.register(
            "rtp_departure_deviation_seconds",
            "How far each outgoing RTP packet's spacing from the previous one strays from the \
             media time between them (the edge's own inter-departure jitter)",
            rtp_departure.clone(),
        );
        registry.register(
            "rtp_foreign_packets",
            "RTP and RTCP datagrams dropped because they came from an address other than the \
             one the call's media latched onto (a stranger injecting audio, or a NAT that rebound)",
            rtp_foreign.clone(),
        );
        registry.register(
            "sip_invites_refused",
            "New INVITEs refused, by reason: rate_limited (over the source's INVITE rate), \
             source_unconfirmed_share and unconfirmed_budget (too many calls not yet \
             acknowledged), capacity, draining, unknown_number",
            sip_invites_refused.clone(),
        );
        registry.register(
            "sip_invites_redirected",
            "New INVITEs answered 302 towards a live peer of the cluster, by cause: capacity, \
             draining, out_of_region (the number's home region is elsewhere)",
            sip_invites_redirected.clone(),
        );
        registry.register(
            "sip_call_queue_full",
            "Signals for a call (digits, hang-ups, hold, transfer news) that did not fit in its \
             full queue, by signal and action: dropped, or waiting for room (a hang-up always \
             waits)",
            sip_call_queue_full.clone(),
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
            cluster_members,
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Buckets fine around the few milliseconds a 20 ms stream may stray before a receiver's jitter
/// buffer notices, coarse beyond.
pub(crate) fn departure_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
    ])
}

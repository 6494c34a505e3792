//! The control plane's Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters the control plane keeps; one registry per control-plane instance.
pub(crate) struct ControlMetrics {
    registry: Registry,
    pub edge_registrations: Counter,
    pub config_snapshots_sent: Counter,
    pub call_events_stored: Counter,
    pub call_events_duplicate: Counter,
    pub http_requests: Counter,
}

impl Default for ControlMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("freya_control");
        let edge_registrations = Counter::default();
        let config_snapshots_sent = Counter::default();
        let call_events_stored = Counter::default();
        let call_events_duplicate = Counter::default();
        let http_requests = Counter::default();
        registry.register(
            "edge_registrations",
            "Edge registrations accepted",
            edge_registrations.clone(),
        );
        registry.register(
            "config_snapshots_sent",
            "Configuration snapshots sent to edges",
            config_snapshots_sent.clone(),
        );
        registry.register(
            "call_events_stored",
            "Call events stored for the first time",
            call_events_stored.clone(),
        );
        registry.register(
            "call_events_duplicate",
            "Call events received again and ignored",
            call_events_duplicate.clone(),
        );
        registry.register(
            "http_requests",
            "REST API requests served",
            http_requests.clone(),
        );
        Self {
            registry,
            edge_registrations,
            config_snapshots_sent,
            call_events_stored,
            call_events_duplicate,
            http_requests,
        }
    }
}

impl ControlMetrics {
    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

//! The control plane's Prometheus metrics, served as text at `/metrics`.
//!
//! Names carry their unit (`_seconds`) and counters end in `_total` (added by the encoder);
//! labels come from small fixed sets (an outcome), never a call, edge or workspace id.

use freya_edge::metrics::exposition::{self, registered};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::StorageHealth;

/// Webhook deliveries by `outcome` (`delivered`, `failed`).
pub(crate) type OutcomeCounter = Family<Vec<(String, String)>, Counter>;

/// What the control plane counts; one registry per control-plane instance.
pub(crate) struct ControlMetrics {
    registry: Registry,
    pub edge_registrations: Counter,
    pub config_snapshots_sent: Counter,
    pub call_events_stored: Counter,
    pub call_events_duplicate: Counter,
    pub http_requests: Counter,
    /// What webhook delivery reports (`webhooks.rs`).
    pub webhooks: WebhookMetrics,
    /// `freya_control_database_up`: 1 while the last liveness probe of the database answered.
    pub database_up: Gauge,
    /// Clones of the store's own counters (`database_errors_total`, `database_retries_total`).
    database_errors: Counter,
    /// `freya_certificate_expiry_timestamp_seconds{kind="ca"}` (set by the server at start).
    pub certificates: freya_edge::metrics::certificates::CertificateExpiry,
}

/// Webhook delivery's view: how late deliveries arrive and how many wait.
#[derive(Clone)]
pub(crate) struct WebhookMetrics {
    /// `freya_control_webhook_delivery_lag_seconds`: from queueing an event to its delivery.
    pub lag: Histogram,
    /// `freya_control_webhook_backlog_deliveries`: deliveries due and not yet taken.
    pub backlog: Gauge,
    /// `freya_control_webhook_attempts_total{outcome}`.
    pub attempts: OutcomeCounter,
}

impl ControlMetrics {
    /// The registry, with the store's database counters from `health`.
    pub(crate) fn new(health: &StorageHealth) -> Self {
        let mut registry = Registry::with_prefix("freya_control");
        let r = &mut registry;
        let edge_registrations = registered(
            r,
            "edge_registrations",
            "Edge registrations accepted",
            Counter::default(),
        );
        let config_snapshots_sent = registered(
            r,
            "config_snapshots_sent",
            "Configuration snapshots sent to edges",
            Counter::default(),
        );
        let call_events_stored = registered(
            r,
            "call_events_stored",
            "Call events stored for the first time",
            Counter::default(),
        );
        let call_events_duplicate = registered(
            r,
            "call_events_duplicate",
            "Call events received again and ignored",
            Counter::default(),
        );
        let http_requests = registered(
            r,
            "http_requests",
            "REST API requests served",
            Counter::default(),
        );
        let webhooks = WebhookMetrics {
            lag: registered(
                r,
                "webhook_delivery_lag_seconds",
                "From queueing a call event for a webhook to its delivery (2xx), retries included",
                Histogram::new([
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                ]),
            ),
            backlog: registered(
                r,
                "webhook_backlog_deliveries",
                "Webhook deliveries due now and not yet taken by a delivery task",
                Gauge::default(),
            ),
            attempts: registered(
                r,
                "webhook_attempts",
                "Webhook delivery attempts, by outcome: delivered (2xx) or failed",
                OutcomeCounter::default(),
            ),
        };
        let database_up = registered(
            r,
            "database_up",
            "1 while the last liveness probe of the database (every few seconds) answered",
            Gauge::default(),
        );
        let database_errors = registered(
            r,
            "database_errors",
            "Database transactions that failed for good (after their retries) and failed \
             liveness probes",
            health.errors.clone(),
        );
        r.register(
            "database_retries",
            "Transactions run again after a serialization conflict (SQLSTATE 40001, SQLite busy)",
            health.retries.clone(),
        );
        Self {
            registry,
            edge_registrations,
            config_snapshots_sent,
            call_events_stored,
            call_events_duplicate,
            http_requests,
            webhooks,
            database_up,
            database_errors,
            certificates: Default::default(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        exposition::render(&self.registry, &self.certificates)
    }

    /// Probes the database every `interval` until `stop`: `database_up`, and a failed probe
    /// counted as a database error.
    pub(crate) async fn watch_database(
        &self,
        store: crate::store::Store,
        interval: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let up = tokio::time::timeout(interval, store.ping()).await;
            match up {
                Ok(Ok(())) => {
                    self.database_up.set(1);
                }
                Ok(Err(_)) | Err(_) => {
                    self.database_up.set(0);
                    self.database_errors.inc();
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

//! The webhook delivery task: every control-plane process runs one. It polls the delivery queue
//! (see `store::deliveries`), claims due rows a batch at a time — on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so replicas take different rows — and POSTs each body to its subscription's URL, signed:
//!
//! ```text
//! Freya-Signature: t=1700000000,v1=<hex HMAC-SHA256(secret, "1700000000.<body>")>
//! ```
//!
//! (`t` is when this attempt was sent). It is the scheme tool requests carry too, written and
//! checked by one implementation, [`freya_shared::signature`]; receivers allow 300 s of skew.
//!
//! A 2xx answer delivers it; anything else (or no answer within `webhooks.timeout_ms`) schedules
//! another attempt after `retry_base_ms`, doubling up to `retry_max_ms`, until a day after it was
//! queued. The task stops with the control plane's cancellation token, handing back a claim it
//! has not finished.
//!
//! Requests go through the edge's egress guard ([`freya_edge::egress`]): no proxy from the
//! environment, no redirect, and, unless `webhooks.allow_private_targets` is on, no loopback,
//! private or otherwise non-public destination, whether named literally or through DNS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::WebhooksConfig;
use crate::metrics::WebhookMetrics;
use crate::store::{DeliveryAttempt, DueDelivery, Store};
use freya_edge::egress::{Egress, EgressConfig};
use freya_shared::error_chain::error_chain;
use freya_shared::ids::now_ms;

pub(crate) use freya_shared::signature::SIGNATURE_HEADER;

/// How many due deliveries one poll picks up.
const BATCH: i64 = 64;
const BATCH_LEN: usize = 64;
/// How many of them are attempted at once.
const CONCURRENT_ATTEMPTS: usize = 8;

/// The `Freya-Signature` value of `body` sent at `timestamp` (seconds since the epoch), or why
/// it cannot be signed (an empty secret).
pub(crate) fn signature(
    secret: &str,
    timestamp: u64,
    body: &[u8],
) -> Result<String, freya_shared::signature::SignatureError> {
    freya_shared::signature::sign(secret.as_bytes(), timestamp, body)
}

/// The pause before the attempt after `failures` failed ones.
pub(crate) fn backoff(config: &WebhooksConfig, failures: i64) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let pause = u64::from(config.retry_base_ms).saturating_mul(1u64 << exponent);
    Duration::from_millis(pause.min(u64::from(config.retry_max_ms)))
}

/// Sends queued webhook deliveries until cancelled.
pub(crate) struct DeliveryWorker {
    store: Store,
    config: WebhooksConfig,
    egress: Egress,
    /// Lag, backlog and attempts, for `/metrics`.
    metrics: WebhookMetrics,
}

impl DeliveryWorker {
    /// A worker on `store` with the `[webhooks]` settings, reporting to `metrics`.
    pub(crate) fn new(
        store: Store,
        config: WebhooksConfig,
        metrics: WebhookMetrics,
    ) -> anyhow::Result<Self> {
        // The guard follows no redirect: one could lead a signed body somewhere the
        // subscription did not name.
        let egress = Egress::from_builder(
            &EgressConfig {
                allow_private_targets: config.allow_private_targets,
                proxy: None,
            },
            reqwest::Client::builder()
                .timeout(Duration::from_millis(u64::from(config.timeout_ms)))
                .user_agent("Freya-Webhooks/1"),
            "webhooks.allow_private_targets",
        )?;
        Ok(Self {
            store,
            config,
            egress,
            metrics,
        })
    }

    /// Polls and delivers until `stop` is cancelled.
    pub(crate) async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let poll = Duration::from_millis(u64::from(self.config.poll_interval_ms));
        while !stop.is_cancelled() {
            match self.work_off_due(&stop).await {
                // A full batch: more may be due, so go again at once.
                Ok(n) if n == BATCH_LEN => continue,
                Ok(_) => {}
                Err(error) => {
                    if let Some(store_error) = error.downcast_ref::<crate::store::StoreError>() {
                        self.store.storage_health().record(store_error);
                    }
                    tracing::warn!(%error, "webhook delivery pass failed; retrying after a pause");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
            }
        }
        Ok(())
    }

    /// One pass over the due deliveries; returns how many were due.
    async fn work_off_due(&self, stop: &CancellationToken) -> anyhow::Result<usize> {
        let now = now_ms();
        self.store.reclaim_expired_deliveries(now).await?;
        let backlog = self.store.webhook_backlog(now).await?;
        self.metrics.backlog.set(backlog);
        let due = self
            .store
            .claim_due_deliveries(now, BATCH, self.lease_ms())
            .await?;
        let count = due.len();
        // A few at a time, so one slow receiver does not hold up every other workspace's.
        let failures = AtomicUsize::new(0);
        let failures = &failures;
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENT_ATTEMPTS, |id| async move {
                if let Err(error) = self.deliver(&id, stop).await {
                    if let Some(store_error) = error.downcast_ref::<crate::store::StoreError>() {
                        self.store.storage_health().record(store_error);
                    }
                    failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(delivery = %id, %error, "webhook delivery failed to run");
                }
            })
            .await;
        match failures.load(Ordering::Relaxed) {
            0 => Ok(count),
            n => Err(anyhow::anyhow!(
                "{n} of {count} due deliveries could not be run"
            )),
        }
    }

    /// How long a claim holds: a whole batch's attempts, `CONCURRENT_ATTEMPTS` at a time, each
    /// up to the timeout, and a margin. A process that dies holding claims loses them then
    /// (`reclaim_expired_deliveries`), so a delivery is never lost.
    fn lease_ms(&self) -> i64 {
        let rounds = BATCH_LEN.div_ceil(CONCURRENT_ATTEMPTS) as i64;
        i64::from(self.config.timeout_ms) * rounds + 30_000
    }

    /// Makes one attempt at delivery `id`, which this process claimed.
    async fn deliver(&self, id: &str, stop: &CancellationToken) -> anyhow::Result<()> {
        if stop.is_cancelled() {
            self.store.release_delivery(id).await?;
            return Ok(());
        }
        let Some(due) = self.store.claimed_delivery(id).await? else {
            return Ok(());
        };
        let span = tracing::info_span!("webhook", delivery = %due.id, attempt = due.attempts + 1);
        if let Some((trace_id, span_id)) = &due.call_trace {
            freya_edge::telemetry::continue_trace(&span, trace_id, span_id);
        }
        tokio::select! {
            attempt = tracing::Instrument::instrument(self.attempt(&due), span) => {
                let outcome = match attempt {
                    DeliveryAttempt::Delivered { .. } => {
                        let lag_ms = now_ms().saturating_sub(due.created_at_ms).max(0);
                        self.metrics.lag.observe(lag_ms as f64 / 1000.0);
                        "delivered"
                    }
                    DeliveryAttempt::Failed { .. } => "failed",
                };
                let labels = vec![("outcome".to_owned(), outcome.to_owned())];
                self.metrics.attempts.get_or_create(&labels).inc();
                self.store
                    .finish_delivery(&due.id, &attempt, due.retry_until_ms)
                    .await?;
            }
            _ = stop.cancelled() => self.store.release_delivery(&due.id).await?,
        }
        Ok(())
    }

    async fn attempt(&self, due: &DueDelivery) -> DeliveryAttempt {
        let url = match self.egress.check_url(&due.url) {
            Ok(url) => url,
            Err(error) => return self.failed(due, None, format!("refused: {error}")),
        };
        let timestamp = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let signed = match signature(&due.secret, timestamp, due.body.as_bytes()) {
            Ok(signed) => signed,
            Err(error) => return self.failed(due, None, format!("not sent: {error}")),
        };
        let sent = self
            .egress
            .client()
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .body(due.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => DeliveryAttempt::Delivered {
                status_code: response.status().as_u16(),
            },
            Ok(response) => {
                let status = response.status();
                self.failed(
                    due,
                    Some(status.as_u16()),
                    format!("the receiver answered {status}"),
                )
            }
            Err(error) => self.failed(due, None, error_chain(&error.without_url())),
        }
    }

    /// A failed attempt, to be tried again after the backoff.
    fn failed(
        &self,
        due: &DueDelivery,
        status_code: Option<u16>,
        error: String,
    ) -> DeliveryAttempt {
        let pause = backoff(&self.config, due.attempts + 1);
        let pause_ms = i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
        tracing::info!(delivery = %due.id, ?status_code, %error, "webhook attempt failed");
        DeliveryAttempt::Failed {
            status_code,
            error,
            retry_at_ms: now_ms().saturating_add(pause_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", 1_700_000_000, br#"{"a":1}"#),
            Ok(
                "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
                    .to_string()
            )
        );
    }

    #[test]
    fn an_empty_secret_is_not_signed_with() {
        assert!(signature("", 1_700_000_000, b"{}").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = WebhooksConfig {
            retry_base_ms: 1_000,
            retry_max_ms: 5_000,
            ..WebhooksConfig::default()
        };
        let pauses: Vec<u128> = (1..=5).map(|n| backoff(&config, n).as_millis()).collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000, 5_000, 5_000]);
    }
}

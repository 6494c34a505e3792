//! `[webhooks]`: the delivery task's polling, timeouts and retry backoff, and which targets a
//! subscription may name.

use serde::Deserialize;

/// The webhook delivery task: how often it looks for due deliveries, how patiently it waits on a
/// receiver, how retries back off, and which targets subscriptions may name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// How often the queue is polled for due deliveries.
    #[serde(default = "default_webhook_poll_ms")]
    pub poll_interval_ms: u32,
    /// How long one attempt may take (connect, send, answer).
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u32,
    /// The pause after the first failed attempt; it doubles with each further failure.
    #[serde(default = "default_webhook_retry_base_ms")]
    pub retry_base_ms: u32,
    /// The longest pause between two attempts.
    #[serde(default = "default_webhook_retry_max_ms")]
    pub retry_max_ms: u32,
    /// Whether subscriptions may target loopback, private and link-local addresses (and
    /// `localhost`). Off by default: a webhook must not become a way into the operator's network.
    #[serde(default)]
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: default_webhook_poll_ms(),
            timeout_ms: default_webhook_timeout_ms(),
            retry_base_ms: default_webhook_retry_base_ms(),
            retry_max_ms: default_webhook_retry_max_ms(),
            allow_private_targets: false,
        }
    }
}

fn default_webhook_poll_ms() -> u32 {
    1_000
}

fn default_webhook_timeout_ms() -> u32 {
    10_000
}

fn default_webhook_retry_base_ms() -> u32 {
    30_000
}

fn default_webhook_retry_max_ms() -> u32 {
    3_600_000
}

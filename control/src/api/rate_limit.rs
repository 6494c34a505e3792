//! Rate limits in front of the whole API: one token bucket per credential (the bearer token,
//! hashed — an API key or a person's JWT) and one per client IP. A request takes a token from
//! each; an empty bucket answers 429 with `Retry-After` (seconds until a token is back).
//!
//! The buckets live in this process (each control-plane process behind a load balancer limits
//! on its own). They sit behind a `std` mutex held only for a map lookup and some arithmetic,
//! never across an await; idle full buckets are swept when the map grows.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::problem::{retry_seconds, Problem};
use super::AppState;
use crate::config::RateLimitConfig;

/// Sweep idle buckets once the map holds this many.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What a bucket allows: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_second: f64,
}

impl Rate {
    fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
        }
    }
}

/// The token buckets of one process.
pub(crate) struct RateLimiter {
    per_key: Rate,
    per_ip: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Limits from the `[rate_limits]` config section.
    pub(crate) fn new(config: &RateLimitConfig) -> Self {
        Self {
            per_key: Rate::per_minute(config.per_key_per_minute, config.burst),
            per_ip: Rate::per_minute(config.per_ip_per_minute, config.burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from each named bucket at `now`; when one is empty, takes none and
    /// returns how long until it refills one.
    fn take(&self, now: Instant, keys: &[(String, Rate)]) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(()); // a poisoned limiter must not take the API down
        };
        if buckets.len() > SWEEP_AT {
            buckets.retain(|_, b| now.duration_since(b.updated) < Duration::from_secs(600));
        }
        let mut wait = Duration::ZERO;
        let mut refilled = Vec::with_capacity(keys.len());
        for (key, rate) in keys {
            let bucket = buckets.get(key).copied().unwrap_or(Bucket {
                tokens: rate.burst,
                updated: now,
            });
            let elapsed = now.duration_since(bucket.updated).as_secs_f64();
            let tokens = (bucket.tokens + elapsed * rate.per_second).min(rate.burst);
            if tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - tokens) / rate.per_second));
            }
            refilled.push((key, tokens));
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        for (key, tokens) in refilled {
            buckets.insert(
                key.clone(),
                Bucket {
                    tokens: tokens - 1.0,
                    updated: now,
                },
            );
        }
        Ok(())
    }
}

fn credential_of(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| format!("key:{}", hex::encode(&Sha256::digest(token)[..16])))
}

fn ip_of(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The middleware: 429 when the caller's credential or IP has no token left.
pub(super) async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limiter = &state.limiter;
    let mut keys = Vec::with_capacity(2);
    if let Some(credential) = credential_of(&request) {
        keys.push((credential, limiter.per_key));
    }
    if let Some(ip) = ip_of(&request) {
        keys.push((format!("ip:{ip}"), limiter.per_ip));
    }
    match limiter.take(Instant::now(), &keys) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = retry_seconds(wait);
            Problem::too_many_requests(
                "Too many requests",
                format!("rate limit reached; retry in {seconds} s"),
                wait,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            per_key_per_minute: per_minute,
            per_ip_per_minute: per_minute,
            burst,
        })
    }

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_its_rate() {
        let l = limiter(60, 3);
        let keys = [("k".to_owned(), l.per_key)];
        let start = Instant::now();
        for _ in 0..3 {
            assert!(l.take(start, &keys).is_ok());
        }
        let wait = l.take(start, &keys).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(l.take(start + Duration::from_millis(1_001), &keys).is_ok());
        assert!(l.take(start + Duration::from_millis(1_002), &keys).is_err());
    }

    #[test]
    fn an_empty_bucket_takes_nothing_from_the_others() {
        let l = limiter(60, 1);
        let start = Instant::now();
        let ip = ("ip".to_owned(), l.per_ip);
        assert!(l
            .take(start, &[("a".into(), l.per_key), ip.clone()])
            .is_ok());
        // `a` is empty now; a refused request must not drain `ip`... but `ip` is empty too.
        assert!(l
            .take(start, &[("b".into(), l.per_key), ip.clone()])
            .is_err());
        let later = start + Duration::from_secs(1);
        assert!(l.take(later, &[("b".into(), l.per_key), ip]).is_ok());
    }
}

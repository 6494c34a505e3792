//! How many new INVITEs each source address may send: a token bucket per source, sans-IO (the
//! SIP task hands it the source and `now`). An INVITE that finds its source's bucket empty is
//! answered 503 with `Retry-After` before it becomes a call. Only new INVITEs reach it: the
//! endpoint's transactions absorb retransmissions of one already taken.
//!
//! Memory is bounded: a bucket that has refilled completely says nothing a fresh one would not,
//! so such buckets are swept when the table reaches its cap; if the table is still full of
//! busy sources (a flood from many addresses), further sources share one overflow bucket,
//! which rate-limits them together rather than letting them through.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Sources tracked one by one; beyond, new sources share the overflow bucket.
pub const MAX_TRACKED_SOURCES: usize = 10_000;

/// Sweeps for idle buckets happen at most this often, so a full table of busy sources does
/// not cost a scan per INVITE.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The address a limit applies to: an IPv4 address, or the /64 an IPv6 address belongs to
/// (one host usually holds a whole /64, so per-address limits would not hold it back).
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// What a bucket allows: `burst` INVITEs at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InviteRate {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The token buckets of every source sending INVITEs to one edge.
#[derive(Debug)]
pub struct InviteRateLimiter {
    rate: InviteRate,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by sources that found the table full.
    overflow: Option<Bucket>,
    last_sweep: Option<Instant>,
}

impl InviteRateLimiter {
    /// A limiter tracking up to [`MAX_TRACKED_SOURCES`] sources.
    pub fn new(rate: InviteRate) -> Self {
        Self::with_max_sources(rate, MAX_TRACKED_SOURCES)
    }

    /// A limiter tracking up to `max_sources` sources one by one.
    pub fn with_max_sources(rate: InviteRate, max_sources: usize) -> Self {
        Self {
            rate: InviteRate {
                per_second: if rate.per_second > 0.0 {
                    rate.per_second
                } else {
                    f64::MIN_POSITIVE
                },
                burst: rate.burst.max(1),
            },
            max_sources: max_sources.max(1),
            buckets: HashMap::new(),
            overflow: None,
            last_sweep: None,
        }
    }

    /// A new INVITE from `source` at `now`: `Ok` takes a token, `Err` says how long until the
    /// source has one again (for `Retry-After`).
    pub fn handle_invite(&mut self, now: Instant, source: IpAddr) -> Result<(), Duration> {
        let source = source_of(source);
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            self.sweep(now);
        }
        let fresh = Bucket {
            tokens: f64::from(self.rate.burst),
            updated: now,
        };
        let bucket = if self.buckets.len() < self.max_sources || self.buckets.contains_key(&source)
        {
            self.buckets.entry(source).or_insert(fresh)
        } else {
            self.overflow.get_or_insert(fresh)
        };
        take(bucket, self.rate, now)
    }

    /// Sources tracked one by one right now.
    pub fn tracked_sources(&self) -> usize {
        self.buckets.len()
    }

    /// Drops the buckets that have refilled completely (they are as good as new).
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        let rate = self.rate;
        self.buckets
            .retain(|_, bucket| refilled(bucket, rate, now) < f64::from(rate.burst));
    }
}

/// The bucket's tokens at `now`, counting the refill since it was last touched.
fn refilled(bucket: &Bucket, rate: InviteRate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

fn take(bucket: &mut Bucket, rate: InviteRate, now: Instant) -> Result<(), Duration> {
    let tokens = refilled(bucket, rate, now);
    bucket.updated = now.max(bucket.updated);
    if tokens >= 1.0 {
        bucket.tokens = tokens - 1.0;
        Ok(())
    } else {
        bucket.tokens = tokens;
        Err(Duration::try_from_secs_f64((1.0 - tokens) / rate.per_second).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
#[path = "invite_rate_tests.rs"]
mod tests;

//! Which mesh connections an edge keeps, without I/O: a connection to a peer is opened when a
//! leg needs it, retried with doubling backoff when it fails, and closed once no leg has used
//! it for `idle_close`. Each peer carries at most `max_legs` legs, and each connection's
//! inbound audio passes a token bucket ([`FrameBudget`]) so one hostile or broken peer cannot
//! flood the calls behind it. The shell (`shell.rs`) asks [`MeshPeers::poll_action`] what to do
//! and reports back what happened, with the time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Limits and clocks of the mesh's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    /// First wait after a failed connection; doubles per failure.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// A connection no leg has used for this long is closed.
    pub idle_close: Duration,
    /// Most legs carried to or from one peer.
    pub max_legs: u32,
    /// Most audio datagrams per second taken from one connection (50 per leg and direction is
    /// the normal rate).
    pub max_frames_per_sec: u32,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            idle_close: Duration::from_secs(30),
            max_legs: 500,
            max_frames_per_sec: 500 * 60,
        }
    }
}

/// What the shell should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAction {
    /// Open a connection to the peer.
    Connect(SocketAddr),
    /// Close the peer's connection: idle.
    Close(SocketAddr),
}

/// Why a leg could not be placed on a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerLimit {
    #[error("the peer already carries its most legs ({0})")]
    TooManyLegs(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    Connecting,
    Up,
}

#[derive(Debug)]
struct Slot {
    link: Link,
    legs: u32,
    last_used: Instant,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The state of every peer connection this edge has wanted.
#[derive(Debug)]
pub struct MeshPeers {
    settings: PeerSettings,
    slots: HashMap<SocketAddr, Slot>,
    actions: VecDeque<PeerAction>,
}

impl MeshPeers {
    /// No peers yet.
    pub fn new(settings: PeerSettings) -> Self {
        Self {
            settings,
            slots: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    fn slot(&mut self, now: Instant, addr: SocketAddr) -> &mut Slot {
        self.slots.entry(addr).or_insert(Slot {
            link: Link::Down,
            legs: 0,
            last_used: now,
            failures: 0,
            retry_at: None,
        })
    }

    /// A leg wants to talk to `addr` now: true when the connection is up; otherwise a
    /// connection is asked for (unless one is under way or backing off) and the frame waits.
    pub fn want(&mut self, now: Instant, addr: SocketAddr) -> bool {
        let slot = self.slot(now, addr);
        slot.last_used = now;
        match slot.link {
            Link::Up => true,
            Link::Connecting => false,
            Link::Down => {
                if slot.retry_at.is_none_or(|at| at <= now) {
                    slot.link = Link::Connecting;
                    slot.retry_at = None;
                    self.actions.push_back(PeerAction::Connect(addr));
                }
                false
            }
        }
    }

    /// A leg to or from `addr` begins; refused past `max_legs`.
    pub fn add_leg(&mut self, now: Instant, addr: SocketAddr) -> Result<(), PeerLimit> {
        let max = self.settings.max_legs;
        let slot = self.slot(now, addr);
        if slot.legs >= max {
            return Err(PeerLimit::TooManyLegs(max));
        }
        slot.legs += 1;
        slot.last_used = now;
        Ok(())
    }

    /// A leg to or from `addr` ended.
    pub fn remove_leg(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(slot) = self.slots.get_mut(&addr) {
            slot.legs = slot.legs.saturating_sub(1);
            slot.last_used = now;
        }
    }

    /// Legs carried with `addr`.
    pub fn legs(&self, addr: SocketAddr) -> u32 {
        self.slots.get(&addr).map_or(0, |s| s.legs)
    }

    /// The connection to (or from) `addr` is up.
    pub fn handle_connected(&mut self, now: Instant, addr: SocketAddr) {
        let slot = self.slot(now, addr);
        slot.link = Link::Up;
        slot.failures = 0;
        slot.retry_at = None;
        slot.last_used = now;
    }

    /// A connection attempt failed or an open connection was lost: the next attempt waits.
    pub fn handle_failed(&mut self, now: Instant, addr: SocketAddr) {
        let settings = self.settings;
        let slot = self.slot(now, addr);
        let wait = settings
            .backoff_min
            .saturating_mul(1u32 << slot.failures.min(16))
            .min(settings.backoff_max);
        slot.failures = slot.failures.saturating_add(1);
        slot.link = Link::Down;
        slot.retry_at = Some(now + wait);
    }

    /// When the next attempt to `addr` may start, while it backs off.
    pub fn retry_at(&self, addr: SocketAddr) -> Option<Instant> {
        self.slots.get(&addr).and_then(|s| s.retry_at)
    }

    /// Closes idle connections and forgets idle peers; retries peers whose legs still wait.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.settings.idle_close;
        let mut closes = Vec::new();
        self.slots.retain(|addr, slot| {
            let unused = slot.legs == 0 && now.saturating_duration_since(slot.last_used) >= idle;
            if unused && slot.link == Link::Up {
                closes.push(*addr);
            }
            !unused || slot.link == Link::Connecting
        });
        for addr in closes {
            self.actions.push_back(PeerAction::Close(addr));
        }
        let mut connects = Vec::new();
        for (addr, slot) in &mut self.slots {
            if slot.link == Link::Down && slot.legs > 0 && slot.retry_at.is_some_and(|at| at <= now)
            {
                slot.link = Link::Connecting;
                slot.retry_at = None;
                connects.push(*addr);
            }
        }
        self.actions
            .extend(connects.into_iter().map(PeerAction::Connect));
    }

    /// The next moment `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|slot| match slot.link {
                Link::Down if slot.legs > 0 => slot.retry_at,
                Link::Connecting => None,
                _ if slot.legs == 0 => Some(slot.last_used + self.settings.idle_close),
                _ => None,
            })
            .min()
    }

    /// The next thing the shell must do.
    pub fn poll_action(&mut self) -> Option<PeerAction> {
        self.actions.pop_front()
    }
}

/// A token bucket over one connection's inbound audio datagrams: a burst of one second's
/// allowance, refilled continuously.
#[derive(Debug, Clone)]
pub struct FrameBudget {
    per_sec: u32,
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    /// A full bucket of `per_sec` tokens.
    pub fn new(now: Instant, per_sec: u32) -> Self {
        Self {
            per_sec,
            tokens: f64::from(per_sec),
            at: now,
        }
    }

    /// Takes one token: false means the datagram is dropped (and counted by the shell).
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now.max(self.at);
        let cap = f64::from(self.per_sec);
        self.tokens = (self.tokens + elapsed * cap).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled by `now`: forgetting it loses nothing, since a new one
    /// starts full.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let cap = f64::from(self.per_sec);
        self.tokens + elapsed * cap >= cap
    }
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;

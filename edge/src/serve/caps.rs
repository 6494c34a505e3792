//! How many connections one client IP, and everyone together, may hold open, sans-IO.
//!
//! A slow or idle connection costs a file descriptor and a task until a timeout closes it; the
//! timeouts bound how long, these caps bound how many. [`ConnectionCaps`] is the bookkeeping:
//! a count per IP and a total, a connection over either cap refused at once, and refusals
//! counted and reported at most every [`REPORT_INTERVAL`] so that a flood cannot flood the
//! log too. [`ConnectionGate`] is the thin shared shell the listeners use: a mutex around the
//! caps and a [`Permit`] that gives the slot back when the connection's socket is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refusals are logged at most this often (with the counts since the last report).
pub(super) const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its IP already holds `max_per_ip` connections.
    PerIp,
    /// The listener already holds `max_total` connections.
    Total,
}

/// Refused connections, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    /// Refused for the per-IP cap.
    pub per_ip: u64,
    /// Refused for the total cap.
    pub total: u64,
}

/// The caps and the open connections they count.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_per_ip: u32,
    max_total: u32,
    by_ip: HashMap<IpAddr, u32>,
    open: u32,
    refused: RefusalCounts,
    unreported: RefusalCounts,
    last_report: Option<Instant>,
}

impl ConnectionCaps {
    /// No connections yet; at most `max_per_ip` from one IP and `max_total` in all.
    pub fn new(max_per_ip: u32, max_total: u32) -> Self {
        Self {
            max_per_ip,
            max_total,
            by_ip: HashMap::new(),
            open: 0,
            refused: RefusalCounts::default(),
            unreported: RefusalCounts::default(),
            last_report: None,
        }
    }

    /// Counts a new connection from `ip`, or refuses it (and counts the refusal).
    pub fn try_open(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let from_ip = self.by_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if self.open >= self.max_total {
            Some(Refusal::Total)
        } else if from_ip >= self.max_per_ip {
            Some(Refusal::PerIp)
        } else {
            None
        };
        match refusal {
            Some(refusal) => {
                for counts in [&mut self.refused, &mut self.unreported] {
                    match refusal {
                        Refusal::PerIp => counts.per_ip += 1,
                        Refusal::Total => counts.total += 1,
                    }
                }
                Err(refusal)
            }
            None => {
                self.by_ip.insert(ip, from_ip + 1);
                self.open += 1;
                Ok(())
            }
        }
    }

    /// A connection from `ip` counted by [`try_open`](Self::try_open) has closed.
    pub fn close(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Some(count) = self.by_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.by_ip.remove(&ip);
            }
            self.open = self.open.saturating_sub(1);
        }
    }

    /// Open connections in all.
    pub fn open(&self) -> u32 {
        self.open
    }

    /// Open connections from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.by_ip.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// Every refusal since start.
    pub fn refused(&self) -> RefusalCounts {
        self.refused
    }

    /// The refusals since the last report, if there are any and the last report is at least
    /// [`REPORT_INTERVAL`] old: what a rate-limited log line says.
    pub fn poll_report(&mut self, now: Instant) -> Option<RefusalCounts> {
        if self.unreported == RefusalCounts::default() {
            return None;
        }
        if self
            .last_report
            .is_some_and(|last| now.saturating_duration_since(last) < REPORT_INTERVAL)
        {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

/// [`ConnectionCaps`] shared by a listener and its connections.
#[derive(Debug, Clone)]
pub struct ConnectionGate {
    caps: Arc<Mutex<ConnectionCaps>>,
    /// Names the listener in log lines (`"REST API"`, `"SIP TCP"`).
    listener: &'static str,
}

impl ConnectionGate {
    /// A gate for `listener` with these caps.
    pub fn new(listener: &'static str, max_per_ip: u32, max_total: u32) -> Self {
        Self {
            caps: Arc::new(Mutex::new(ConnectionCaps::new(max_per_ip, max_total))),
            listener,
        }
    }

    /// A slot for a connection from `peer`, held until the [`Permit`] is dropped; or the
    /// refusal, logged at warn level at most every [`REPORT_INTERVAL`].
    pub fn admit(&self, peer: SocketAddr) -> Result<Permit, Refusal> {
        let mut caps = self.lock();
        match caps.try_open(peer.ip()) {
            Ok(()) => Ok(Permit {
                caps: self.caps.clone(),
                ip: peer.ip(),
            }),
            Err(refusal) => {
                if let Some(counts) = caps.poll_report(Instant::now()) {
                    tracing::warn!(
                        listener = self.listener,
                        refused_per_ip = counts.per_ip,
                        refused_total = counts.total,
                        open = caps.open(),
                        last_peer = %peer,
                        "connections refused over the connection caps"
                    );
                }
                Err(refusal)
            }
        }
    }

    /// Every refusal since start.
    pub fn refused(&self) -> RefusalCounts {
        self.lock().refused()
    }

    /// Open connections in all.
    pub fn open(&self) -> u32 {
        self.lock().open()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionCaps> {
        // The counts stay consistent even if a holder panicked: every update is one statement.
        self.caps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's slot under the caps; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    caps: Arc<Mutex<ConnectionCaps>>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.caps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .close(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_ip_over_its_cap_is_refused_while_another_ip_is_admitted() {
        let mut caps = ConnectionCaps::new(2, 10);
        assert_eq!(caps.try_open(ip(1)), Ok(()));
        assert_eq!(caps.try_open(ip(1)), Ok(()));
        assert_eq!(caps.try_open(ip(1)), Err(Refusal::PerIp));
        assert_eq!(caps.try_open(ip(2)), Ok(()));
        assert_eq!(caps.open(), 3);
        assert_eq!(caps.open_from(ip(1)), 2);
        assert_eq!(caps.refused().per_ip, 1);
    }

    #[test]
    fn the_total_cap_refuses_every_ip() {
        let mut caps = ConnectionCaps::new(5, 3);
        for last in 1..=3 {
            assert_eq!(caps.try_open(ip(last)), Ok(()));
        }
        assert_eq!(caps.try_open(ip(9)), Err(Refusal::Total));
        assert_eq!(
            caps.refused(),
            RefusalCounts {
                per_ip: 0,
                total: 1
            }
        );
    }

    #[test]
    fn closing_frees_the_slot_and_forgets_an_ip_with_none_open() {
        let mut caps = ConnectionCaps::new(1, 1);
        assert_eq!(caps.try_open(ip(1)), Ok(()));
        assert_eq!(caps.try_open(ip(1)), Err(Refusal::Total));
        caps.close(ip(1));
        assert_eq!(caps.open(), 0);
        assert!(caps.by_ip.is_empty());
        assert_eq!(caps.try_open(ip(1)), Ok(()));
    }

    #[test]
    fn closing_an_ip_never_counted_changes_nothing() {
        let mut caps = ConnectionCaps::new(1, 5);
        assert_eq!(caps.try_open(ip(1)), Ok(()));
        caps.close(ip(2));
        assert_eq!(caps.open(), 1);
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let mut caps = ConnectionCaps::new(1, 5);
        assert_eq!(caps.try_open(ip(1)), Ok(()));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(caps.try_open(mapped), Err(Refusal::PerIp));
    }

    #[test]
    fn refusals_are_reported_at_most_once_per_interval() {
        let start = Instant::now();
        let mut caps = ConnectionCaps::new(0, 5);
        assert_eq!(caps.poll_report(start), None);
        let _ = caps.try_open(ip(1));
        let _ = caps.try_open(ip(1));
        assert_eq!(
            caps.poll_report(start),
            Some(RefusalCounts {
                per_ip: 2,
                total: 0
            })
        );
        let _ = caps.try_open(ip(1));
        assert_eq!(caps.poll_report(start + Duration::from_secs(1)), None);
        assert_eq!(
            caps.poll_report(start + REPORT_INTERVAL),
            Some(RefusalCounts {
                per_ip: 1,
                total: 0
            })
        );
        assert_eq!(caps.refused().per_ip, 3);
    }

    #[test]
    fn a_permit_gives_its_slot_back_when_dropped() {
        let gate = ConnectionGate::new("test", 1, 5);
        let peer = SocketAddr::from(([127, 0, 0, 1], 5000));
        let permit = gate.admit(peer).unwrap();
        assert_eq!(gate.admit(peer).err(), Some(Refusal::PerIp));
        drop(permit);
        assert_eq!(gate.open(), 0);
        assert!(gate.admit(peer).is_ok());
    }
}

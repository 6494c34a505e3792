//! Which address a call's media comes from and goes to: the latch of symmetric RTP, sans-IO.
//!
//! A caller behind NAT announces in its SDP an address we cannot reach; its packets arrive from
//! the address its NAT chose. So we answer where the caller's packets really come from — but
//! only the caller's. Without authenticated media (no SRTP on plain SIP trunks), anyone who
//! guesses a call's port could otherwise send one packet and take the stream over: hear the
//! agent and speak in the caller's place.
//!
//! The policy, and why:
//! - **The first valid RTP packet latches** (valid: it parses and carries a negotiated payload
//!   type, so junk and port scans do not). The caller starts sending as soon as it has our
//!   answer, so its packets are the first to reach a port nobody else was told about; a time
//!   or packet-count window would only widen the door for a stranger without helping a real
//!   caller, whose address does not change in the first second.
//! - **After that, packets from any other address are dropped and counted** ([`foreign`]),
//!   RTP and RTCP alike; they neither reach the jitter buffer nor keep a dead call alive.
//!   A caller whose NAT rebinds mid-call loses its audio and the call ends on RTP inactivity:
//!   the price of not letting anyone else in.
//! - **Except the address the SDP named**, which takes the stream back once: it is the one the
//!   caller's signalling vouched for, and this undoes a stranger who raced the caller's first
//!   packet (spraying our port range). A NATed caller's SDP names an address nobody else
//!   sends from.
//! - **RTCP is taken from the latched host, any port** (a NAT maps the RTCP port on its own;
//!   before the RTP stream latches, from the host the SDP named). Our reports go back to the
//!   port the first valid report came from, or to the SDP's RTCP port on the latched host.
//!
//! The call's media core ([`crate::call::media::CallMedia`]) asks this for a verdict on each
//! datagram and for where to send; a stream of foreign packets is reported at most once per
//! [`FOREIGN_REPORT_INTERVAL`] ([`SourceLatch::poll_foreign_report`]), for a warning in the
//! call's log that a flood cannot multiply.
//!
//! [`foreign`]: SourceLatch::foreign

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Shortest time between two reports of foreign packets on one call.
pub(crate) const FOREIGN_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What to do with a valid RTP packet, by where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceVerdict {
    /// From the latched address: take it.
    Accept,
    /// It latched the stream (the first packet, or the SDP's address taking it back): take
    /// it; our packets go to `to` from now on instead of `from`.
    Latched { from: SocketAddr, to: SocketAddr },
    /// From another address: drop it (counted).
    Foreign,
}

/// Foreign packets dropped since the last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ForeignReport {
    /// Datagrams dropped since the last report.
    pub dropped: u64,
    /// Where the latest of them came from.
    pub source: SocketAddr,
    /// The address the stream is latched to.
    pub latched: SocketAddr,
}

/// One call's media source and destinations.
#[derive(Debug, Clone)]
pub(crate) struct SourceLatch {
    /// The RTP address the SDP named.
    signalled: SocketAddr,
    /// The RTCP address the SDP named (the RTP one when multiplexed).
    signalled_rtcp: SocketAddr,
    rtcp_mux: bool,
    /// Where the stream comes from, once its first valid packet came.
    latched: Option<SocketAddr>,
    /// Where the first valid RTCP report from the latched host came from.
    latched_rtcp: Option<SocketAddr>,
    foreign: u64,
    unreported: u64,
    last_foreign: Option<SocketAddr>,
    last_report: Option<Instant>,
}

impl SourceLatch {
    /// A latch for media the SDP says comes from `rtp` (and `rtcp`, unless `rtcp_mux`).
    pub(crate) fn new(rtp: SocketAddr, rtcp: SocketAddr, rtcp_mux: bool) -> Self {
        Self {
            signalled: rtp,
            signalled_rtcp: if rtcp_mux { rtp } else { rtcp },
            rtcp_mux,
            latched: None,
            latched_rtcp: None,
            foreign: 0,
            unreported: 0,
            last_foreign: None,
            last_report: None,
        }
    }

    /// A valid RTP packet (a negotiated payload type) from `source`.
    pub(crate) fn handle_rtp(&mut self, source: SocketAddr) -> SourceVerdict {
        match self.latched {
            Some(latched) if latched == source => SourceVerdict::Accept,
            // The first packet, or the signalled address taking the stream back.
            None => self.latch(source),
            Some(_) if source == self.signalled => self.latch(source),
            Some(_) => {
                self.count_foreign(source);
                SourceVerdict::Foreign
            }
        }
    }

    /// Whether to take an RTCP datagram from `source` (a foreign one is counted).
    pub(crate) fn handle_rtcp(&mut self, source: SocketAddr) -> bool {
        let host = self.latched.unwrap_or(self.signalled).ip();
        if source.ip() == host {
            return true;
        }
        self.count_foreign(source);
        false
    }

    /// A valid RTCP report came from `source` (already taken by [`handle_rtcp`](Self::handle_rtcp)):
    /// the first one, on a call without RTCP multiplexing, sets where our reports go.
    pub(crate) fn rtcp_report_from(&mut self, source: SocketAddr) {
        if !self.rtcp_mux && self.latched_rtcp.is_none() {
            self.latched_rtcp = Some(source);
        }
    }

    /// Where our RTP packets go.
    pub(crate) fn rtp_destination(&self) -> SocketAddr {
        self.latched.unwrap_or(self.signalled)
    }

    /// Where our RTCP reports go.
    pub(crate) fn rtcp_destination(&self) -> SocketAddr {
        if self.rtcp_mux {
            return self.rtp_destination();
        }
        if let Some(rtcp) = self.latched_rtcp {
            return rtcp;
        }
        let mut to = self.signalled_rtcp;
        if let Some(latched) = self.latched {
            to.set_ip(latched.ip());
        }
        to
    }

    /// Datagrams dropped so far because they came from an address other than the latched one.
    pub(crate) fn foreign(&self) -> u64 {
        self.foreign
    }

    /// Foreign datagrams not yet reported, if there are some and the last report is at least
    /// [`FOREIGN_REPORT_INTERVAL`] old.
    pub(crate) fn poll_foreign_report(&mut self, now: Instant) -> Option<ForeignReport> {
        if self.unreported == 0 {
            return None;
        }
        if self
            .last_report
            .is_some_and(|last| now.saturating_duration_since(last) < FOREIGN_REPORT_INTERVAL)
        {
            return None;
        }
        let source = self.last_foreign?;
        self.last_report = Some(now);
        Some(ForeignReport {
            dropped: std::mem::take(&mut self.unreported),
            source,
            latched: self.rtp_destination(),
        })
    }

    fn latch(&mut self, source: SocketAddr) -> SourceVerdict {
        let from = self.rtp_destination();
        if self
            .latched_rtcp
            .is_some_and(|rtcp| rtcp.ip() != source.ip())
        {
            // Reports from another host are no longer the caller's.
            self.latched_rtcp = None;
        }
        self.latched = Some(source);
        SourceVerdict::Latched { from, to: source }
    }

    fn count_foreign(&mut self, source: SocketAddr) {
        self.foreign += 1;
        self.unreported += 1;
        self.last_foreign = Some(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    const SDP_RTP: &str = "192.0.2.10:4000";
    const SDP_RTCP: &str = "192.0.2.10:4001";

    fn latch() -> SourceLatch {
        SourceLatch::new(addr(SDP_RTP), addr(SDP_RTCP), false)
    }

    #[test]
    fn the_first_source_is_latched_even_if_it_differs_from_the_sdp_address() {
        let mut l = latch();
        assert_eq!(l.rtp_destination(), addr(SDP_RTP), "the SDP's until then");
        let natted = addr("203.0.113.5:61000");
        assert_eq!(
            l.handle_rtp(natted),
            SourceVerdict::Latched {
                from: addr(SDP_RTP),
                to: natted
            }
        );
        assert_eq!(l.handle_rtp(natted), SourceVerdict::Accept);
        assert_eq!(l.rtp_destination(), natted);
        assert_eq!(
            l.rtcp_destination(),
            addr("203.0.113.5:4001"),
            "the SDP's RTCP port on the latched host"
        );
        assert_eq!(l.foreign(), 0);
    }

    #[test]
    fn packets_from_a_second_address_after_latching_are_dropped_and_counted() {
        let mut l = latch();
        let caller = addr("203.0.113.5:61000");
        let stranger = addr("198.51.100.66:5004");
        l.handle_rtp(caller);
        for _ in 0..3 {
            assert_eq!(l.handle_rtp(stranger), SourceVerdict::Foreign);
        }
        // Even the caller's own host, from another port.
        assert_eq!(
            l.handle_rtp(addr("203.0.113.5:61002")),
            SourceVerdict::Foreign
        );
        assert_eq!(l.foreign(), 4);
        assert_eq!(
            l.rtp_destination(),
            caller,
            "our audio still goes to the caller"
        );
        assert_eq!(l.handle_rtp(caller), SourceVerdict::Accept);
    }

    #[test]
    fn the_sdp_address_takes_back_a_stream_a_stranger_latched_first() {
        let mut l = latch();
        let stranger = addr("198.51.100.66:5004");
        l.handle_rtp(stranger);
        assert_eq!(
            l.handle_rtp(addr(SDP_RTP)),
            SourceVerdict::Latched {
                from: stranger,
                to: addr(SDP_RTP)
            }
        );
        assert_eq!(l.handle_rtp(stranger), SourceVerdict::Foreign);
        assert_eq!(l.rtp_destination(), addr(SDP_RTP));
    }

    #[test]
    fn rtcp_is_taken_from_the_latched_host_and_answered_where_the_first_report_came_from() {
        let mut l = latch();
        assert!(l.handle_rtcp(addr("192.0.2.10:9999")), "the SDP's host");
        l.rtcp_report_from(addr("192.0.2.10:9999"));
        assert_eq!(l.rtcp_destination(), addr("192.0.2.10:9999"));
        assert!(!l.handle_rtcp(addr("198.51.100.66:5005")));
        let caller = addr("203.0.113.5:61000");
        l.handle_rtp(caller);
        assert_eq!(
            l.rtcp_destination(),
            addr("203.0.113.5:4001"),
            "the stream moved host: reports follow it"
        );
        assert!(
            !l.handle_rtcp(addr("192.0.2.10:4001")),
            "not the SDP's host any more"
        );
        let rtcp = addr("203.0.113.5:61001");
        assert!(l.handle_rtcp(rtcp));
        l.rtcp_report_from(rtcp);
        assert_eq!(l.rtcp_destination(), rtcp);
        // A later report from another port of the same host is read, but does not move ours.
        assert!(l.handle_rtcp(addr("203.0.113.5:7000")));
        l.rtcp_report_from(addr("203.0.113.5:7000"));
        assert_eq!(l.rtcp_destination(), rtcp);
        assert_eq!(l.foreign(), 2);
    }

    #[test]
    fn multiplexed_rtcp_goes_with_the_rtp_stream() {
        let mut l = SourceLatch::new(addr(SDP_RTP), addr(SDP_RTP), true);
        let caller = addr("203.0.113.5:61000");
        l.handle_rtp(caller);
        l.rtcp_report_from(caller);
        assert_eq!(l.rtcp_destination(), caller);
    }

    #[test]
    fn a_flood_of_foreign_packets_is_reported_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut l = latch();
        assert_eq!(l.poll_foreign_report(t0), None);
        let caller = addr("203.0.113.5:61000");
        let stranger = addr("198.51.100.66:5004");
        l.handle_rtp(caller);
        l.handle_rtp(stranger);
        assert_eq!(
            l.poll_foreign_report(t0),
            Some(ForeignReport {
                dropped: 1,
                source: stranger,
                latched: caller
            }),
            "the first at once"
        );
        for _ in 0..500 {
            l.handle_rtp(stranger);
        }
        assert_eq!(l.poll_foreign_report(t0 + Duration::from_secs(9)), None);
        let report = l
            .poll_foreign_report(t0 + FOREIGN_REPORT_INTERVAL)
            .expect("the rest after the interval");
        assert_eq!(report.dropped, 500);
        assert_eq!(
            l.poll_foreign_report(t0 + 3 * FOREIGN_REPORT_INTERVAL),
            None
        );
        assert_eq!(l.foreign(), 501);
    }
}

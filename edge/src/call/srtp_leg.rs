//! A call leg's SRTP (RFC 3711): what it receives is checked and decrypted before the media
//! core sees it, and what the core paces out is encrypted on its way to the socket. The
//! transform itself is the sans-IO [`SrtpSession`]; this is the leg's end of it — a reused
//! buffer for outgoing packets, and the refusals counted (`/metrics`:
//! `freya_edge_srtp_packets_dropped_total{reason}`) and logged at most once a second per call,
//! so a flood of junk, a wrong key or replays costs a counter, never a log line per packet.

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::metrics::SrtpDropCounter;
use crate::rtp::packet::is_rtcp;
use crate::rtp::srtp::{SrtpError, SrtpSession};

/// The longest a call stays quiet about refused packets while they keep coming.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// One leg's SRTP state.
pub struct SrtpLeg {
    session: Box<SrtpSession>,
    /// Outgoing packets are copied here and protected in place (no allocation once grown).
    out: Vec<u8>,
    auth: Counter,
    replay: Counter,
    malformed: Counter,
    refused_since_warning: u64,
    last_warning: Option<Instant>,
}

impl SrtpLeg {
    /// The leg's SRTP, counting refusals in `dropped`.
    pub fn new(session: Box<SrtpSession>, dropped: &SrtpDropCounter) -> Self {
        let counter = |reason: &str| {
            dropped
                .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
                .clone()
        };
        Self {
            session,
            out: Vec::with_capacity(1500),
            auth: counter("auth"),
            replay: counter("replay"),
            malformed: counter("malformed"),
            refused_since_warning: 0,
            last_warning: None,
        }
    }

    /// Checks and decrypts a received datagram (SRTP, or SRTCP by its packet type) in place:
    /// the plain packet, or `None` when it was refused (counted, and dropped by the caller).
    pub fn open<'a>(&mut self, now: Instant, datagram: &'a mut [u8]) -> Option<&'a [u8]> {
        let opened = if is_rtcp(datagram) {
            self.session.unprotect_rtcp(datagram)
        } else {
            self.session.unprotect_rtp(datagram)
        };
        match opened {
            Ok(len) => datagram.get(..len),
            Err(e) => {
                self.refused(now, e);
                None
            }
        }
    }

    /// `packet` (RTP) protected for the wire; `None` if it is not an RTP packet we can protect.
    pub fn seal_rtp(&mut self, packet: &[u8]) -> Option<&[u8]> {
        self.out.clear();
        self.out.extend_from_slice(packet);
        self.session.protect_rtp(&mut self.out).ok()?;
        Some(&self.out)
    }

    /// `report` (RTCP) protected for the wire.
    pub fn seal_rtcp(&mut self, report: &[u8]) -> Option<&[u8]> {
        self.out.clear();
        self.out.extend_from_slice(report);
        self.session.protect_rtcp(&mut self.out).ok()?;
        Some(&self.out)
    }

    fn refused(&mut self, now: Instant, error: SrtpError) {
        match error {
            SrtpError::AuthenticationFailed => self.auth.inc(),
            SrtpError::Replayed | SrtpError::TooOld => self.replay.inc(),
            SrtpError::Malformed => self.malformed.inc(),
        };
        self.refused_since_warning += 1;
        if self
            .last_warning
            .is_none_or(|at| now.saturating_duration_since(at) >= WARNING_INTERVAL)
        {
            tracing::warn!(
                refused = self.refused_since_warning,
                last = error.label(),
                "SRTP packets refused and dropped"
            );
            self.last_warning = Some(now);
            self.refused_since_warning = 0;
        }
    }
}

//! When one connection has waited too long, sans-IO: the header (message) timeout and the idle
//! timeout of a request/response stream.
//!
//! A connection is in one of three phases. **Idle**: nothing is in flight and no byte of the
//! next message has arrived; it closes `idle` after its last activity (keep-alive). **Partial**:
//! bytes of a message arrived but not the whole head (HTTP) or the whole message (SIP over TCP);
//! it closes `message` after that message began — what stops slowloris, which trickles a header
//! forever. **Busy**: a request is being answered; no deadline here (the handler's own limits
//! apply). The shell feeds reads, writes and message boundaries in with `now` and sleeps until
//! [`ConnectionClock::poll_timeout`]; a `true` from a `handle_*` means that deadline moved.

use std::time::{Duration, Instant};

/// The two limits of a [`ConnectionClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// Longest a message may take from its first byte to the end of its head (HTTP) or of the
    /// whole message (SIP over TCP).
    pub message: Duration,
    /// Longest a connection may stay open with nothing in flight and nothing arriving.
    pub idle: Duration,
}

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A message began and did not complete within [`ConnectionTimeouts::message`].
    MessageIncomplete,
    /// Nothing happened for [`ConnectionTimeouts::idle`].
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle { since: Instant },
    Partial { since: Instant },
    Busy { requests: u32 },
}

/// One connection's phase and deadline.
#[derive(Debug, Clone)]
pub struct ConnectionClock {
    timeouts: ConnectionTimeouts,
    phase: Phase,
}

impl ConnectionClock {
    /// A connection opened at `now`, idle until its first byte.
    pub fn new(now: Instant, timeouts: ConnectionTimeouts) -> Self {
        Self {
            timeouts,
            phase: Phase::Idle { since: now },
        }
    }

    /// Bytes arrived. Outside a request they begin the next message's head.
    pub fn handle_read(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Idle { .. } => {
                self.phase = Phase::Partial { since: now };
                true
            }
            Phase::Partial { .. } | Phase::Busy { .. } => false,
        }
    }

    /// Bytes went out: on an idle connection that is activity too (a response still being
    /// flushed, or a SIP message we sent on a connection we keep).
    pub fn handle_written(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Idle { .. } => {
                self.phase = Phase::Idle { since: now };
                true
            }
            Phase::Partial { .. } | Phase::Busy { .. } => false,
        }
    }

    /// A request's head is complete and it is being answered (HTTP).
    pub fn handle_request_start(&mut self) -> bool {
        match self.phase {
            Phase::Busy { requests } => {
                self.phase = Phase::Busy {
                    requests: requests.saturating_add(1),
                };
                false
            }
            Phase::Idle { .. } | Phase::Partial { .. } => {
                self.phase = Phase::Busy { requests: 1 };
                true
            }
        }
    }

    /// A request's response is complete (its body sent or dropped); with none left in flight
    /// the connection is idle from `now`.
    pub fn handle_request_end(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Busy { requests } if requests > 1 => {
                self.phase = Phase::Busy {
                    requests: requests - 1,
                };
                false
            }
            Phase::Busy { .. } => {
                self.phase = Phase::Idle { since: now };
                true
            }
            Phase::Idle { .. } | Phase::Partial { .. } => false,
        }
    }

    /// A stream was cut into messages (SIP over TCP): `completed` says whether a whole message
    /// came out of the last read, `partial` whether bytes of an unfinished one remain. A
    /// completed message restarts the clock of the one after it; leftover CRLF keep-alives
    /// leave nothing partial.
    pub fn handle_framed(&mut self, now: Instant, completed: bool, partial: bool) -> bool {
        let next = match (partial, self.phase) {
            (false, _) => Phase::Idle { since: now },
            (true, Phase::Partial { since }) if !completed => Phase::Partial { since },
            (true, _) => Phase::Partial { since: now },
        };
        let moved = next != self.phase;
        self.phase = next;
        moved
    }

    /// When this connection's time runs out, if it can.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle { since } => Some(since + self.timeouts.idle),
            Phase::Partial { since } => Some(since + self.timeouts.message),
            Phase::Busy { .. } => None,
        }
    }

    /// Whether the connection should be closed at `now`, and why.
    pub fn expired(&self, now: Instant) -> Option<Expiry> {
        let deadline = self.poll_timeout()?;
        if now < deadline {
            return None;
        }
        Some(match self.phase {
            Phase::Partial { .. } => Expiry::MessageIncomplete,
            Phase::Idle { .. } | Phase::Busy { .. } => Expiry::Idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
        message: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_connection_that_sends_nothing_closes_after_the_idle_timeout() {
        let start = Instant::now();
        let clock = ConnectionClock::new(start, TIMEOUTS);
        assert_eq!(clock.poll_timeout(), Some(start + secs(60)));
        assert_eq!(clock.expired(start + secs(59)), None);
        assert_eq!(clock.expired(start + secs(60)), Some(Expiry::Idle));
    }

    #[test]
    fn a_trickled_head_closes_after_the_message_timeout_however_many_bytes_arrive() {
        let start = Instant::now();
        let mut clock = ConnectionClock::new(start, TIMEOUTS);
        assert!(clock.handle_read(start + secs(1)));
        for n in 2..11 {
            assert!(!clock.handle_read(start + secs(n)));
        }
        assert_eq!(clock.poll_timeout(), Some(start + secs(11)));
        assert_eq!(
            clock.expired(start + secs(11)),
            Some(Expiry::MessageIncomplete)
        );
    }

    #[test]
    fn a_request_being_answered_has_no_deadline_and_idles_from_its_end() {
        let start = Instant::now();
        let mut clock = ConnectionClock::new(start, TIMEOUTS);
        clock.handle_read(start);
        assert!(clock.handle_request_start());
        assert_eq!(clock.poll_timeout(), None);
        assert_eq!(clock.expired(start + secs(3600)), None);
        assert!(clock.handle_request_end(start + secs(3600)));
        assert_eq!(clock.poll_timeout(), Some(start + secs(3660)));
    }

    #[test]
    fn body_bytes_of_a_request_in_flight_do_not_start_a_head() {
        let start = Instant::now();
        let mut clock = ConnectionClock::new(start, TIMEOUTS);
        clock.handle_request_start();
        assert!(!clock.handle_read(start + secs(1)));
        assert_eq!(clock.poll_timeout(), None);
    }

    #[test]
    fn pipelined_requests_keep_the_connection_busy_until_the_last_ends() {
        let start = Instant::now();
        let mut clock = ConnectionClock::new(start, TIMEOUTS);
        clock.handle_request_start();
        clock.handle_request_start();
        assert!(!clock.handle_request_end(start + secs(1)));
        assert_eq!(clock.poll_timeout(), None);
        assert!(clock.handle_request_end(start + secs(2)));
        assert_eq!(clock.poll_timeout(), Some(start + secs(62)));
    }

    #[test]
    fn writes_on_an_idle_connection_push_the_idle_deadline() {
        let start = Instant::now();
        let mut clock = ConnectionClock::new(start, TIMEOUTS);
        assert!(clock.handle_written(start + secs(30)));
        assert_eq!(clock.poll_timeout(), Some(start + secs(90)));
    }

    #[test]
    fn framed_messages_restart_the_clock_and_keepalives_leave_the_connection_idle() {
        let start = Instant::now();
        let mut clock = ConnectionClock::new(start, TIMEOUTS);
        // Half a message.
        clock.handle_read(start + secs(1));
        assert!(!clock.handle_framed(start + secs(1), false, true));
        // More of it, still incomplete: the clock keeps its start.
        clock.handle_read(start + secs(5));
        clock.handle_framed(start + secs(5), false, true);
        assert_eq!(clock.poll_timeout(), Some(start + secs(11)));
        // It completes, and the next one begins in the same read.
        clock.handle_read(start + secs(8));
        assert!(clock.handle_framed(start + secs(8), true, true));
        assert_eq!(clock.poll_timeout(), Some(start + secs(18)));
        // A CRLF keep-alive after a complete message.
        clock.handle_read(start + secs(9));
        assert!(clock.handle_framed(start + secs(9), true, false));
        assert_eq!(clock.poll_timeout(), Some(start + secs(69)));
        assert_eq!(clock.expired(start + secs(69)), Some(Expiry::Idle));
    }
}

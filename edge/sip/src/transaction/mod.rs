//! SIP transactions (RFC 3261 section 17, with the RFC 6026 "Accepted" states): the layer that
//! makes one request and its responses reliable over UDP.
//!
//! Each of the four machines is sans-IO in the quinn-proto style: feed it messages and the
//! current time (`handle_request` / `handle_response`, `respond`, `handle_timeout`), then drain
//! what it wants done (`poll_transmit`, `poll_timeout`, `poll_event`). The owner routes incoming
//! messages to a machine by [`TransactionKey`] and drops the machine after
//! [`TransactionEvent::Terminated`]. Over a reliable transport (TCP) nothing is retransmitted and
//! the wait-for-retransmissions timers (D, I, J, K) are zero, as the RFC says.

/// The owner-facing methods all four machines share, served by their [`Base`] field `base`.
macro_rules! base_methods {
    ($state:ty) => {
        /// The key this transaction is matched by.
        pub fn key(&self) -> &TransactionKey {
            &self.base.key
        }

        /// The current state.
        pub fn state(&self) -> $state {
            self.base.state
        }

        /// The next message to send, if any.
        pub fn poll_transmit(&mut self) -> Option<Transmit> {
            self.base.out.poll_transmit()
        }

        /// The next event for the TU, if any.
        pub fn poll_event(&mut self) -> Option<TransactionEvent> {
            self.base.out.poll_event()
        }
    };
}

/// What the two client machines do alike over their `base` and [`RequestClock`] field `clock`.
macro_rules! client_methods {
    ($state:ident) => {
        /// When [`Self::handle_timeout`] must next be called.
        pub fn poll_timeout(&self) -> Option<Instant> {
            self.clock.next()
        }

        fn terminate(&mut self) {
            self.clock.stop();
            self.base.terminate($state::Terminated);
        }
    };
}

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;

pub use client_invite::{build_ack, build_cancel, ClientInviteState, ClientInviteTransaction};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTransaction};
pub use key::TransactionKey;
pub use server_invite::{ServerInviteState, ServerInviteTransaction};
pub use server_non_invite::{ServerNonInviteState, ServerNonInviteTransaction};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::{Method, Request, Response};
use thiserror::Error;

use crate::message::SipError;
use crate::via::TopVia;

/// The RFC 3261 timer base values; every transaction timer derives from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip time estimate (500 ms): first retransmission interval.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// How long an INVITE server transaction waits for the TU before sending 100 Trying itself
    /// (RFC 3261 section 17.2.1 suggests 200 ms).
    pub trying: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying: Duration::from_millis(200),
        }
    }
}

impl Timers {
    /// 64*T1: timers B, F, H, J, L and M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: how long an INVITE client transaction absorbs retransmitted error responses
    /// over UDP; at least 32 s whatever T1 is (RFC 3261 section 17.1.1.2).
    pub fn timer_d(&self) -> Duration {
        self.timeout().max(Duration::from_secs(32))
    }
}

/// Bytes a transaction wants sent, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer address: the next hop for a request, the Via-derived address for a response.
    pub dest: SocketAddr,
    /// One complete serialized SIP message.
    pub bytes: Vec<u8>,
}

/// What a transaction tells its owner (the transaction user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A new request: emitted once, when a server transaction is created, never for a
    /// retransmission.
    Request(Request),
    /// A response for a client transaction's request (provisional or final; for INVITE, each
    /// retransmitted 2xx too, so the TU can re-send its ACK).
    Response(Response),
    /// The ACK for our 2xx to an INVITE arrived.
    Ack(Request),
    /// No final response came in time (timer B or F).
    Timeout,
    /// Our final response to an INVITE was never acknowledged (timer H, or 64*T1 of 2xx
    /// retransmissions).
    AckTimeout,
    /// The transaction is over and can be dropped.
    Terminated,
}

/// A transaction was asked to do something its state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransactionError {
    /// The message itself is unusable.
    #[error(transparent)]
    Sip(#[from] SipError),
    /// The request's method does not suit this kind of transaction.
    #[error("a {found} request cannot start this transaction")]
    WrongMethod {
        /// The method received.
        found: rsip::Method,
    },
    /// The TU responded after the final response was already sent.
    #[error("final response already sent")]
    FinalAlreadySent,
}

/// A retransmission schedule: fires at `at`, then doubles its interval up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    at: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    fn start(now: Instant, first: Duration, cap: Option<Duration>) -> Self {
        Self {
            at: now + first,
            interval: first,
            cap,
        }
    }

    /// Due now? If so, schedules the next firing and returns true.
    fn fire(&mut self, now: Instant) -> bool {
        if now < self.at {
            return false;
        }
        let doubled = self.interval * 2;
        self.interval = self.cap.map_or(doubled, |cap| doubled.min(cap));
        self.at = now + self.interval;
        true
    }
}

/// What a transaction has for its owner: messages for its one peer, events for the TU. All four
/// machines queue and drain through it the same way.
#[derive(Debug)]
struct Outbox {
    /// The peer address every message of the transaction goes to.
    dest: SocketAddr,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl Outbox {
    fn new(dest: SocketAddr) -> Self {
        Self {
            dest,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Queues `bytes` for the peer.
    fn send(&mut self, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            dest: self.dest,
            bytes,
        });
    }

    /// Queues an event for the TU.
    fn event(&mut self, event: TransactionEvent) {
        self.events.push_back(event);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }
}

/// A client transaction's clock (RFC 3261 section 17.1): the request's retransmissions (timer A
/// or E, over UDP only), the wait for its final response (B or F), then the wait that absorbs
/// retransmitted responses before the end (D, M or K).
#[derive(Debug)]
struct RequestClock {
    retransmit: Option<Backoff>,
    give_up: Option<Instant>,
    linger: Option<Instant>,
}

/// What came due on a [`RequestClock`].
#[derive(Debug, Clone, Copy)]
struct RequestDue {
    /// The request is to be sent again.
    resend: bool,
    /// No final response came in time.
    gave_up: bool,
    /// The wait after the final response is over.
    lingered: bool,
}

impl RequestClock {
    /// The clock of a request sent at `now`: retransmitted after T1, doubling up to `cap`,
    /// unless the transport is reliable; given up after 64*T1.
    fn start(now: Instant, timers: Timers, reliable: bool, cap: Option<Duration>) -> Self {
        Self {
            retransmit: (!reliable).then(|| Backoff::start(now, timers.t1, cap)),
            give_up: Some(now + timers.timeout()),
            linger: None,
        }
    }

    /// A response stops the retransmissions and the wait for one.
    fn answered(&mut self) {
        self.retransmit = None;
        self.give_up = None;
    }

    /// Retransmissions go on, but the next one not before `at`.
    fn resend_at(&mut self, at: Instant) {
        if let Some(retransmit) = self.retransmit.as_mut() {
            retransmit.at = at;
        }
    }

    /// The transaction ends at `at`, absorbing retransmitted responses until then.
    fn linger_until(&mut self, at: Instant) {
        self.linger = Some(at);
    }

    /// What is due at `now`; a due retransmission is rescheduled.
    fn fire(&mut self, now: Instant) -> RequestDue {
        RequestDue {
            resend: self.retransmit.as_mut().is_some_and(|r| r.fire(now)),
            gave_up: due(self.give_up, now),
            lingered: due(self.linger, now),
        }
    }

    fn next(&self) -> Option<Instant> {
        earliest([self.retransmit.map(|r| r.at), self.give_up, self.linger])
    }

    fn stop(&mut self) {
        *self = Self {
            retransmit: None,
            give_up: None,
            linger: None,
        };
    }
}

/// Ends a client transaction when its clock says so: no final response in time reports
/// [`TransactionEvent::Timeout`] first; the end of the wait after one ends it quietly.
fn end_when_due<S: Copy + PartialEq>(
    base: &mut Base<S>,
    clock: &mut RequestClock,
    due: RequestDue,
    terminated: S,
) {
    if due.gave_up {
        base.out.event(TransactionEvent::Timeout);
    }
    if due.gave_up || due.lingered {
        clock.stop();
        base.terminate(terminated);
    }
}

/// What every transaction holds whatever its kind: the key it is matched by, where its state
/// machine stands, the timer values, whether the transport is reliable, and its outbox.
#[derive(Debug)]
struct Base<S> {
    key: TransactionKey,
    state: S,
    timers: Timers,
    reliable: bool,
    out: Outbox,
}

impl<S: Copy + PartialEq> Base<S> {
    fn new(
        key: TransactionKey,
        state: S,
        timers: Timers,
        reliable: bool,
        dest: SocketAddr,
    ) -> Self {
        Self {
            key,
            state,
            timers,
            reliable,
            out: Outbox::new(dest),
        }
    }

    /// The base of a client transaction for our `request` (an INVITE one when `invite`), sent
    /// to `dest`: refused when the method cannot start it or the request has no key.
    fn client(
        request: &Request,
        invite: bool,
        state: S,
        timers: Timers,
        reliable: bool,
        dest: SocketAddr,
    ) -> Result<Self, TransactionError> {
        check_method(request, invite)?;
        let key = TransactionKey::for_outgoing(request)?;
        Ok(Self::new(key, state, timers, reliable, dest))
    }

    /// The base of a server transaction for a `request` from `source` (an INVITE one when
    /// `invite`), answering where RFC 3261 section 18.2.2 says.
    fn server(
        request: &Request,
        invite: bool,
        state: S,
        timers: Timers,
        reliable: bool,
        source: SocketAddr,
    ) -> Result<Self, TransactionError> {
        check_method(request, invite)?;
        let key = TransactionKey::server(request)?;
        let dest = response_destination(request, source, reliable)?;
        Ok(Self::new(key, state, timers, reliable, dest))
    }

    /// Moves to the machine's `terminated` state and tells the TU, once.
    fn terminate(&mut self, terminated: S) {
        if self.state != terminated {
            self.state = terminated;
            self.out.event(TransactionEvent::Terminated);
        }
    }
}

/// Refuses a request that cannot start this kind of transaction: only an INVITE starts an
/// INVITE transaction, and neither an INVITE nor an ACK (which has none) a non-INVITE one.
fn check_method(request: &Request, invite: bool) -> Result<(), TransactionError> {
    let fits = if invite {
        request.method == Method::Invite
    } else {
        !matches!(request.method, Method::Invite | Method::Ack)
    };
    if fits {
        Ok(())
    } else {
        Err(TransactionError::WrongMethod {
            found: request.method,
        })
    }
}

/// Where a server transaction's responses go (RFC 3261 section 18.2.2): back where the request
/// came from over a reliable transport, else to the address its top Via names.
fn response_destination(
    request: &Request,
    source: SocketAddr,
    reliable: bool,
) -> Result<SocketAddr, SipError> {
    if reliable {
        Ok(source)
    } else {
        Ok(TopVia::of(&request.headers)?.response_destination(source))
    }
}

/// True when `at` is set and has been reached.
fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now >= at)
}

/// The earliest of some optional deadlines.
fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared fixtures for the transaction tests.
    use super::*;
    use crate::message::parse_message;
    use rsip::SipMessage;

    pub(crate) fn peer() -> SocketAddr {
        "192.0.2.10:5060".parse().unwrap()
    }

    pub(crate) fn request(method: &str, branch: &str) -> Request {
        let raw = format!(
            "{method} sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@example.com>\r\n\
From: <sip:alice@example.org>;tag=a1\r\n\
Call-ID: call-1\r\n\
CSeq: 7 {method}\r\n\
Content-Length: 0\r\n\r\n"
        );
        match parse_message(raw.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    /// A machine's constructor, as [`start`] takes it.
    pub(crate) type New<T> =
        fn(Instant, Request, SocketAddr, bool, Timers) -> Result<T, TransactionError>;

    /// A transaction started at `t0` by a `method` request with `branch`, from or to [`peer`].
    pub(crate) fn start<T>(
        new: New<T>,
        method: &str,
        branch: &str,
        reliable: bool,
    ) -> (Instant, Request, T) {
        let t0 = Instant::now();
        let request = request(method, branch);
        let tx = new(t0, request.clone(), peer(), reliable, Timers::default()).unwrap();
        (t0, request, tx)
    }

    /// Everything a machine has queued to send, drained through its `poll_transmit`.
    pub(crate) fn drain(poll: impl FnMut() -> Option<Transmit>) -> Vec<Transmit> {
        std::iter::from_fn(poll).collect()
    }

    pub(crate) fn response_to(request: &Request, code: u16) -> Response {
        crate::response::build_response(request, crate::response::status(code, "Test"), Some("b2"))
            .unwrap()
    }

    pub(crate) fn status_of(transmit: &Transmit) -> Option<u16> {
        match parse_message(&transmit.bytes) {
            Ok(SipMessage::Response(r)) => Some(r.status_code.code()),
            _ => None,
        }
    }

    pub(crate) fn method_of(transmit: &Transmit) -> Option<rsip::Method> {
        match parse_message(&transmit.bytes) {
            Ok(SipMessage::Request(r)) => Some(r.method),
            _ => None,
        }
    }

    pub(crate) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}

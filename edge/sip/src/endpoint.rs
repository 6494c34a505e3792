//! The edge's SIP user agent server, sans-IO: it owns the transactions and dialogs of every
//! inbound call on one socket, routes each datagram to the right one, answers what needs no
//! decision (OPTIONS, BYE, CANCEL, retransmissions, requests for unknown dialogs) and reports the
//! rest as [`EndpointEvent`]s. Decisions — which agent answers, whether there is capacity, the
//! SDP answer — belong to the caller, which replies with [`SipEndpoint::answer`] or
//! [`SipEndpoint::reject`].
//!
//! It is also the user agent client of outbound calls ([`SipEndpoint::place_call`], in
//! `endpoint/outbound.rs`): an [`OutboundCall`] per call, routed responses by Call-ID, and the
//! answered call's dialog kept with the inbound ones, so BYE works both ways for both.
//!
//! Driven like every core here: `handle_message(now, peer, bytes)` (or `handle_datagram` for
//! UDP) and `handle_timeout(now)` in, `poll_transmit()`, `poll_timeout()` and `poll_event()`
//! out. Every transaction remembers the [`Transport`] it runs on, and so does every transmit.
//!
//! Everything that keeps time lives in a [`timers::Owners`] map, and its next deadline in one
//! [`timers::DeadlineQueue`]: each public entry point ends by re-registering the owners it
//! reached, `poll_timeout` is the queue's top, and `handle_timeout` visits only the owners
//! whose deadline passed (see `endpoint/timers.rs`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Header, Method, Request, Response, SipMessage};

use super::breaker::TrunkBreakers;
use super::dialog::{Dialog, DialogState};
use super::outbound::{OutboundCall, OutboundFailure};
use super::peer::{Outgoing, Peer, Transport};
use super::response::{bad_request, set_body, to_bytes};
use super::transaction::{
    ServerInviteTransaction, ServerNonInviteTransaction, Timers, TransactionKey,
};
use super::{parse_unvalidated, validate};

/// What the endpoint needs its owner to know or decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A new call: answer or reject it by `call_id`.
    IncomingCall(IncomingCall),
    /// The caller acknowledged our answer.
    Confirmed { call_id: String },
    /// The caller hung up (BYE) or gave up before the answer (CANCEL).
    RemoteHangup { call_id: String, cancelled: bool },
    /// A DTMF digit signalled by SIP INFO (`application/dtmf-relay`).
    Dtmf { call_id: String, digit: char },
    /// The call is lost at the signalling level (our answer never acknowledged, our BYE never
    /// answered): end its media.
    Failed {
        call_id: String,
        reason: &'static str,
    },
    /// An outbound call rings at the far end.
    OutboundRinging { call_id: String },
    /// An outbound call was answered through `trunk_id`; `answer` is the callee's SDP;
    /// `attempts` the trunks that failed first.
    OutboundAnswered {
        call_id: String,
        trunk_id: String,
        answer: Vec<u8>,
        attempts: Vec<super::outbound::TrunkAttempt>,
        /// What we offered for SRTP: the answer's key is checked against it.
        srtp: Option<super::uac::SrtpOffered>,
    },
    /// An outbound call will not be answered; `attempts` are the trunks tried (or skipped for
    /// their open breakers) and how each ended.
    OutboundFailed {
        call_id: String,
        failure: OutboundFailure,
        attempts: Vec<super::outbound::TrunkAttempt>,
    },
    /// The RFC 4028 session timer ran out (no refresh from the peer, or ours failed): the
    /// owner ends the call with a BYE.
    SessionExpired { call_id: String },
    /// Our 2xx to a re-INVITE was never acknowledged (RFC 3261 section 13.3.1.4): the dialog
    /// stands but the session should end, with our BYE, as for an expired session.
    ReinviteUnacknowledged { call_id: String },
    /// A re-INVITE changed our media direction (`direction` is ours, as answered): a call that
    /// may not send is on hold; one that may again is resumed.
    MediaDirection {
        call_id: String,
        direction: super::sdp::Direction,
    },
    /// A registration's status changed (`registration` in the provider's API resource).
    Registration {
        provider_id: String,
        status: super::register::RegistrationStatus,
    },
    /// Our BYE (from [`SipEndpoint::hangup`]) got its final response, or none: the call
    /// record says whether the far end heard it.
    ByeOutcome {
        call_id: String,
        outcome: ByeOutcome,
    },
    /// News of a blind transfer asked for with [`SipEndpoint::transfer`].
    Transfer {
        call_id: String,
        progress: TransferProgress,
    },
}

/// An INVITE waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call_id: String,
    /// The user part of the Request-URI: the number dialled.
    pub dialled: String,
    /// The user part of From: the caller's number.
    pub caller: String,
    /// The SDP offer (may be empty: offerless INVITEs are refused by the owner).
    pub offer: Vec<u8>,
    pub source: SocketAddr,
    /// The transport the INVITE came over.
    pub transport: Transport,
    /// Whether the Request-URI carries [`REDIRECTED_PARAM`]: an edge of the cluster already
    /// sent this call here with a 302, so it must not be redirected again (loop guard).
    pub redirected: bool,
}

/// The Request-URI parameter an edge puts in its 302's Contact; a caller that follows the
/// redirect sends it back in the new INVITE's Request-URI (RFC 3261 section 8.1.3.4).
pub const REDIRECTED_PARAM: &str = "freya-redirected";

/// Methods the edge accepts, for `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE";

/// `Warning: 305 <host> "Incompatible media format"` (RFC 3261 section 20.43), on every 488:
/// the caller's logs then say what was wrong with its offer, not just that it was refused.
pub fn incompatible_media(local: SocketAddr) -> Header {
    Header::Warning(format!("305 {local} \"Incompatible media format\"").into())
}

/// One SIP address's worth of user agent state (its UDP socket and TCP connections).
pub struct SipEndpoint {
    local: SocketAddr,
    /// The address Contact and Via say over TLS (the TLS listener's), when it has one.
    tls_local: Option<SocketAddr>,
    timers: Timers,
    invites: Owners<TransactionKey, ServerInviteTransaction>,
    others: Owners<TransactionKey, ServerNonInviteTransaction>,
    outgoing: Owners<TransactionKey, InDialogRequest>,
    /// Our session-refreshing re-INVITEs.
    refresh_invites: Owners<TransactionKey, reinvite::RefreshInvite>,
    /// The transport of each transaction above.
    transports: HashMap<TransactionKey, Transport>,
    dialogs: Owners<String, Dialog>,
    /// Outbound calls not yet answered or failed, or still finishing their transactions.
    outbound: Owners<String, OutboundCall>,
    /// Our registrations with PBXs and trunks, by provider id (`endpoint/registrations.rs`).
    registrations: Owners<String, super::register::Registration>,
    /// The next deadline of every owner above that has one.
    deadlines: DeadlineQueue<TimerKey>,
    breakers: TrunkBreakers,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<EndpointEvent>,
}

impl SipEndpoint {
    /// An endpoint whose Contact and Via say `local` (the address callers reach).
    pub fn new(local: SocketAddr, timers: Timers) -> Self {
        Self {
            local,
            tls_local: None,
            timers,
            invites: Owners::default(),
            others: Owners::default(),
            outgoing: Owners::default(),
            refresh_invites: Owners::default(),
            transports: HashMap::new(),
            dialogs: Owners::default(),
            outbound: Owners::default(),
            registrations: Owners::default(),
            deadlines: DeadlineQueue::default(),
            breakers: TrunkBreakers::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The TLS listener's public address, for Contact and Via on TLS flows (which otherwise
    /// say the UDP/TCP address, where no TLS is spoken).
    pub fn set_tls_address(&mut self, addr: SocketAddr) {
        self.tls_local = Some(addr);
    }

    /// The address our Contact and Via name for messages over `transport`.
    pub fn local_for(&self, transport: Transport) -> SocketAddr {
        match (transport, self.tls_local) {
            (Transport::Tls, Some(tls)) => tls,
            _ => self.local,
        }
    }

    /// The address of `call_id`'s dialog's transport (ours in its Via and Contact).
    fn dialog_local(&self, call_id: &str) -> SocketAddr {
        self.dialogs
            .get(call_id)
            .map_or(self.local, |d| self.local_for(d.transport))
    }

    /// Dialogs alive (early or confirmed).
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Replaces the trunk circuit breakers' policy (before any call is placed).
    pub fn set_breaker_policy(&mut self, policy: super::breaker::BreakerPolicy) {
        self.breakers = TrunkBreakers::new(policy);
    }

    /// Handles one received UDP datagram (see [`Self::handle_message`]).
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) {
        self.handle_message(now, Peer::udp(source), bytes);
    }

    /// Handles one received message (a datagram, or one framed off a TCP stream). Garbage is
    /// logged and dropped; a request that parses but breaks the rules gets a 400 naming the
    /// fault.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        self.on_message(now, peer, bytes);
        self.settle_timers();
    }

    fn on_message(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        let source = peer.addr;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return; // CRLF keep-alive (RFC 5626)
        }
        let message = match parse_unvalidated(bytes) {
            Ok(message) => message,
            Err(e) => {
                if let Some(response) = checks::not_implemented(bytes) {
                    tracing::info!(%source, error = %e, "answered 501 to a request with a method we do not know");
                    self.transmits.push_back(Outgoing {
                        transport: peer.transport,
                        dest: source,
                        bytes: response,
                    });
                } else {
                    tracing::info!(%source, error = %e, "dropped an unparsable SIP datagram");
                }
                return;
            }
        };
        if let Err(e) = validate(&message) {
            tracing::info!(%source, error = %e, "refused a malformed SIP message");
            if let SipMessage::Request(request) = &message {
                if request.method != Method::Ack {
                    if let Ok(response) = bad_request(request, &e) {
                        self.send_stateless(peer, request, response);
                    }
                }
            }
            return;
        }
        match message {
            SipMessage::Request(request) => self.on_request(now, peer, request),
            SipMessage::Response(response) => self.on_response(now, response),
        }
    }

    /// Our Contact header for messages over `transport`.
    fn contact(&self, transport: Transport) -> Header {
        Header::Contact(transport.contact(self.local_for(transport)).into())
    }

    /// Our Contact header in `call_id`'s dialog (its scheme follows the dialog's INVITE), or
    /// for messages over `transport` when there is no such dialog.
    fn contact_in(&self, call_id: &str, transport: Transport) -> Header {
        match self.dialogs.get(call_id) {
            Some(dialog) => {
                Header::Contact(dialog.contact(self.local_for(dialog.transport)).into())
            }
            None => self.contact(transport),
        }
    }

    /// Tells the caller of `call_id` that it rings (180, with our tag so the dialog is early).
    pub fn ring(&mut self, now: Instant, call_id: &str) {
        self.send_ringing(now, call_id);
        self.settle_timers();
    }

    fn send_ringing(&mut self, now: Instant, call_id: &str) {
        let Some(dialog) = self.dialogs.get(call_id) else {
            return;
        };
        let key = dialog.invite_key.clone();
        let contact = self.contact_in(call_id, dialog.transport);
        if let Ok(mut response) = dialog.invite_response(180, "Ringing") {
            response.headers.push(contact);
            self.respond_invite(now, &key, response);
        }
    }

    /// Answers `call_id` with 200 OK carrying `sdp`.
    pub fn answer(&mut self, now: Instant, call_id: &str, sdp: String) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        dialog.state = DialogState::Confirmed;
        dialog.local_sdp = Some(sdp.clone());
        self.finish_invite(now, call_id, 200, "OK", Some(sdp));
        self.settle_timers();
    }

    /// Refuses `call_id` with `code` (404 unknown number, 488 no common codec, 503 busy...);
    /// `retry_after` adds the header of that name. A 488 says why in `Warning: 305`.
    pub fn reject(
        &mut self,
        now: Instant,
        call_id: &str,
        code: u16,
        reason: &str,
        retry_after: Option<u32>,
    ) {
        self.refuse_call(now, call_id, code, reason, retry_after);
        self.settle_timers();
    }

    /// Answers the INVITE of `call_id` with `302 Moved Temporarily` whose Contact is
    /// `contact` (a SIP URI): the call is better taken elsewhere.
    pub fn redirect(&mut self, now: Instant, call_id: &str, contact: &str) {
        if let Some(dialog) = self.dialogs.remove(call_id) {
            if let Ok(mut response) = dialog.invite_response(302, "Moved Temporarily") {
                response
                    .headers
                    .push(Header::Contact(format!("<{contact}>").into()));
                self.respond_invite(now, &dialog.invite_key, response);
            }
        }
        self.settle_timers();
    }

    fn refuse_call(
        &mut self,
        now: Instant,
        call_id: &str,
        code: u16,
        reason: &str,
        retry_after: Option<u32>,
    ) {
        let Some(dialog) = self.dialogs.remove(call_id) else {
            return;
        };
        let Ok(mut response) = dialog.invite_response(code, reason) else {
            return;
        };
        if let Some(seconds) = retry_after {
            response
                .headers
                .push(Header::Other("Retry-After".into(), seconds.to_string()));
        }
        if code == 488 {
            response.headers.push(incompatible_media(self.local));
        }
        self.respond_invite(now, &dialog.invite_key, response);
    }

    /// Ends `call_id` from our side: BYE once answered; an outbound call not yet answered is
    /// abandoned (CANCEL) and reported as [`OutboundFailure::Cancelled`].
    pub fn hangup(&mut self, now: Instant, call_id: &str) {
        if !self.abandon_outbound(now, call_id) {
            if let Some(dialog) = self.dialogs.remove(call_id) {
                if dialog.state == DialogState::Confirmed {
                    self.send_bye(now, dialog);
                }
            }
        }
        self.settle_timers();
    }

    /// Advances the owners whose deadline has passed, and only those.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(key) = self.deadlines.pop_due(now) {
            due.push(key);
        }
        self.fire(now, &due);
        // A fired owner holds no deadline until it registers again, touched or not.
        for key in due {
            self.reschedule(key);
        }
        self.settle_timers();
    }

    /// The earliest deadline of anything alive: the deadline queue's top, O(1).
    pub fn poll_timeout(&self) -> Option<Instant> {
        debug_assert!(
            !self.has_unsettled_timers(),
            "an entry point left owners unregistered"
        );
        self.deadlines.next()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// Sends the final response of an INVITE still in its dialog (200 with our answer, or 487
    /// after a CANCEL); a 487 also ends the dialog.
    fn finish_invite(
        &mut self,
        now: Instant,
        call_id: &str,
        code: u16,
        reason: &str,
        answer: Option<String>,
    ) {
        let Some(dialog) = self.dialogs.get(call_id) else {
            return;
        };
        let key = dialog.invite_key.clone();
        let Ok(mut response) = dialog.invite_response(code, reason) else {
            return;
        };
        if let Some(sdp) = answer {
            response
                .headers
                .push(self.contact_in(call_id, dialog.transport));
            response.headers.push(Header::Allow(ALLOW.into()));
            self.start_session_timer(now, call_id, &mut response);
            set_body(&mut response, "application/sdp", sdp.into_bytes());
        } else {
            self.dialogs.remove(call_id);
        }
        self.respond_invite(now, &key, response);
    }

    fn respond_invite(&mut self, now: Instant, key: &TransactionKey, response: Response) {
        if let Some(tx) = self.invites.get_mut(key) {
            if let Err(e) = tx.respond(now, response) {
                tracing::debug!(error = %e, "INVITE already answered");
            }
        }
        self.drain_invite(key);
    }

    /// Starts a server transaction for a non-INVITE request and sends its (only) response.
    fn respond_non_invite(
        &mut self,
        now: Instant,
        peer: Peer,
        key: TransactionKey,
        request: Request,
        response: Result<Response, super::SipError>,
    ) {
        let (source, reliable) = (peer.addr, peer.transport.is_reliable());
        let mut tx =
            match ServerNonInviteTransaction::new(now, request, source, reliable, self.timers) {
                Ok(tx) => tx,
                Err(e) => {
                    tracing::info!(%source, error = %e, "refused a request");
                    return;
                }
            };
        while tx.poll_event().is_some() {}
        match response {
            Ok(response) => {
                if let Err(e) = tx.respond(now, response) {
                    tracing::debug!(error = %e, "response refused by its transaction");
                }
            }
            Err(e) => tracing::info!(%source, error = %e, "cannot build a response"),
        }
        self.transports.insert(key.clone(), peer.transport);
        self.others.insert(key.clone(), tx);
        self.drain_other(&key);
    }

    /// A response sent without a transaction (to a request too broken to start one).
    fn send_stateless(&mut self, peer: Peer, request: &Request, response: Response) {
        // Over a connection the response goes back on it (RFC 3261 section 18.2.2).
        let dest = match peer.transport {
            Transport::Tcp | Transport::Tls => peer.addr,
            Transport::Udp => super::TopVia::of(&request.headers)
                .map(|via| via.response_destination(peer.addr))
                .unwrap_or(peer.addr),
        };
        self.transmits.push_back(Outgoing {
            transport: peer.transport,
            dest,
            bytes: to_bytes(response),
        });
    }

    /// The transport of a transaction (UDP if unknown, which cannot happen for a live one).
    fn transport_of(&self, key: &TransactionKey) -> Transport {
        self.transports.get(key).copied().unwrap_or(Transport::Udp)
    }
}

#[path = "endpoint/drain.rs"]
mod drain;

#[path = "endpoint/timers.rs"]
pub(crate) mod timers;
use timers::{DeadlineQueue, Owners, TimerKey};

#[path = "endpoint/timeouts.rs"]
mod timeouts;

#[path = "endpoint/requests.rs"]
mod requests;
pub use requests::ByeOutcome;
use requests::InDialogRequest;
pub(crate) use requests::Purpose;

#[path = "endpoint/in_dialog.rs"]
pub mod in_dialog;
pub use in_dialog::TransferProgress;

#[path = "endpoint/checks.rs"]
pub mod checks;

#[path = "endpoint/session.rs"]
mod session;

#[path = "endpoint/reinvite.rs"]
mod reinvite;

#[path = "endpoint/glare.rs"]
pub mod glare;

#[path = "endpoint/inbound.rs"]
mod inbound;

#[path = "endpoint/outbound.rs"]
mod outbound;

#[path = "endpoint/unreachable.rs"]
mod unreachable;

#[path = "endpoint/registrations.rs"]
mod registrations;

#[cfg(test)]
#[path = "endpoint_dialog_match_tests.rs"]
mod dialog_match_tests;
#[cfg(test)]
#[path = "endpoint_glare_tests.rs"]
mod glare_tests;
#[cfg(test)]
#[path = "endpoint_in_dialog_tests.rs"]
mod in_dialog_tests;
#[cfg(test)]
#[path = "endpoint_register_tests.rs"]
mod register_tests;
#[cfg(test)]
#[path = "endpoint_route_tests.rs"]
mod route_tests;
#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "endpoint_timers_tests.rs"]
mod timers_tests;
#[cfg(test)]
#[path = "endpoint_tls_contact_tests.rs"]
mod tls_contact_tests;
#[cfg(test)]
#[path = "endpoint_unreachable_tests.rs"]
mod unreachable_tests;

//! The edge's SIP user agent server, sans-IO: it owns the transactions and dialogs of every
//! inbound call on one socket, routes each datagram to the right one, answers what needs no
//! decision (OPTIONS, BYE, CANCEL, retransmissions, requests for unknown dialogs) and reports the
//! rest as [`EndpointEvent`]s. Decisions — which agent answers, whether there is capacity, the
//! SDP answer — belong to the caller, which replies with [`SipEndpoint::answer`] or
//! [`SipEndpoint::reject`].
//!
//! Driven like every core here: `handle_datagram(now, source, bytes)` and `handle_timeout(now)`
//! in, `poll_transmit()`, `poll_timeout()` and `poll_event()` out.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage};

use super::dialog::{user_of, Dialog, DialogState};
use super::message::{call_id, header_param};
use super::response::{bad_request, build_response, set_body, status, to_bytes};
use super::transaction::{
    ClientNonInviteTransaction, ServerInviteTransaction, ServerNonInviteTransaction, Timers,
    TransactionEvent, TransactionKey, Transmit,
};
use super::{parse_unvalidated, stamp_received, validate};

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
}

/// Methods the edge accepts, for `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";

/// One socket's worth of SIP server state.
pub struct SipEndpoint {
    local: SocketAddr,
    timers: Timers,
    invites: HashMap<TransactionKey, ServerInviteTransaction>,
    others: HashMap<TransactionKey, ServerNonInviteTransaction>,
    outgoing: HashMap<TransactionKey, (String, ClientNonInviteTransaction)>,
    dialogs: HashMap<String, Dialog>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
}

impl SipEndpoint {
    /// An endpoint whose Contact and Via say `local` (the address callers reach).
    pub fn new(local: SocketAddr, timers: Timers) -> Self {
        Self {
            local,
            timers,
            invites: HashMap::new(),
            others: HashMap::new(),
            outgoing: HashMap::new(),
            dialogs: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Dialogs alive (early or confirmed).
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// Handles one received datagram. Garbage is logged and dropped; a request that parses but
    /// breaks the rules gets a 400 naming the fault.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return; // CRLF keep-alive (RFC 5626)
        }
        let message = match parse_unvalidated(bytes) {
            Ok(message) => message,
            Err(e) => {
                tracing::info!(%source, error = %e, "dropped an unparsable SIP datagram");
                return;
            }
        };
        if let Err(e) = validate(&message) {
            tracing::info!(%source, error = %e, "refused a malformed SIP message");
            if let SipMessage::Request(request) = &message {
                if request.method != Method::Ack {
                    if let Ok(response) = bad_request(request, &e) {
                        self.send_stateless(source, request, response);
                    }
                }
            }
            return;
        }
        match message {
            SipMessage::Request(request) => self.on_request(now, source, request),
            SipMessage::Response(response) => self.on_response(now, response),
        }
    }

    fn on_request(&mut self, now: Instant, source: SocketAddr, mut request: Request) {
        if let Err(e) = stamp_received(&mut request, source) {
            tracing::info!(%source, error = %e, "refused a request with a bad Via");
            return;
        }
        let key = match TransactionKey::server(&request) {
            Ok(key) => key,
            Err(e) => {
                tracing::info!(%source, error = %e, "refused a request without a usable branch");
                if let Ok(response) = bad_request(&request, &e) {
                    self.send_stateless(source, &request, response);
                }
                return;
            }
        };
        if let Some(tx) = self.invites.get_mut(&key) {
            tx.handle_request(now, request);
            self.drain_invite(&key);
            return;
        }
        if let Some(tx) = self.others.get_mut(&key) {
            tx.handle_request(now, request);
            self.drain_other(&key);
            return;
        }
        match request.method {
            Method::Invite => self.on_invite(now, source, key, request),
            Method::Ack => self.on_ack_for_2xx(now, request),
            Method::Cancel => self.on_cancel(now, source, key, request),
            Method::Bye => self.on_bye(now, source, key, request),
            Method::Options => {
                let response = build_response(&request, status(200, "OK"), Some(&super::new_tag()))
                    .map(|mut r| {
                        r.headers.push(Header::Allow(ALLOW.into()));
                        r.headers.push(Header::Accept("application/sdp".into()));
                        r
                    });
                self.respond_non_invite(now, source, key, request, response);
            }
            Method::Info => self.on_info(now, source, key, request),
            _ => {
                let response = build_response(
                    &request,
                    status(501, "Not Implemented"),
                    Some(&super::new_tag()),
                )
                .map(|mut r| {
                    r.headers.push(Header::Allow(ALLOW.into()));
                    r
                });
                self.respond_non_invite(now, source, key, request, response);
            }
        }
    }

    fn on_invite(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Request,
    ) {
        let Ok(call_id) = call_id(&request.headers).map(str::to_owned) else {
            return;
        };
        let to_tag = request.headers.iter().find_map(|h| match h {
            Header::To(to) => header_param(to.value(), "tag").map(str::to_owned),
            _ => None,
        });
        let mut tx =
            match ServerInviteTransaction::new(now, request.clone(), source, false, self.timers) {
                Ok(tx) => tx,
                Err(e) => {
                    tracing::info!(%source, error = %e, "refused an INVITE");
                    return;
                }
            };
        // The transaction reports the request once; the decision is ours.
        while tx.poll_event().is_some() {}
        if to_tag.is_some() {
            // A re-INVITE (hold, resume, session refresh): repeat our answer.
            let answer = self
                .dialogs
                .get(&call_id)
                .filter(|d| d.state == DialogState::Confirmed)
                .map(|d| (d.local_tag.clone(), d.local_sdp.clone()));
            let response = match answer {
                Some((tag, sdp)) => {
                    build_response(&request, status(200, "OK"), Some(&tag)).map(|mut r| {
                        r.headers
                            .push(Header::Contact(format!("<sip:{}>", self.local).into()));
                        if let Some(sdp) = sdp {
                            set_body(&mut r, "application/sdp", sdp.into_bytes());
                        }
                        r
                    })
                }
                None => build_response(
                    &request,
                    status(481, "Call/Transaction Does Not Exist"),
                    Some(&super::new_tag()),
                ),
            };
            if let Ok(response) = response {
                let _ = tx.respond(now, response);
            }
            self.invites.insert(key.clone(), tx);
            self.drain_invite(&key);
            return;
        }
        if self.dialogs.contains_key(&call_id) {
            // Same Call-ID, new branch: a merged request (RFC 3261 section 8.2.2.2).
            if let Ok(response) = build_response(
                &request,
                status(482, "Loop Detected"),
                Some(&super::new_tag()),
            ) {
                let _ = tx.respond(now, response);
            }
            self.invites.insert(key.clone(), tx);
            self.drain_invite(&key);
            return;
        }
        let dialog = match Dialog::from_invite(&request, source, key.clone()) {
            Ok(dialog) => dialog,
            Err(e) => {
                tracing::info!(%source, error = %e, "refused an INVITE");
                return;
            }
        };
        let caller = request.headers.iter().find_map(|h| match h {
            Header::From(from) => Some(user_of(from.value())),
            _ => None,
        });
        self.events
            .push_back(EndpointEvent::IncomingCall(IncomingCall {
                call_id: call_id.clone(),
                dialled: user_of(&request.uri.to_string()),
                caller: caller.unwrap_or_default(),
                offer: request.body.clone(),
                source,
            }));
        self.dialogs.insert(call_id, dialog);
        self.invites.insert(key.clone(), tx);
        self.drain_invite(&key);
    }

    fn on_ack_for_2xx(&mut self, now: Instant, request: Request) {
        let Ok(call_id) = call_id(&request.headers).map(str::to_owned) else {
            return;
        };
        let Some(key) = self.dialogs.get(&call_id).map(|d| d.invite_key.clone()) else {
            tracing::debug!(call = %call_id, "ACK for no dialog; ignored");
            return;
        };
        if let Some(tx) = self.invites.get_mut(&key) {
            tx.handle_request(now, request);
            self.drain_invite(&key);
        }
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        source: SocketAddr,
        key: TransactionKey,
        request: Request,
    ) {
        let invite_key = TransactionKey::cancelled_invite(&request).ok();
        let invite = invite_key.as_ref().and_then(|k| self.invites.get(k));
        // A CANCEL matching a transaction is accepted even when it is too late to cancel
        // anything (RFC 3261 section 9.2); only a pending INVITE is ended with 487.
        let found = invite.is_some();
        let pending = invite
            .is_some_and(|tx| tx.state() == super::transaction::ServerInviteState::Proceeding);
        let (code, reason) = if found {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let response = build_response(&request, status(code, reason), Some(&super::new_tag()));
        let call = call_id(&request.headers).map(str::to_owned).ok();
        self.respond_non_invite(now, source, key, request, response);
        if let (true, Some(invite_key), Some(call_id)) = (pending, invite_key, call) {
            let _ = invite_key;
            self.finish_invite(now, &call_id, 487, "Request Terminated", None);
            self.events.push_back(EndpointEvent::RemoteHangup {
                call_id,
                cancelled: true,
            });
        }
    }

    fn on_bye(&mut self, now: Instant, source: SocketAddr, key: TransactionKey, request: Request) {
        let call = call_id(&request.headers).map(str::to_owned).ok();
        let known = call.as_ref().and_then(|c| self.dialogs.get(c)).is_some();
        let response = if known {
            build_response(&request, status(200, "OK"), None)
        } else {
            build_response(
                &request,
                status(481, "Call/Transaction Does Not Exist"),
                Some(&super::new_tag()),
            )
        };
        self.respond_non_invite(now, source, key, request, response);
        if let (true, Some(call_id)) = (known, call) {
            self.dialogs.remove(&call_id);
            self.events.push_back(EndpointEvent::RemoteHangup {
                call_id,
                cancelled: false,
            });
        }
    }

    fn on_info(&mut self, now: Instant, source: SocketAddr, key: TransactionKey, request: Request) {
        let call = call_id(&request.headers).map(str::to_owned).ok();
        let known = call.as_ref().is_some_and(|c| self.dialogs.contains_key(c));
        let digit = dtmf_relay_digit(&request);
        let response = if known {
            build_response(&request, status(200, "OK"), None)
        } else {
            build_response(
                &request,
                status(481, "Call/Transaction Does Not Exist"),
                Some(&super::new_tag()),
            )
        };
        self.respond_non_invite(now, source, key, request, response);
        if let (true, Some(call_id), Some(digit)) = (known, call, digit) {
            self.events
                .push_back(EndpointEvent::Dtmf { call_id, digit });
        }
    }

    fn on_response(&mut self, now: Instant, response: Response) {
        let Ok(key) = TransactionKey::client(&response) else {
            return;
        };
        if let Some((_, tx)) = self.outgoing.get_mut(&key) {
            tx.handle_response(now, response);
            self.drain_outgoing(&key);
        }
    }

    /// Tells the caller of `call_id` that it rings (180, with our tag so the dialog is early).
    pub fn ring(&mut self, now: Instant, call_id: &str) {
        let Some(dialog) = self.dialogs.get(call_id) else {
            return;
        };
        let key = dialog.invite_key.clone();
        if let Ok(mut response) = build_response(
            &dialog.invite,
            status(180, "Ringing"),
            Some(&dialog.local_tag),
        ) {
            response
                .headers
                .push(Header::Contact(format!("<sip:{}>", self.local).into()));
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
    }

    /// Refuses `call_id` with `code` (404 unknown number, 488 no common codec, 503 busy...);
    /// `retry_after` adds the header of that name.
    pub fn reject(
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
        let Ok(mut response) = build_response(
            &dialog.invite,
            status(code, reason),
            Some(&dialog.local_tag),
        ) else {
            return;
        };
        if let Some(seconds) = retry_after {
            response
                .headers
                .push(Header::Other("Retry-After".into(), seconds.to_string()));
        }
        self.respond_invite(now, &dialog.invite_key, response);
    }

    /// Ends `call_id` from our side: BYE once answered.
    pub fn hangup(&mut self, now: Instant, call_id: &str) {
        let Some(mut dialog) = self.dialogs.remove(call_id) else {
            return;
        };
        if dialog.state != DialogState::Confirmed {
            return;
        }
        let bye = match dialog.bye(self.local) {
            Ok(bye) => bye,
            Err(e) => {
                tracing::warn!(call = %call_id, error = %e, "cannot build a BYE");
                return;
            }
        };
        match ClientNonInviteTransaction::new(now, bye, dialog.peer, false, self.timers) {
            Ok(tx) => {
                let key = tx.key().clone();
                self.outgoing.insert(key.clone(), (call_id.to_owned(), tx));
                self.drain_outgoing(&key);
            }
            Err(e) => tracing::warn!(call = %call_id, error = %e, "cannot send a BYE"),
        }
    }

    /// Advances every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let invites: Vec<_> = self
            .invites
            .iter()
            .filter(|(_, tx)| due(tx.poll_timeout()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in invites {
            if let Some(tx) = self.invites.get_mut(&key) {
                tx.handle_timeout(now);
            }
            self.drain_invite(&key);
        }
        let others: Vec<_> = self
            .others
            .iter()
            .filter(|(_, tx)| due(tx.poll_timeout()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in others {
            if let Some(tx) = self.others.get_mut(&key) {
                tx.handle_timeout(now);
            }
            self.drain_other(&key);
        }
        let outgoing: Vec<_> = self
            .outgoing
            .iter()
            .filter(|(_, (_, tx))| due(tx.poll_timeout()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in outgoing {
            if let Some((_, tx)) = self.outgoing.get_mut(&key) {
                tx.handle_timeout(now);
            }
            self.drain_outgoing(&key);
        }
    }

    /// The earliest timer of any transaction. Linear in the transactions alive; they are
    /// signalling-rate objects, not per-packet ones.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let invites = self.invites.values().filter_map(|t| t.poll_timeout());
        let others = self.others.values().filter_map(|t| t.poll_timeout());
        let outgoing = self.outgoing.values().filter_map(|(_, t)| t.poll_timeout());
        invites.chain(others).chain(outgoing).min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
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
        let Ok(mut response) = build_response(
            &dialog.invite,
            status(code, reason),
            Some(&dialog.local_tag),
        ) else {
            return;
        };
        if let Some(sdp) = answer {
            response
                .headers
                .push(Header::Contact(format!("<sip:{}>", self.local).into()));
            response.headers.push(Header::Allow(ALLOW.into()));
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
        source: SocketAddr,
        key: TransactionKey,
        request: Request,
        response: Result<Response, super::SipError>,
    ) {
        let mut tx = match ServerNonInviteTransaction::new(now, request, source, false, self.timers)
        {
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
        self.others.insert(key.clone(), tx);
        self.drain_other(&key);
    }

    /// A response sent without a transaction (to a request too broken to start one).
    fn send_stateless(&mut self, source: SocketAddr, request: &Request, response: Response) {
        let dest = super::TopVia::of(&request.headers)
            .map(|via| via.response_destination(source))
            .unwrap_or(source);
        self.transmits.push_back(Transmit {
            dest,
            bytes: to_bytes(response),
        });
    }

    fn drain_invite(&mut self, key: &TransactionKey) {
        let Some(tx) = self.invites.get_mut(key) else {
            return;
        };
        while let Some(t) = tx.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut terminated = false;
        let mut lost = None;
        while let Some(event) = tx.poll_event() {
            match event {
                TransactionEvent::Ack(ack) => {
                    if let Ok(call_id) = call_id(&ack.headers) {
                        self.events.push_back(EndpointEvent::Confirmed {
                            call_id: call_id.to_owned(),
                        });
                    }
                }
                TransactionEvent::AckTimeout => lost = Some("our answer was never acknowledged"),
                TransactionEvent::Terminated => terminated = true,
                _ => {}
            }
        }
        if let Some(reason) = lost {
            let call = self
                .dialogs
                .iter()
                .find(|(_, d)| &d.invite_key == key)
                .map(|(c, _)| c.clone());
            if let Some(call_id) = call {
                self.dialogs.remove(&call_id);
                self.events
                    .push_back(EndpointEvent::Failed { call_id, reason });
            }
        }
        if terminated {
            self.invites.remove(key);
        }
    }

    fn drain_other(&mut self, key: &TransactionKey) {
        let Some(tx) = self.others.get_mut(key) else {
            return;
        };
        while let Some(t) = tx.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut terminated = false;
        while let Some(event) = tx.poll_event() {
            terminated |= event == TransactionEvent::Terminated;
        }
        if terminated {
            self.others.remove(key);
        }
    }

    fn drain_outgoing(&mut self, key: &TransactionKey) {
        let Some((call_id, tx)) = self.outgoing.get_mut(key) else {
            return;
        };
        while let Some(t) = tx.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut terminated = false;
        let mut timed_out = false;
        while let Some(event) = tx.poll_event() {
            match event {
                TransactionEvent::Terminated => terminated = true,
                TransactionEvent::Timeout => timed_out = true,
                _ => {}
            }
        }
        if timed_out {
            tracing::info!(call = %call_id, "our BYE was never answered");
        }
        if terminated {
            self.outgoing.remove(key);
        }
    }
}

/// The digit of an INFO with `application/dtmf-relay` (`Signal=5\r\nDuration=160`).
fn dtmf_relay_digit(request: &Request) -> Option<char> {
    let is_relay = request.headers.iter().any(|h| {
        matches!(h, Header::ContentType(ct) if ct.value().trim().eq_ignore_ascii_case("application/dtmf-relay"))
    });
    if !is_relay {
        return None;
    }
    let body = std::str::from_utf8(&request.body).ok()?;
    body.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("signal") {
            return None;
        }
        let digit = value.trim().chars().next()?.to_ascii_uppercase();
        "0123456789*#ABCD".contains(digit).then_some(digit)
    })
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;

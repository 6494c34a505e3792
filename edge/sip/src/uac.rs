//! One outbound INVITE through one trunk (RFC 3261 sections 13.2 and 22), sans-IO: the
//! [`InviteAttempt`]. It writes the INVITE with our SDP offer, runs its client transaction,
//! answers one 401/407 challenge with digest credentials, acknowledges a 2xx itself (a new
//! transaction-less ACK, sent again for every retransmitted 2xx), gives up with CANCEL when the
//! trunk's `invite_timeout` passes, and reports how it ended as an [`AttemptEvent`].
//!
//! Which trunk comes next, and whether an ending is worth trying another trunk for, is the
//! business of [`super::outbound`]; [`AttemptFailure`] only classifies. A 2xx that arrives after
//! we gave up is acknowledged and reported as [`AttemptEvent::LateAnswer`] so the owner can
//! send a BYE (RFC 3261 section 9.1: a CANCEL can cross the 2xx).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response};

use super::dialog::Dialog;
use super::digest::{new_cnonce, Challenge, Credentials};
use super::peer::{Outgoing, Peer, Transport};
use super::response::to_bytes;
use super::sdp::SrtpPolicy;
use super::transaction::{
    build_cancel, ClientInviteState, ClientInviteTransaction, ClientNonInviteState,
    ClientNonInviteTransaction, Timers, TransactionEvent, TransactionKey,
};

/// A SIP trunk as an outbound call uses it: its address already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// The provider id (the circuit breaker's key).
    pub id: String,
    /// The provider's name, for logs and call records.
    pub name: String,
    /// The trunk's host as configured, for the Request-URI and From.
    pub host: String,
    /// The trunk's port, for the Request-URI.
    pub port: u16,
    /// Where INVITEs go, and over what: the outbound proxy's address when there is one.
    pub peer: Peer,
    /// The trunk's outbound proxy URI (`sip:10.0.0.5;lr`), carried as a preloaded Route on the
    /// INVITE and so on its CANCEL and non-2xx ACK.
    pub outbound_proxy: Option<String>,
    /// Digest credentials, when the trunk challenges.
    pub credentials: Option<Credentials>,
    /// The user part of From for calls through this trunk, when the trunk says.
    pub caller_id: Option<String>,
    /// No final answer within this long: CANCEL and try the next trunk.
    pub invite_timeout: Duration,
    /// SRTP on calls through this trunk: keys offered (per attempt), and required or not.
    pub srtp: SrtpPolicy,
    /// Keys may be offered over signalling without TLS (a private link).
    pub srtp_without_tls: bool,
}

/// What an outbound call asks for, whichever trunk carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// The SIP Call-ID (the platform's call id).
    pub call_id: String,
    /// The number to call (user part of the Request-URI and To).
    pub to: String,
    /// The caller id asked for; a trunk's own `caller_id` wins.
    pub from: String,
    /// Our SDP offer.
    pub offer: String,
    /// Our SIP address (Via sent-by and Contact).
    pub local: SocketAddr,
    /// Our TLS listener's address, which Via and Contact say on a trunk reached over TLS.
    pub tls_local: Option<SocketAddr>,
    /// The call's media can run SRTP: when false, a trunk that requires it is unusable and
    /// one that prefers it gets the plain offer.
    pub srtp_media: bool,
}

impl CallRequest {
    /// The address our Via and Contact say over `transport`.
    pub fn local_for(&self, transport: Transport) -> SocketAddr {
        match (transport, self.tls_local) {
            (Transport::Tls, Some(tls)) => tls,
            _ => self.local,
        }
    }
}

/// Why one attempt did not end in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptFailure {
    /// A final response other than a challenge we could answer.
    Rejected { code: u16, reason: String },
    /// A 401/407 we have no credentials for, or a second one after we answered the first.
    AuthFailed { code: u16 },
    /// The trunk never sent a final response (timer B).
    NoResponse,
    /// No answer within the trunk's `invite_timeout`; `rang` says whether it got as far as a
    /// provisional response (then we sent CANCEL).
    NoAnswer { rang: bool },
    /// The INVITE could not be written (a trunk field that does not fit in a SIP URI).
    Unsendable(String),
    /// The network reported the trunk unreachable (an ICMP error for our INVITE): a transport
    /// error, which RFC 3261 section 8.1.3.1 treats as a 503.
    TransportError,
}

impl AttemptFailure {
    /// The callee is busy (486 Busy Here, 600 Busy Everywhere): final, no failover.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Rejected {
                code: 486 | 600,
                ..
            }
        )
    }

    /// Worth trying the next trunk: 5xx, 6xx that is not busy, 408, no response, no answer,
    /// failed authentication, an unusable trunk. Other 4xx are the callee's final word.
    pub fn fails_over(&self) -> bool {
        match self {
            Self::Rejected { code, .. } => {
                *code == 408 || (500..700).contains(code) && !self.is_busy()
            }
            _ => true,
        }
    }

    /// The trunk's own fault, counted by its circuit breaker: 5xx, 408, silence, failed
    /// authentication, an unusable trunk. 6xx and no answer after ringing are the callee's.
    pub fn is_trunk_fault(&self) -> bool {
        match self {
            Self::Rejected { code, .. } => *code == 408 || (500..600).contains(code),
            Self::NoAnswer { rang } => !rang,
            Self::AuthFailed { .. }
            | Self::NoResponse
            | Self::Unsendable(_)
            | Self::TransportError => true,
        }
    }

    /// A short description for call records (`503 Service Unavailable`, `no response`...).
    pub fn describe(&self) -> String {
        match self {
            Self::Rejected { code, reason } => format!("{code} {reason}"),
            Self::AuthFailed { code } => format!("{code} authentication failed"),
            Self::NoResponse => "no response".into(),
            Self::NoAnswer { .. } => "no answer".into(),
            Self::Unsendable(why) => format!("unusable trunk: {why}"),
            Self::TransportError => "transport error (unreachable, as 503)".into(),
        }
    }
}

/// What an attempt tells its owner.
#[derive(Debug, Clone)]
pub enum AttemptEvent {
    /// A provisional response other than 100 (180 Ringing, 183 Session Progress).
    Progress { code: u16 },
    /// The callee answered; the 2xx is acknowledged and `dialog` is confirmed; `srtp` is what
    /// we offered for SRTP, for the owner to check the answer against.
    Answered {
        answer: Vec<u8>,
        dialog: Dialog,
        srtp: Option<SrtpOffered>,
    },
    /// The attempt is over without an answer.
    Failed(AttemptFailure),
    /// A 2xx arrived after we gave up; it is acknowledged, and the owner sends a BYE.
    LateAnswer { dialog: Dialog },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE sent, no provisional response yet.
    Calling,
    /// A provisional response arrived.
    Ringing,
    /// Answered or failed: reported to the owner.
    Decided,
    /// We gave up (timeout or the owner's request); CANCEL sent or pending a provisional.
    Abandoned,
}

/// One INVITE to one trunk, and its authenticated retry.
#[derive(Debug)]
pub struct InviteAttempt {
    trunk: Trunk,
    /// The request, its offer the one this trunk gets (with SRTP keys when it takes them).
    request: CallRequest,
    srtp: Option<SrtpOffered>,
    timers: Timers,
    from_tag: String,
    cseq: u32,
    invite: Request,
    tx: ClientInviteTransaction,
    /// Challenged INVITEs, still acknowledging retransmitted 401/407s.
    retired: Vec<ClientInviteTransaction>,
    cancel: Option<ClientNonInviteTransaction>,
    cancel_on_provisional: bool,
    phase: Phase,
    authenticated: bool,
    deadline: Instant,
    /// The ACK for our 2xx and its next hop, re-sent for each retransmission of the 2xx.
    ack: Option<(Vec<u8>, Peer)>,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<AttemptEvent>,
}

impl InviteAttempt {
    /// Sends the INVITE to `trunk` with CSeq `cseq` and From tag `from_tag`.
    pub fn start(
        now: Instant,
        trunk: Trunk,
        mut request: CallRequest,
        from_tag: String,
        cseq: u32,
        timers: Timers,
    ) -> Result<Self, AttemptFailure> {
        let (offer, srtp) = srtp::offer_for(&trunk, &request)?;
        request.offer = offer;
        let invite = build_invite(&trunk, &request, &from_tag, cseq, None)
            .map_err(|e| AttemptFailure::Unsendable(e.to_string()))?;
        let tx = ClientInviteTransaction::new(
            now,
            invite.clone(),
            trunk.peer.addr,
            trunk.peer.transport.is_reliable(),
            timers,
        )
        .map_err(|e| AttemptFailure::Unsendable(e.to_string()))?;
        let mut attempt = Self {
            deadline: now + trunk.invite_timeout,
            trunk,
            request,
            srtp,
            timers,
            from_tag,
            cseq,
            invite,
            tx,
            retired: Vec::new(),
            cancel: None,
            cancel_on_provisional: false,
            phase: Phase::Calling,
            authenticated: false,
            ack: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        attempt.drain(now);
        Ok(attempt)
    }

    /// The trunk this attempt goes through.
    pub fn trunk(&self) -> &Trunk {
        &self.trunk
    }

    /// The highest CSeq number used so far.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// Hands over a response; false if it belongs to none of this attempt's transactions.
    pub fn handle_response(&mut self, now: Instant, response: Response) -> bool {
        let Ok(key) = TransactionKey::client(&response) else {
            return false;
        };
        if &key == self.tx.key() {
            self.tx.handle_response(now, response);
        } else if let Some(cancel) = self.cancel.as_mut().filter(|c| c.key() == &key) {
            cancel.handle_response(now, response);
        } else if let Some(old) = self.retired.iter_mut().find(|t| t.key() == &key) {
            old.handle_response(now, response);
        } else {
            return false;
        }
        self.drain(now);
        true
    }

    /// Advances the transactions' timers and the trunk's invite timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.tx.poll_timeout()) {
            self.tx.handle_timeout(now);
        }
        if let Some(cancel) = self.cancel.as_mut().filter(|c| due(c.poll_timeout())) {
            cancel.handle_timeout(now);
        }
        for old in self.retired.iter_mut().filter(|t| due(t.poll_timeout())) {
            old.handle_timeout(now);
        }
        self.drain(now);
        if self.undecided() && now >= self.deadline {
            let rang = self.phase == Phase::Ringing;
            tracing::info!(trunk = %self.trunk.name, rang, "no answer in time; giving up");
            self.abandon(now);
            self.events
                .push_back(AttemptEvent::Failed(AttemptFailure::NoAnswer { rang }));
        }
    }

    /// Gives up before an answer: CANCEL now if the trunk sent a provisional response, else as
    /// soon as it does (RFC 3261 section 9.1). Reports nothing; the owner knows why it gave up.
    pub fn abandon(&mut self, now: Instant) {
        match self.phase {
            Phase::Ringing => {
                self.phase = Phase::Abandoned;
                self.send_cancel(now);
            }
            Phase::Calling => {
                self.phase = Phase::Abandoned;
                self.cancel_on_provisional = true;
            }
            Phase::Decided | Phase::Abandoned => {}
        }
    }

    /// The network reported `dest` unreachable (an ICMP error for a datagram sent there, or a
    /// connection that could not be opened): if this attempt's trunk is `dest`, its
    /// transactions fail as on a transport error, and an attempt still without any response
    /// ends with [`AttemptFailure::TransportError`]. False (and nothing changes) for any other
    /// peer.
    pub fn handle_unreachable(&mut self, now: Instant, dest: Peer) -> bool {
        if self.trunk.peer != dest {
            return false;
        }
        let unanswered = self.tx.state() == ClientInviteState::Calling;
        self.tx.handle_transport_error();
        if let Some(cancel) = self.cancel.as_mut() {
            cancel.handle_transport_error();
        }
        for old in &mut self.retired {
            old.handle_transport_error();
        }
        if unanswered && self.undecided() {
            self.fail(AttemptFailure::TransportError);
        }
        self.drain(now);
        true
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.undecided().then_some(self.deadline);
        [
            self.tx.poll_timeout(),
            self.cancel.as_ref().and_then(|c| c.poll_timeout()),
            deadline,
        ]
        .into_iter()
        .chain(self.retired.iter().map(|t| t.poll_timeout()))
        .flatten()
        .min()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<AttemptEvent> {
        self.events.pop_front()
    }

    /// Every transaction is over: the attempt can be dropped.
    pub fn is_finished(&self) -> bool {
        self.tx.state() == ClientInviteState::Terminated
            && self.retired.is_empty()
            && self.cancel.is_none()
            && !self.undecided()
    }

    fn undecided(&self) -> bool {
        matches!(self.phase, Phase::Calling | Phase::Ringing)
    }

    fn drain(&mut self, now: Instant) {
        let transport = self.trunk.peer.transport;
        while let Some(t) = self.tx.poll_transmit() {
            self.transmits.push_back(Outgoing::new(transport, t));
        }
        for old in &mut self.retired {
            while let Some(t) = old.poll_transmit() {
                self.transmits.push_back(Outgoing::new(transport, t));
            }
            while old.poll_event().is_some() {}
        }
        self.retired
            .retain(|t| t.state() != ClientInviteState::Terminated);
        if let Some(cancel) = self.cancel.as_mut() {
            while let Some(t) = cancel.poll_transmit() {
                self.transmits.push_back(Outgoing::new(transport, t));
            }
            while cancel.poll_event().is_some() {}
            if cancel.state() == ClientNonInviteState::Terminated {
                self.cancel = None;
            }
        }
        while let Some(event) = self.tx.poll_event() {
            match event {
                TransactionEvent::Response(response) => self.on_response(now, response),
                TransactionEvent::Timeout if self.undecided() => {
                    self.fail(AttemptFailure::NoResponse)
                }
                _ => {}
            }
        }
    }

    fn on_response(&mut self, now: Instant, response: Response) {
        let code = response.status_code.code();
        match code {
            100..=199 => {
                if self.phase == Phase::Calling {
                    self.phase = Phase::Ringing;
                }
                if self.cancel_on_provisional {
                    self.cancel_on_provisional = false;
                    self.send_cancel(now);
                } else if code > 100 && self.phase == Phase::Ringing {
                    self.events.push_back(AttemptEvent::Progress { code });
                }
            }
            200..=299 => self.on_2xx(&response),
            401 | 407 if self.undecided() => self.on_challenge(now, &response, code),
            _ if self.undecided() => self.fail(AttemptFailure::Rejected {
                code,
                reason: reason_phrase(&response.status_code),
            }),
            _ => tracing::debug!(code, "final response after we gave up"),
        }
    }

    fn on_2xx(&mut self, response: &Response) {
        if let Some((ack, hop)) = self.ack.clone() {
            // A retransmitted 2xx: our ACK was lost.
            self.send_to(hop, ack);
            return;
        }
        let (ack, hop) = match build_2xx_ack(
            &self.invite,
            response,
            self.request.local_for(self.trunk.peer.transport),
            self.trunk.peer,
            None,
        ) {
            Ok((ack, hop)) => (to_bytes(ack), hop),
            Err(e) => {
                tracing::warn!(error = %e, "cannot acknowledge the 2xx");
                return;
            }
        };
        self.ack = Some((ack.clone(), hop));
        self.send_to(hop, ack);
        let dialog = match Dialog::from_answer(
            &self.invite,
            response,
            self.trunk.peer,
            self.tx.key().clone(),
            Some(self.request.offer.clone()),
        ) {
            Ok(dialog) => dialog,
            Err(e) => {
                tracing::warn!(error = %e, "cannot keep the dialog of the 2xx");
                if self.undecided() {
                    self.fail(AttemptFailure::Unsendable(e.to_string()));
                }
                return;
            }
        };
        if self.undecided() {
            self.phase = Phase::Decided;
            self.events.push_back(AttemptEvent::Answered {
                answer: response.body.clone(),
                dialog,
                srtp: self.srtp.clone(),
            });
        } else {
            self.events.push_back(AttemptEvent::LateAnswer { dialog });
        }
    }

    fn on_challenge(&mut self, now: Instant, response: &Response, code: u16) {
        let Some(credentials) = self
            .trunk
            .credentials
            .clone()
            .filter(|_| !self.authenticated)
        else {
            return self.fail(AttemptFailure::AuthFailed { code });
        };
        let challenge = response.headers.iter().find_map(|h| match (code, h) {
            (401, Header::WwwAuthenticate(v)) => Some(v.value().to_owned()),
            (407, Header::ProxyAuthenticate(v)) => Some(v.value().to_owned()),
            _ => None,
        });
        let challenge = match challenge.as_deref().map(Challenge::parse) {
            Some(Ok(challenge)) => challenge,
            Some(Err(e)) => {
                tracing::info!(trunk = %self.trunk.name, error = %e, "cannot answer the challenge");
                return self.fail(AttemptFailure::AuthFailed { code });
            }
            None => return self.fail(AttemptFailure::AuthFailed { code }),
        };
        let uri = self.invite.uri.to_string();
        let value = challenge.authorization(&credentials, "INVITE", &uri, 1, &new_cnonce());
        let header = if code == 401 {
            Header::Authorization(value.into())
        } else {
            Header::ProxyAuthorization(value.into())
        };
        self.cseq += 1;
        let invite = match build_invite(
            &self.trunk,
            &self.request,
            &self.from_tag,
            self.cseq,
            Some(header),
        ) {
            Ok(invite) => invite,
            Err(e) => return self.fail(AttemptFailure::Unsendable(e.to_string())),
        };
        let tx = match ClientInviteTransaction::new(
            now,
            invite.clone(),
            self.trunk.peer.addr,
            self.trunk.peer.transport.is_reliable(),
            self.timers,
        ) {
            Ok(tx) => tx,
            Err(e) => return self.fail(AttemptFailure::Unsendable(e.to_string())),
        };
        tracing::debug!(trunk = %self.trunk.name, code, "answering the digest challenge");
        self.authenticated = true;
        self.phase = Phase::Calling;
        self.invite = invite;
        let old = std::mem::replace(&mut self.tx, tx);
        self.retired.push(old);
        let transport = self.trunk.peer.transport;
        while let Some(t) = self.tx.poll_transmit() {
            self.transmits.push_back(Outgoing::new(transport, t));
        }
    }

    fn fail(&mut self, failure: AttemptFailure) {
        self.phase = Phase::Decided;
        self.events.push_back(AttemptEvent::Failed(failure));
    }

    fn send_cancel(&mut self, now: Instant) {
        let cancel = match build_cancel(&self.invite) {
            Ok(cancel) => cancel,
            Err(e) => return tracing::warn!(error = %e, "cannot build a CANCEL"),
        };
        match ClientNonInviteTransaction::new(
            now,
            cancel,
            self.trunk.peer.addr,
            self.trunk.peer.transport.is_reliable(),
            self.timers,
        ) {
            Ok(mut tx) => {
                while let Some(t) = tx.poll_transmit() {
                    self.transmits
                        .push_back(Outgoing::new(self.trunk.peer.transport, t));
                }
                self.cancel = Some(tx);
            }
            Err(e) => tracing::warn!(error = %e, "cannot send a CANCEL"),
        }
    }

    fn send_to(&mut self, hop: Peer, bytes: Vec<u8>) {
        self.transmits.push_back(Outgoing {
            transport: hop.transport,
            dest: hop.addr,
            bytes,
        });
    }
}

#[path = "uac/requests.rs"]
mod requests;
#[path = "uac/srtp.rs"]
mod srtp;
pub use requests::build_2xx_ack;
use requests::build_invite;
pub(crate) use requests::reason_phrase;
pub use srtp::SrtpOffered;

#[cfg(test)]
#[path = "uac_tests.rs"]
pub(crate) mod tests;

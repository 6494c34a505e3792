//! Registering with a PBX or trunk (RFC 3261 section 10), sans-IO: one [`Registration`] per
//! provider that asks for it, so that calls to the registered contact reach the edge.
//!
//! It sends REGISTER for the provider's address-of-record with our Contact, answers a 401/407
//! challenge with digest credentials (MD5 or SHA-256, preferring SHA-256 when the registrar
//! offers both, RFC 8760), and keeps the binding up: a refresh goes out before the granted
//! expiry (half-way for short ones, a minute early for long ones). All REGISTERs share one
//! Call-ID with increasing CSeq (section 10.2.4); a refresh reuses the last challenge
//! (pre-emptive credentials with the next nonce count).
//!
//! Failures are bounded:
//! - a 401 after we answered a challenge (not `stale`) is wrong credentials: no second answer
//!   in the same attempt (the 401 loop guard), the next attempt waits for the back-off;
//! - 403 stops: the registrar refuses this account, retrying cannot help; `last_error` says so
//!   until the configuration changes (a new [`Registration`]);
//! - no response (timer F), a broken connection, 5xx and other refusals back off
//!   exponentially from `retry_base` to `retry_max` (RFC 5626 section 4.5's shape), honouring
//!   a `Retry-After`;
//! - 423 Interval Too Brief takes the registrar's `Min-Expires` and asks again at once.
//!
//! NAT (RFC 3581): our Via asks for `rport`; when the registrar's answer says our datagrams
//! come from another address (`received`/`rport`), the Contact is re-registered at once with
//! that address, so calls reach us through the NAT binding the keep-alives hold open.
//!
//! Driven like the other cores: `handle_response(now, response)` and `handle_timeout(now)` in,
//! `poll_transmit()`, `poll_timeout()` and `poll_event()` out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response, SipMessage};

use super::digest::{new_cnonce, Algorithm, Challenge, Credentials};
use super::message::{header_named, header_param, parse_message, SipError};
use super::peer::{Outgoing, Peer};
use super::response::new_tag;
use super::transaction::{ClientNonInviteTransaction, Timers, TransactionEvent};
use super::via::TopVia;

/// What a registration needs to know, from the provider's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationSettings {
    /// The provider's id: events and status are reported under it.
    pub id: String,
    /// The registrar's resolved address and the transport to it.
    pub registrar: Peer,
    /// The registrar's domain as configured: the Request-URI and the AOR's host.
    pub domain: String,
    /// The AOR's user part, which is also our Contact's user.
    pub user: String,
    /// The number calls to our registered Contact are routed as (the agent bound to it
    /// answers); `None`: the number in the INVITE's To.
    pub number: Option<String>,
    /// Digest credentials, when the registrar challenges.
    pub credentials: Option<Credentials>,
    /// The binding lifetime we ask for.
    pub expires: Duration,
    /// Our address for Via and Contact (the edge's public SIP address on this transport).
    pub local: SocketAddr,
    /// The first wait after a failure; it doubles up to `retry_max`.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
}

/// Where a registration stands, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is out and no binding is known.
    Registering,
    /// The registrar holds our binding until `expires_at`.
    Registered,
    /// The last attempt failed; another follows after the back-off.
    Failed,
    /// The registrar refused the account (403): no more attempts.
    Stopped,
}

impl RegistrationState {
    /// The name in the API (`registration.state`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registering => "registering",
            Self::Registered => "registered",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// A registration's state, binding expiry and last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    pub state: RegistrationState,
    /// When the binding lapses unless refreshed (`None` when there is none).
    pub expires_at: Option<Instant>,
    /// Why the last attempt failed, as a person reads it.
    pub last_error: Option<String>,
}

/// What a registration reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// The status changed.
    Changed(RegistrationStatus),
}

/// One provider's registration.
#[derive(Debug)]
pub struct Registration {
    settings: RegistrationSettings,
    timers: Timers,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The REGISTER in flight.
    tx: Option<ClientNonInviteTransaction>,
    /// The Contact address (our local one, or what the registrar saw through a NAT).
    contact: SocketAddr,
    /// The last challenge, reused for refreshes with the next nonce count.
    challenge: Option<(Challenge, bool)>,
    nonce_count: u32,
    /// Whether this attempt already answered a fresh challenge (the 401 loop guard).
    answered: bool,
    /// When the next attempt or refresh goes out.
    next_at: Option<Instant>,
    failures: u32,
    /// Unregistering: answers are taken, nothing more is sent.
    stopping: bool,
    status: RegistrationStatus,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<RegistrationEvent>,
}

impl Registration {
    /// A registration that sends its first REGISTER now.
    pub fn start(now: Instant, settings: RegistrationSettings, timers: Timers) -> Self {
        let contact = settings.local;
        let mut registration = Self {
            settings,
            timers,
            call_id: format!("reg-{}", new_tag()),
            from_tag: new_tag(),
            cseq: 0,
            tx: None,
            contact,
            challenge: None,
            nonce_count: 0,
            answered: false,
            next_at: None,
            failures: 0,
            stopping: false,
            status: RegistrationStatus {
                state: RegistrationState::Registering,
                expires_at: None,
                last_error: None,
            },
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        registration.attempt(now);
        registration
    }

    /// The provider this registration is for.
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// The Call-ID of its REGISTERs: responses carrying it are this registration's.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The current status.
    pub fn status(&self) -> &RegistrationStatus {
        &self.status
    }

    /// The settings it was started with (a changed configuration starts a new one).
    pub fn settings(&self) -> &RegistrationSettings {
        &self.settings
    }

    /// A response to one of our REGISTERs.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        if let Some(tx) = self.tx.as_mut() {
            tx.handle_response(now, response);
        }
        self.drain(now);
    }

    /// The connection to the registrar could not be opened or broke: the REGISTER in flight
    /// fails as on timer F.
    pub fn handle_transport_error(&mut self, now: Instant) {
        if let Some(tx) = self.tx.as_mut() {
            tx.handle_transport_error();
        }
        self.drain(now);
    }

    /// Advances the transaction's timers and sends a due refresh or retry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(tx) = self.tx.as_mut() {
            tx.handle_timeout(now);
        }
        self.drain(now);
        if self.next_at.is_some_and(|at| at <= now) && self.tx.is_none() {
            self.next_at = None;
            self.attempt(now);
        }
    }

    /// Removes the binding (REGISTER with `Expires: 0`), for a provider that stops
    /// registering; nothing is retried after it.
    pub fn unregister(&mut self, now: Instant) {
        self.next_at = None;
        self.failures = 0;
        self.stopping = true;
        if let Ok(request) = self.request(Duration::ZERO) {
            self.send(now, request);
        }
        self.set_status(RegistrationState::Stopped, None, None);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.transmits.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.tx.as_ref().and_then(|tx| tx.poll_timeout());
        match (tx, self.next_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next status change.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    fn attempt(&mut self, now: Instant) {
        self.answered = false;
        let expires = self.settings.expires;
        let mut request = match self.request(expires) {
            Ok(request) => request,
            Err(e) => return self.fail(now, format!("cannot write the REGISTER: {e}"), None),
        };
        // A refresh carries credentials for the last challenge at once (its next nonce count).
        if let Some((challenge, proxy)) = self.challenge.clone() {
            if let Some(header) = self.authorization(&challenge, proxy) {
                request.headers.push(header);
            }
        }
        if self.status.state != RegistrationState::Registered {
            let last_error = self.status.last_error.clone();
            self.set_status(
                RegistrationState::Registering,
                self.status.expires_at,
                last_error,
            );
        }
        self.send(now, request);
    }

    fn send(&mut self, now: Instant, request: Request) {
        let registrar = self.settings.registrar;
        let reliable = registrar.transport.is_reliable();
        match ClientNonInviteTransaction::new(now, request, registrar.addr, reliable, self.timers) {
            Ok(tx) => {
                self.tx = Some(tx);
                self.drain(now);
            }
            Err(e) => self.fail(now, format!("cannot send the REGISTER: {e}"), None),
        }
    }

    /// Moves the transaction's transmits out and acts on its final response or timeout.
    fn drain(&mut self, now: Instant) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        let transport = self.settings.registrar.transport;
        while let Some(t) = tx.poll_transmit() {
            self.transmits.push_back(Outgoing::new(transport, t));
        }
        let mut outcome = None;
        while let Some(event) = tx.poll_event() {
            match event {
                TransactionEvent::Response(r) if r.status_code.code() >= 200 => {
                    outcome = Some(Ok(r));
                }
                TransactionEvent::Timeout => outcome = Some(Err(())),
                _ => {}
            }
        }
        if outcome.is_some() || tx.state() == super::transaction::ClientNonInviteState::Terminated {
            self.tx = None;
        }
        match outcome {
            Some(Ok(response)) => self.on_final(now, response),
            Some(Err(())) if self.stopping => {}
            Some(Err(())) => {
                let reason = format!("no response from the registrar {}", self.settings.registrar);
                self.fail(now, reason, None);
            }
            None => {}
        }
    }

    fn on_final(&mut self, now: Instant, response: Response) {
        if self.stopping {
            return;
        }
        let code = response.status_code.code();
        match code {
            200..=299 => self.on_registered(now, &response),
            401 | 407 => self.on_challenge(now, &response, code == 407),
            403 => {
                self.next_at = None;
                let reason = format!(
                    "{code} {}: the registrar refuses this account (check username and password); not retrying",
                    response.status_code
                );
                tracing::warn!(provider = %self.settings.id, %reason, "registration stopped");
                self.set_status(RegistrationState::Stopped, None, Some(reason));
            }
            423 => {
                let min = header_named(&response.headers, "Min-Expires")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                match min {
                    Some(min) if Duration::from_secs(min) > self.settings.expires => {
                        self.settings.expires = Duration::from_secs(min);
                        self.attempt(now);
                    }
                    _ => self.fail(
                        now,
                        "423 Interval Too Brief without a usable Min-Expires".into(),
                        None,
                    ),
                }
            }
            _ => {
                let retry_after = header_named(&response.headers, "Retry-After")
                    .and_then(|v| v.split(';').next()?.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let reason = format!("{code} {}", response.status_code);
                self.fail(now, reason, retry_after);
            }
        }
    }

    fn on_registered(&mut self, now: Instant, response: &Response) {
        self.failures = 0;
        // RFC 3581: the address the registrar saw us at; register that one if it differs.
        if self.settings.registrar.transport == super::peer::Transport::Udp {
            if let Some(seen) = seen_address(response) {
                if seen != self.contact {
                    tracing::info!(provider = %self.settings.id, %seen, "registrar sees us behind a NAT; registering that address");
                    self.contact = seen;
                    return self.attempt(now);
                }
            }
        }
        let granted = granted_expiry(response, self.contact).unwrap_or(self.settings.expires);
        if granted.is_zero() {
            // A binding removed (our unregister's answer).
            return;
        }
        let expires_at = now + granted;
        let refresh_in = (granted / 2).max(granted.saturating_sub(Duration::from_secs(60)));
        self.next_at = Some(now + refresh_in);
        self.set_status(RegistrationState::Registered, Some(expires_at), None);
    }

    fn on_challenge(&mut self, now: Instant, response: &Response, proxy: bool) {
        let fresh = best_challenge(response, proxy);
        let code = response.status_code.code();
        let Some(challenge) = fresh else {
            return self.fail(
                now,
                format!("{code} with no digest challenge we can answer"),
                None,
            );
        };
        if self.settings.credentials.is_none() {
            return self.fail(
                now,
                format!("{code}: the registrar wants credentials and none are configured"),
                None,
            );
        }
        if self.answered && !challenge.stale {
            // The loop guard: our answer was refused; answering again would loop.
            self.challenge = None;
            return self.fail(
                now,
                format!("{code}: the registrar refused our credentials"),
                None,
            );
        }
        self.answered = true;
        self.nonce_count = 0;
        self.challenge = Some((challenge.clone(), proxy));
        let mut request = match self.request(self.settings.expires) {
            Ok(request) => request,
            Err(e) => return self.fail(now, format!("cannot write the REGISTER: {e}"), None),
        };
        if let Some(header) = self.authorization(&challenge, proxy) {
            request.headers.push(header);
        }
        self.send(now, request);
    }

    fn authorization(&mut self, challenge: &Challenge, proxy: bool) -> Option<Header> {
        let credentials = self.settings.credentials.as_ref()?;
        self.nonce_count += 1;
        let uri = self.request_uri();
        let value = challenge.authorization(
            credentials,
            "REGISTER",
            &uri,
            self.nonce_count,
            &new_cnonce(),
        );
        Some(if proxy {
            Header::ProxyAuthorization(value.into())
        } else {
            Header::Authorization(value.into())
        })
    }

    fn fail(&mut self, now: Instant, reason: String, retry_after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(16);
        let backoff = self
            .settings
            .retry_base
            .saturating_mul(1 << exponent)
            .min(self.settings.retry_max);
        let wait = retry_after.map_or(backoff, |r| r.max(backoff));
        self.next_at = Some(now + wait);
        tracing::info!(provider = %self.settings.id, %reason, ?wait, "registration failed; retrying later");
        // The binding may outlive the failure: keep its expiry while it is in the future.
        let expires_at = self.status.expires_at.filter(|at| *at > now);
        self.set_status(RegistrationState::Failed, expires_at, Some(reason));
    }

    fn set_status(
        &mut self,
        state: RegistrationState,
        expires_at: Option<Instant>,
        last_error: Option<String>,
    ) {
        let status = RegistrationStatus {
            state,
            expires_at,
            last_error,
        };
        if status != self.status {
            self.status = status.clone();
            self.events.push_back(RegistrationEvent::Changed(status));
        }
    }

    fn request_uri(&self) -> String {
        let scheme = self.settings.registrar.transport.uri_scheme();
        format!("{scheme}:{}", self.settings.domain)
    }

    fn request(&mut self, expires: Duration) -> Result<Request, SipError> {
        self.cseq += 1;
        let transport = self.settings.registrar.transport;
        let scheme = transport.uri_scheme();
        let (user, domain) = (&self.settings.user, &self.settings.domain);
        if let Some(problem) = freya_shared::model::sip_user::sip_user_problem(user) {
            return Err(SipError::InvalidHeader {
                header: "From",
                reason: format!("user `{}` {problem}", user.escape_default()),
            });
        }
        let alias = if transport.is_reliable() {
            ";alias"
        } else {
            ""
        };
        let text = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {local};branch=z9hG4bK{branch};rport{alias}\r\n\
             Max-Forwards: 70\r\n\
             From: <{scheme}:{user}@{domain}>;tag={tag}\r\n\
             To: <{scheme}:{user}@{domain}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{scheme}:{user}@{contact}{param}>;expires={secs}\r\n\
             Expires: {secs}\r\n\
             Allow: {allow}\r\n\
             User-Agent: Freya\r\n\
             Content-Length: 0\r\n\r\n",
            uri = self.request_uri(),
            via = transport.via_name(),
            local = self.settings.local,
            branch = new_tag(),
            tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
            contact = self.contact,
            param = transport.uri_param(),
            secs = expires.as_secs(),
            allow = crate::endpoint::ALLOW,
        );
        match parse_message(text.as_bytes())? {
            SipMessage::Request(request) => Ok(request),
            SipMessage::Response(_) => Err(SipError::BadStartLine("not a request".into())),
        }
    }
}

/// The address the registrar saw our REGISTER come from, from the top Via's `received` and
/// `rport` (RFC 3581), when it says.
fn seen_address(response: &Response) -> Option<SocketAddr> {
    let via = TopVia::of(&response.headers).ok()?;
    let received = via.param("received").flatten()?.trim_matches(['[', ']']);
    let ip: std::net::IpAddr = received.parse().ok()?;
    let port = via.param("rport").flatten().and_then(|p| p.parse().ok())?;
    Some(SocketAddr::new(ip, port))
}

/// The lifetime the registrar granted: our Contact's `expires` in the 2xx, else `Expires`.
fn granted_expiry(response: &Response, contact: SocketAddr) -> Option<Duration> {
    let ours = contact.to_string();
    let from_contact = response.headers.iter().find_map(|h| match h {
        Header::Contact(c) => c
            .value()
            .split(',')
            .find(|v| v.contains(&ours))
            .and_then(|v| header_param(v, "expires"))
            .and_then(|e| e.parse::<u64>().ok()),
        _ => None,
    });
    let header =
        header_named(&response.headers, "Expires").and_then(|v| v.trim().parse::<u64>().ok());
    from_contact.or(header).map(Duration::from_secs)
}

/// The challenge to answer: SHA-256 over MD5 when the registrar offers both (RFC 8760
/// section 2.4: the client uses the strongest it supports).
fn best_challenge(response: &Response, proxy: bool) -> Option<Challenge> {
    let values = response.headers.iter().filter_map(|h| match (h, proxy) {
        (Header::WwwAuthenticate(v), false) => Some(v.value().to_owned()),
        (Header::ProxyAuthenticate(v), true) => Some(v.value().to_owned()),
        _ => None,
    });
    let rank = |a: Algorithm| match a {
        Algorithm::Sha256 | Algorithm::Sha256Sess => 1,
        Algorithm::Md5 | Algorithm::Md5Sess => 0,
    };
    values
        .filter_map(|v| Challenge::parse(&v).ok())
        .max_by_key(|c| rank(c.algorithm))
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;

//! An outbound call across a workspace's trunks, sans-IO: the [`OutboundCall`]. It tries the
//! trunks in the order given (priority order), one [`InviteAttempt`] at a time, and fails over
//! to the next on a failure worth it (5xx, 6xx that is not busy, 408, no response, no answer in
//! the trunk's `invite_timeout`); 486/600 busy and other 4xx end the call. Trunks whose circuit
//! breaker is open are skipped, and every attempt's outcome is recorded on its breaker.
//!
//! A finished attempt is kept until its transactions end, so that a late 487 is still
//! acknowledged and a 2xx that crossed our CANCEL is acknowledged and hung up.

use std::collections::VecDeque;
use std::time::Instant;

use rsip::Response;

use super::breaker::TrunkBreakers;
use super::dialog::Dialog;
use super::peer::Outgoing;
use super::response::new_tag;
use super::transaction::Timers;
use super::uac::{AttemptEvent, AttemptFailure, CallRequest, InviteAttempt, Trunk};

/// Why an outbound call was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundFailure {
    /// The workspace has no trunk this edge may use.
    NoTrunks,
    /// Every trunk's circuit breaker is open.
    TrunksUnavailable,
    /// The callee is busy (486 or 600).
    Busy { code: u16 },
    /// The callee's side refused the call for good (404, 403, 480, 603 ...).
    Rejected { code: u16, reason: String },
    /// No trunk got an answer in time.
    NoAnswer,
    /// Every trunk tried failed; each attempt, in order.
    AllTrunksFailed { attempts: Vec<TrunkAttempt> },
    /// We gave up before an answer (hang-up requested, edge shutting down).
    Cancelled,
}

impl OutboundFailure {
    /// The reason recorded with `call.failed`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoTrunks => "no_trunks",
            Self::TrunksUnavailable => "trunks_unavailable",
            Self::Busy { .. } => "busy",
            Self::Rejected { .. } => "rejected",
            Self::NoAnswer => "no_answer",
            Self::AllTrunksFailed { .. } => "all_trunks_failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The final SIP status, when one decided the call.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Busy { code } | Self::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One trunk an outbound call tried (or skipped), and how that attempt ended: call records
/// list them so a record says which provider did what, when, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAttempt {
    /// The provider id of the trunk.
    pub trunk_id: String,
    /// The trunk's name.
    pub trunk: String,
    /// What happened, for a person (`503 Service Unavailable`, `no answer`, ...).
    pub outcome: String,
    /// What happened, for the record.
    pub ending: TrunkEnding,
    /// When our INVITE went out; `None` for a trunk skipped by its open breaker.
    pub started: Option<Instant>,
    /// When the attempt's outcome was known.
    pub ended: Instant,
}

/// How one attempt through a trunk ended, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkEnding {
    /// A final response (an authentication failure is its 401/407).
    Response { code: u16, reason: String },
    /// No final response (timer B), or no answer within the trunk's `invite_timeout` before
    /// anything rang.
    Timeout,
    /// The callee's phone rang and nobody answered within the trunk's `invite_timeout`: the
    /// callee's doing, not the trunk's (no other edge would do better).
    Unanswered,
    /// The network refused (ICMP unreachable), or the INVITE could not be written.
    TransportError,
    /// Not tried: the trunk's circuit breaker was open.
    SkippedOpenCircuit,
}

impl TrunkEnding {
    /// The kind of an attempt's failure.
    pub fn of(failure: &AttemptFailure) -> Self {
        match failure {
            AttemptFailure::Rejected { code, reason } => Self::Response {
                code: *code,
                reason: reason.clone(),
            },
            AttemptFailure::AuthFailed { code } => Self::Response {
                code: *code,
                reason: "authentication failed".to_owned(),
            },
            AttemptFailure::NoAnswer { rang: true } => Self::Unanswered,
            AttemptFailure::NoResponse | AttemptFailure::NoAnswer { rang: false } => Self::Timeout,
            AttemptFailure::Unsendable(_) | AttemptFailure::TransportError => Self::TransportError,
        }
    }
}

impl std::fmt::Display for TrunkAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.trunk, self.outcome)
    }
}

/// What an outbound call tells its owner.
#[derive(Debug, Clone)]
pub enum OutboundEvent {
    /// The callee's phone rings (first 180/183).
    Ringing,
    /// Answered through `trunk_id`; `answer` is the SDP of the 2xx, `dialog` is confirmed;
    /// `attempts` are the trunks that failed before it, for the call's record.
    Answered {
        trunk_id: String,
        answer: Vec<u8>,
        dialog: Dialog,
        attempts: Vec<TrunkAttempt>,
        /// What the answering attempt offered for SRTP.
        srtp: Option<crate::uac::SrtpOffered>,
    },
    /// The call will not be answered.
    Failed(OutboundFailure),
    /// A 2xx from an attempt we had given up on: acknowledged; send a BYE with this dialog.
    LateAnswer { dialog: Dialog },
}

/// One outbound call, over as many trunks as it takes.
#[derive(Debug)]
pub struct OutboundCall {
    request: CallRequest,
    timers: Timers,
    remaining: VecDeque<Trunk>,
    /// The attempt that decides the call, while one does.
    current: Option<InviteAttempt>,
    /// Attempts that have decided (or were given up) but whose transactions still run.
    lingering: Vec<InviteAttempt>,
    from_tag: String,
    next_cseq: u32,
    failures: Vec<(Trunk, AttemptFailure)>,
    /// Every trunk tried or skipped, in order, for the record.
    log: Vec<TrunkAttempt>,
    /// When the deciding attempt's INVITE went out.
    current_since: Option<Instant>,
    skipped: usize,
    decided: bool,
    rang: bool,
    transmits: VecDeque<Outgoing>,
    events: VecDeque<OutboundEvent>,
}

impl OutboundCall {
    /// Starts calling through the first usable trunk of `trunks` (in the order to try them).
    pub fn start(
        now: Instant,
        request: CallRequest,
        trunks: Vec<Trunk>,
        timers: Timers,
        breakers: &mut TrunkBreakers,
    ) -> Self {
        let mut call = Self {
            request,
            timers,
            remaining: trunks.into(),
            current: None,
            lingering: Vec::new(),
            from_tag: new_tag(),
            next_cseq: 1,
            failures: Vec::new(),
            log: Vec::new(),
            current_since: None,
            skipped: 0,
            decided: false,
            rang: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        call.next_trunk(now, breakers);
        call
    }

    /// The call's id (its SIP Call-ID).
    pub fn call_id(&self) -> &str {
        &self.request.call_id
    }

    /// Hands over a response for this call; false if no attempt of it sent the request.
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        breakers: &mut TrunkBreakers,
    ) -> bool {
        if let Some(attempt) = self.current.as_mut() {
            if attempt.handle_response(now, response.clone()) {
                self.drain_current(now, breakers);
                return true;
            }
        }
        let handled = self
            .lingering
            .iter_mut()
            .any(|a| a.handle_response(now, response.clone()));
        self.drain_lingering();
        handled
    }

    /// Advances every attempt's timers.
    pub fn handle_timeout(&mut self, now: Instant, breakers: &mut TrunkBreakers) {
        let due = |a: &InviteAttempt| a.poll_timeout().is_some_and(|t| t <= now);
        if let Some(attempt) = self.current.as_mut().filter(|a| due(a)) {
            attempt.handle_timeout(now);
            self.drain_current(now, breakers);
        }
        for attempt in self.lingering.iter_mut().filter(|a| due(a)) {
            attempt.handle_timeout(now);
        }
        self.drain_lingering();
    }

    /// An ICMP error said `dest` is unreachable: attempts through it fail as on a 503 and the
    /// call moves on to its next trunk at once. False if no attempt of this call goes there.
    pub fn handle_unreachable(
        &mut self,
        now: Instant,
        dest: crate::peer::Peer,
        breakers: &mut TrunkBreakers,
    ) -> bool {
        let current = self
            .current
            .as_mut()
            .is_some_and(|a| a.handle_unreachable(now, dest));
        if current {
            self.drain_current(now, breakers);
        }
        let mut lingering = false;
        for attempt in &mut self.lingering {
            lingering |= attempt.handle_unreachable(now, dest);
        }
        self.drain_lingering();
        current || lingering
    }

    /// Gives up before an answer (CANCEL through the trunk that is trying).
    pub fn abandon(&mut self, now: Instant) {
        if let Some(mut attempt) = self.current.take() {
            attempt.abandon(now);
            self.lingering.push(attempt);
            self.drain_lingering();
        }
        self.remaining.clear();
        self.finish(OutboundFailure::Cancelled);
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .iter()
            .chain(&self.lingering)
            .filter_map(InviteAttempt::poll_timeout)
            .min()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<OutboundEvent> {
        self.events.pop_front()
    }

    /// Decided and every attempt's transactions over: the call can be dropped.
    pub fn is_finished(&self) -> bool {
        self.decided && self.current.is_none() && self.lingering.is_empty()
    }

    fn drain_current(&mut self, now: Instant, breakers: &mut TrunkBreakers) {
        let Some(attempt) = self.current.as_mut() else {
            return;
        };
        while let Some(t) = attempt.poll_transmit() {
            self.transmits.push_back(t);
        }
        let trunk = attempt.trunk().clone();
        let mut events = Vec::new();
        while let Some(event) = attempt.poll_event() {
            events.push(event);
        }
        for event in events {
            match event {
                AttemptEvent::Progress { .. } if !self.rang => {
                    self.rang = true;
                    self.events.push_back(OutboundEvent::Ringing);
                }
                AttemptEvent::Progress { .. } => {}
                AttemptEvent::Answered {
                    answer,
                    dialog,
                    srtp,
                } => {
                    breakers.record_success(&trunk.id);
                    tracing::info!(trunk = %trunk.name, "outbound call answered");
                    self.retire_current();
                    self.decided = true;
                    self.events.push_back(OutboundEvent::Answered {
                        trunk_id: trunk.id.clone(),
                        answer,
                        dialog,
                        attempts: self.attempt_log(),
                        srtp,
                    });
                }
                AttemptEvent::LateAnswer { dialog } => {
                    self.events.push_back(OutboundEvent::LateAnswer { dialog });
                }
                AttemptEvent::Failed(failure) => {
                    self.retire_current();
                    self.on_failure(now, &trunk, failure, breakers);
                }
            }
        }
    }

    /// Moves the deciding attempt among those only finishing their transactions.
    fn retire_current(&mut self) {
        if let Some(attempt) = self.current.take() {
            self.lingering.push(attempt);
        }
    }

    /// Sends what finishing attempts want sent, hands up 2xx that crossed our CANCEL, and
    /// drops attempts whose transactions are over.
    fn drain_lingering(&mut self) {
        for attempt in &mut self.lingering {
            while let Some(t) = attempt.poll_transmit() {
                self.transmits.push_back(t);
            }
            while let Some(event) = attempt.poll_event() {
                match event {
                    AttemptEvent::Answered { dialog, .. } | AttemptEvent::LateAnswer { dialog } => {
                        self.events.push_back(OutboundEvent::LateAnswer { dialog })
                    }
                    AttemptEvent::Progress { .. } | AttemptEvent::Failed(_) => {}
                }
            }
        }
        self.lingering.retain(|a| !a.is_finished());
    }

    fn on_failure(
        &mut self,
        now: Instant,
        trunk: &Trunk,
        failure: AttemptFailure,
        breakers: &mut TrunkBreakers,
    ) {
        if failure.is_trunk_fault() {
            breakers.record_failure(now, &trunk.id);
        } else {
            breakers.record_success(&trunk.id);
        }
        tracing::info!(trunk = %trunk.name, outcome = %failure.describe(), "outbound attempt failed");
        let since = self.current_since.take();
        self.log_attempt(trunk, &failure, since, now);
        let fails_over = failure.fails_over();
        self.failures.push((trunk.clone(), failure.clone()));
        if !fails_over {
            let final_failure = match failure {
                AttemptFailure::Rejected { code, .. } if failure.is_busy() => {
                    OutboundFailure::Busy { code }
                }
                AttemptFailure::Rejected { code, reason } => {
                    OutboundFailure::Rejected { code, reason }
                }
                _ => OutboundFailure::AllTrunksFailed {
                    attempts: self.attempt_log(),
                },
            };
            self.remaining.clear();
            return self.finish(final_failure);
        }
        self.next_trunk(now, breakers);
    }

    /// Starts the next trunk whose breaker allows it, or ends the call.
    fn next_trunk(&mut self, now: Instant, breakers: &mut TrunkBreakers) {
        while let Some(trunk) = self.remaining.pop_front() {
            if !breakers.try_acquire(now, &trunk.id) {
                tracing::info!(trunk = %trunk.name, "skipping a trunk whose circuit breaker is open");
                self.skipped += 1;
                self.log.push(TrunkAttempt {
                    trunk_id: trunk.id.clone(),
                    trunk: trunk.name.clone(),
                    outcome: "skipped: circuit breaker open".to_owned(),
                    ending: TrunkEnding::SkippedOpenCircuit,
                    started: None,
                    ended: now,
                });
                continue;
            }
            let started = InviteAttempt::start(
                now,
                trunk.clone(),
                self.request.clone(),
                self.from_tag.clone(),
                self.next_cseq,
                self.timers,
            );
            match started {
                Ok(mut attempt) => {
                    tracing::info!(trunk = %trunk.name, peer = %trunk.peer, "calling out");
                    self.next_cseq = attempt.cseq() + 2;
                    while let Some(t) = attempt.poll_transmit() {
                        self.transmits.push_back(t);
                    }
                    self.current = Some(attempt);
                    self.current_since = Some(now);
                    return;
                }
                Err(failure) => {
                    breakers.record_failure(now, &trunk.id);
                    tracing::warn!(trunk = %trunk.name, outcome = %failure.describe(), "cannot call through this trunk");
                    self.log_attempt(&trunk, &failure, Some(now), now);
                    self.failures.push((trunk.clone(), failure));
                }
            }
        }
        let failure = if self.failures.is_empty() && self.skipped > 0 {
            OutboundFailure::TrunksUnavailable
        } else if self.failures.is_empty() {
            OutboundFailure::NoTrunks
        } else if self
            .failures
            .iter()
            .all(|(_, f)| matches!(f, AttemptFailure::NoAnswer { .. }))
        {
            OutboundFailure::NoAnswer
        } else {
            OutboundFailure::AllTrunksFailed {
                attempts: self.attempt_log(),
            }
        };
        self.finish(failure);
    }

    /// Every trunk tried or skipped so far and how each ended, in order (the answering trunk
    /// is not among them).
    pub fn attempts(&self) -> &[TrunkAttempt] {
        &self.log
    }

    fn attempt_log(&self) -> Vec<TrunkAttempt> {
        self.log.clone()
    }

    fn log_attempt(
        &mut self,
        trunk: &Trunk,
        failure: &AttemptFailure,
        started: Option<Instant>,
        now: Instant,
    ) {
        self.log.push(TrunkAttempt {
            trunk_id: trunk.id.clone(),
            trunk: trunk.name.clone(),
            outcome: failure.describe(),
            ending: TrunkEnding::of(failure),
            started,
            ended: now,
        });
    }

    fn finish(&mut self, failure: OutboundFailure) {
        if !self.decided {
            self.decided = true;
            self.events.push_back(OutboundEvent::Failed(failure));
        }
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "outbound_log_tests.rs"]
mod log_tests;

//! One call as a deterministic state machine (`CallCore`): no tokio, no sockets, no clock.
//! It owns the call's media core ([`CallMedia`]), its voice ([`Responder`]: an agent's
//! conversation or a workflow), hold state, the transfer under way, the maximum-duration
//! deadline and the ending, and makes every decision the call makes: what to record, when the
//! agent hears a frame (before the tick's packet is chosen, so a barge-in silences that very
//! packet), what a signal from the SIP side means, when the call ends and how.
//!
//! Driven in the str0m / quinn-proto manner: inputs are `handle_*` calls with the current
//! `Instant` — received media ([`handle_datagram`](CallCore::handle_datagram),
//! [`handle_rtcp`](CallCore::handle_rtcp), [`handle_payload`](CallCore::handle_payload)),
//! [`CallSignal`]s, provider results, and [`handle_timeout`](CallCore::handle_timeout) at
//! [`poll_timeout`](CallCore::poll_timeout); after each, drain
//! [`poll_output`](CallCore::poll_output) until `None` before the next input. The shell around it
//! (`call/task.rs`) only moves bytes, time and results.

mod bridge;
mod ending;
mod legs;
mod output;
mod remote;
mod start;
mod warm;

use warm::WarmRequest;

use std::time::{Duration, Instant};

use freya_shared::model::call_payloads::{CallFailed, DtmfHeard, Extra};
use freya_shared::model::{CallEventData, EndReason, FailReason};
use freya_shared::redact::LogPrivacy;

use super::event_payloads::transfer_record;
use super::liveness::HoldChange;
use super::media::{CallMedia, CallerMask, MediaEvent, MediaSettings};
use super::provider_request::ProviderResult;
use super::responder::Responder;
use super::talk::{AgentRequest, CallParties};
use super::task::{CallDirection, CallSignal};
use crate::sip::endpoint::TransferProgress;

pub use legs::{
    AgentMode, LegCommand, LegError, LegId, LegRequest, LegSettings, LegSignal, MAX_DIALS_PER_CALL,
};
pub use output::{CallEnding, CallRequest, Output};
pub use remote::MESH_PAYLOAD;
pub use start::{CallStart, EndedEarly};

/// What a masked key press reads as in `call.dtmf` and the logs.
pub const MASKED_DIGIT: &str = "[digit]";

/// One answered call's decisions.
pub struct CallCore {
    media: CallMedia,
    /// The agent or workflow answering; `None` answers with silence.
    responder: Option<Responder>,
    /// When the call began (offsets and its duration are measured from here).
    started: Instant,
    /// When the call reaches its maximum duration.
    deadline: Instant,
    /// The destination of the transfer under way, for its events and the call's ending.
    transfer: Option<String>,
    /// Whether each tick's frames go out for the recording.
    recording: bool,
    /// Whether the caller's key presses are kept out of the record: silence in the recording
    /// while a key is pressed, and `[digit]` for the key in `call.dtmf` and the logs (the
    /// agent's `privacy.redact` lists `card_number`: digits may be a card's).
    mask_digits: bool,
    /// What the call's log lines may show of its parties and words (numbers masked, texts
    /// redacted as the agent's or workflow's `privacy.redact` asks).
    log: LogPrivacy,
    /// Foreign datagrams already reported.
    foreign_reported: u64,
    /// Set once the call ended; nothing happens after.
    ended: bool,
    /// A call we placed: its far end's BYE is `remote_hangup`, not `caller_hangup`.
    outbound: bool,
    out: output::Outbox,
    /// The parties beyond the first, and the bridge.
    legs: legs::Legs,
    /// What an added leg's media is built with.
    media_settings: MediaSettings,
}

impl CallCore {
    /// Starts the call at `now`: queues its opening records and builds its media and voice. A
    /// voice that cannot be built is recorded (`call.failed`) and ends the call at once, as an
    /// agent hanging up. Fails when the call cannot carry its media at all.
    pub fn start(now: Instant, start: CallStart<'_>) -> Result<Self, Box<EndedEarly>> {
        let media = match CallMedia::new(now, &start.audio, start.media) {
            Ok(media) => media,
            Err(e) => {
                tracing::error!(error = %e, "cannot carry this call's media");
                return Err(start.ended_early(EndReason::UnsupportedCodec));
            }
        };
        let max_duration = Duration::from_secs(u64::from(start.agent.spec.max_call_seconds));
        let mut core = Self {
            media,
            responder: None,
            started: now,
            deadline: now + max_duration,
            transfer: None,
            recording: start.can_record && start.agent.spec.record,
            mask_digits: start.agent.spec.privacy.masks_digits()
                || start
                    .workflow
                    .is_some_and(|w| w.config.definition.privacy.masks_digits()),
            log: LogPrivacy::new(match start.workflow {
                Some(w) => w.config.definition.privacy.redactor(),
                None => start.agent.spec.privacy.redactor(),
            }),
            foreign_reported: 0,
            ended: false,
            outbound: start.direction == CallDirection::Outbound,
            out: output::Outbox::default(),
            legs: legs::Legs::new(start.legs),
            media_settings: start.media.clone(),
        };
        for record in start.opening_records() {
            core.out.push(Output::Event(record));
        }
        tracing::info!(
            from = %core.log.number(start.caller),
            to = %core.log.number(start.dialled),
            agent = %start.agent.id,
            "call answered"
        );
        // A provider's media stream reports digits in its own messages, not as tones.
        if start.media_stream {
            core.media.stop_listening_for_tones();
        }
        let Some(factory) = start.voice else {
            return Ok(core);
        };
        let parties = CallParties {
            call_id: start.call_id,
            caller: start.caller,
            called: start.dialled,
            sends_digits: !start.media_stream,
        };
        match Responder::start(now, factory, start.agent, start.workflow, &parties) {
            Ok(responder) => {
                core.responder = Some(responder);
                core.after_input(now);
            }
            Err(e) => {
                tracing::error!(reason = e.reason, field = %e.field, detail = %e.detail, "the call's voice pipeline cannot be built");
                core.out
                    .push(Output::Event(CallEventData::Failed(CallFailed {
                        field: Some(e.field.clone()),
                        detail: Some(e.detail.clone().into()),
                        ..CallFailed::because(FailReason::parse(e.reason))
                    })));
                core.end(now, e.reason.into(), true);
            }
        }
        Ok(core)
    }

    /// An RTP datagram (or RTCP multiplexed on it) read from the RTP socket, dated by its
    /// arrival; the agent hears it on the next tick.
    pub fn handle_datagram(&mut self, now: Instant, source: std::net::SocketAddr, datagram: &[u8]) {
        self.out.begin();
        self.media.handle_datagram(now, source, datagram);
    }

    /// An RTCP datagram from the RTCP socket.
    pub fn handle_rtcp(&mut self, now: Instant, source: std::net::SocketAddr, datagram: &[u8]) {
        self.out.begin();
        self.media.handle_rtcp(now, source, datagram);
        self.after_input(now);
    }

    /// A media stream's frame of caller audio.
    pub fn handle_payload(&mut self, now: Instant, sequence: u16, timestamp: u32, payload: &[u8]) {
        self.out.begin();
        self.media.handle_payload(now, sequence, timestamp, payload);
        self.after_input(now);
    }

    /// What the SIP side says of the call.
    pub fn handle_signal(&mut self, now: Instant, signal: CallSignal) {
        self.out.begin();
        if self.ended {
            return;
        }
        match signal {
            CallSignal::Confirmed => tracing::debug!("call confirmed by ACK"),
            CallSignal::Dtmf(digit) => {
                // The peer signals digits out of band: tones in its audio would count twice.
                self.media.stop_listening_for_tones();
                if let Some(responder) = self.responder.as_mut() {
                    responder.on_digit(now, digit);
                }
                let heard = DtmfHeard {
                    digit: if self.masks_digits(now) {
                        MASKED_DIGIT.to_owned()
                    } else {
                        digit.to_string()
                    },
                    via: "sip_info".to_owned(),
                    duration_ms: None,
                    extra: Extra::new(),
                };
                self.out.push(Output::Event(CallEventData::Dtmf(heard)));
            }
            CallSignal::Hangup { reason, by_us } => return self.end(now, reason, by_us),
            CallSignal::Leg { leg, signal } => self.on_leg_signal(now, leg, signal),
            CallSignal::Legs(command) => return self.handle_leg_command(now, command),
            CallSignal::Direction(direction) => {
                if let Some(change) = self.media.set_direction(now, direction) {
                    let record = change.record(direction);
                    tracing::info!(direction = direction.as_str(), "{}", record.kind());
                    if let (HoldChange::Resumed, Some(responder)) =
                        (change, self.responder.as_mut())
                    {
                        responder.resume_after_hold(now);
                    }
                    self.out.push(Output::Event(record));
                }
            }
            CallSignal::Transfer(progress) => {
                let record = transfer_record(&progress, self.transfer.as_deref());
                tracing::info!(status = %record.status, "transfer {}", record.status);
                self.out
                    .push(Output::Event(CallEventData::Transfer(record)));
                match progress {
                    TransferProgress::Succeeded { .. } => {
                        return self.end(now, EndReason::Transferred, true)
                    }
                    TransferProgress::Failed { reason } => {
                        self.transfer = None;
                        if let Some(responder) = self.responder.as_mut() {
                            responder.transfer_failed(now, &reason);
                        }
                    }
                    TransferProgress::Accepted | TransferProgress::Trying { .. } => {}
                }
            }
        }
        self.after_input(now);
    }

    /// The SIP side is gone (the edge is shutting down): the call ends without our BYE.
    pub fn handle_signals_closed(&mut self, now: Instant) {
        self.out.begin();
        self.end(now, EndReason::EdgeShutdown, false);
    }

    /// A provider result for the call's voice.
    pub fn handle_provider(&mut self, now: Instant, result: ProviderResult) {
        self.out.begin();
        if let Some(responder) = self.responder.as_mut() {
            responder.on_result(now, result, &mut self.media);
        }
        self.after_input(now);
    }

    /// Sends the first leg's packet of this tick, if one is due, with the tick's frames to the
    /// recording while the call is recorded; whether a packet went out.
    fn transmit_first_leg(&mut self, now: Instant) -> bool {
        let Some((to, packet)) = self.media.poll_transmit(now) else {
            return false;
        };
        self.out.push_packet(to, packet);
        let gap = self.media.take_skipped_ticks();
        if self.recording {
            let received = self
                .media
                .recorded_received_frame(now, self.caller_mask(now));
            self.out.push_record(gap, self.media.sent_frame(), received);
        }
        true
    }

    /// Time passed: the media tick (the agent hears the tick's caller frame, then the tick's
    /// packet is chosen), the voice's timers (paused while the call is held), RTCP, and the
    /// maximum duration.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.out.begin();
        if self.ended {
            return;
        }
        if now >= self.deadline {
            return self.end(now, EndReason::MaxDuration, true);
        }
        self.media.handle_timeout(now);
        let held = self.media.held();
        let paused = held || self.agent_muted();
        if let Some(responder) = self.responder.as_mut().filter(|_| !paused) {
            responder.handle_timeout(now);
        }
        let mut records = Vec::new();
        if !self.legs.is_empty() {
            self.tick_legs(now, held, &mut records);
            self.warm_progress(now);
        }
        while self.legs.is_empty() {
            // The agent hears this tick's caller frame before the tick's packet is chosen, so a
            // barge-in silences this very packet.
            if let Some(responder) = self.responder.as_mut().filter(|_| !held) {
                if let Some((arrived, frame)) = self.media.poll_received(now) {
                    responder.push_frame(arrived, frame);
                    responder.drive(now, &mut self.media, &mut records);
                }
            }
            if !self.transmit_first_leg(now) {
                break;
            }
        }
        for record in records {
            self.out.push(Output::Event(record));
        }
        if let Some((to, report)) = self.media.poll_rtcp_transmit(now) {
            self.out.push_rtcp(to, report);
        }
        self.after_input(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run; `None` once ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let mut wake = self.media.poll_timeout().min(self.deadline);
        if let Some(at) = self.legs.poll_timeout() {
            wake = wake.min(at);
        }
        // A held call's voice is paused (and a muted agent's): its timers wait for the resume.
        if let Some(at) = self
            .responder
            .as_ref()
            .filter(|_| !self.media.held() && !self.agent_muted())
            .and_then(Responder::poll_timeout)
        {
            wake = wake.min(at);
        }
        Some(wake)
    }

    /// The next thing to do; drain until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        self.out.pop()
    }

    /// The RTP clock rate of the stream we send (for the shell's departure measurements).
    pub fn clock_rate(&self) -> u32 {
        self.media.clock_rate()
    }

    /// Whether the call is to be recorded: the shell starts the recording's writer, which the
    /// [`Output::Record`] ticks feed.
    pub fn records(&self) -> bool {
        self.recording
    }

    /// Whether the call is over (its [`Output::Ended`] was queued).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Moves the voice along after an input and collects what it decided: call events,
    /// provider work, requests for the SIP side, the media's news, and whether the call ends.
    fn after_input(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        let foreign = self.media.foreign_received();
        if foreign > self.foreign_reported {
            self.out
                .push(Output::ForeignPackets(foreign - self.foreign_reported));
            self.foreign_reported = foreign;
        }
        self.legs_after_input(now);
        if self.ended {
            return;
        }
        let mut end = None;
        let mut pending_warm = Vec::new();
        if let Some(responder) = self.responder.as_mut() {
            let mut records = Vec::new();
            responder.drive(now, &mut self.media, &mut records);
            for record in records {
                self.out.push(Output::Event(record));
            }
            while let Some(request) = responder.poll_provider_request() {
                self.out.push(Output::Provider(request));
            }
            if let Some(reason) = responder.hangup() {
                end = Some(EndReason::from(reason));
            }
            while let Some(request) = responder.take_request() {
                if let AgentRequest::WarmTransfer {
                    destination,
                    whisper,
                } = request
                {
                    pending_warm.push((destination, whisper));
                    continue;
                }
                let (record, dialog) =
                    ending::agent_request(request, &mut self.media, &mut self.transfer);
                self.out.push(Output::Event(record));
                if let Some(dialog) = dialog {
                    self.out.push(Output::Dialog(dialog));
                }
            }
        }
        for (destination, whisper) in pending_warm {
            self.start_warm(now, destination, whisper);
        }
        while let Some(key) = self.media.poll_info_digit() {
            let digits = key.to_string();
            self.out
                .push(Output::Dialog(CallRequest::SendDtmf { digits }));
        }
        while let Some(event) = self.media.poll_event() {
            match event {
                MediaEvent::Dtmf(heard) => {
                    let mut record = heard.record();
                    if self.masks_digits(now) {
                        record.digit = MASKED_DIGIT.to_owned();
                    }
                    tracing::info!(digit = %record.digit, via = heard.via.as_str(), "digit pressed");
                    if let Some(responder) = self.responder.as_mut() {
                        responder.on_digit(now, heard.digit);
                    }
                    self.out.push(Output::Event(CallEventData::Dtmf(record)));
                }
                MediaEvent::Inactive => end = Some(EndReason::RtpTimeout),
                MediaEvent::HoldTimeout => end = Some(EndReason::HoldTimeout),
                MediaEvent::PlaybackFinished => {
                    tracing::debug!("agent finished speaking");
                    self.out.push(Output::PlaybackFinished);
                }
                MediaEvent::PlaybackCut => self.out.push(Output::PlaybackCut),
            }
        }
        if let Some(reason) = end {
            self.end(now, reason, true);
        }
    }
}

impl CallCore {
    /// Whether the caller's key presses are kept out of the record now: always when the
    /// agent's privacy asks for it, and while a workflow listens at a `sensitive` gather.
    fn masks_digits(&self, now: Instant) -> bool {
        self.mask_digits || self.responder.as_ref().is_some_and(|r| r.masks_digits(now))
    }

    /// What of the caller the recording leaves out now: all of it while a workflow collects at
    /// a `sensitive` gather (spoken or keyed, the answer is a secret), key tones when the
    /// agent's privacy masks digits.
    fn caller_mask(&self, now: Instant) -> CallerMask {
        if self.responder.as_ref().is_some_and(|r| r.masks_digits(now)) {
            CallerMask::Everything
        } else if self.mask_digits {
            CallerMask::KeyTones
        } else {
            CallerMask::Nothing
        }
    }

    /// A command from the control plane for the call's legs; a refusal is logged (and, for a
    /// dial, recorded as the leg's end).
    fn handle_leg_command(&mut self, now: Instant, command: LegCommand) {
        let done = match command {
            LegCommand::Dial {
                leg,
                to,
                edge,
                whisper: Some(whisper),
            } => {
                self.out.begin();
                let warm = WarmRequest {
                    destination: to,
                    whisper: Some(whisper),
                    by: "api",
                    wanted: Some(leg),
                    edge,
                };
                self.start_warm_with(now, warm);
                self.after_input(now);
                Ok(())
            }
            LegCommand::Dial {
                leg,
                to,
                edge,
                whisper: None,
            } => self
                .dial_on(now, &to, "api", Some(leg), edge.as_deref())
                .map(|_| ()),
            LegCommand::Hangup { leg } => self.hang_up_leg(now, leg),
            LegCommand::Bridge { legs, agent } => self.bridge(now, &legs, agent),
            LegCommand::Unbridge => self.unbridge(now),
        };
        if let Err(e) = done {
            tracing::info!(error = %e, "leg command refused");
        }
    }
}

impl crate::call::leg::ReceivedMedia for CallCore {
    fn handle_datagram(&mut self, now: Instant, source: std::net::SocketAddr, datagram: &[u8]) {
        CallCore::handle_datagram(self, now, source, datagram);
    }

    fn handle_rtcp(&mut self, now: Instant, source: std::net::SocketAddr, datagram: &[u8]) {
        CallCore::handle_rtcp(self, now, source, datagram);
    }

    fn handle_payload(&mut self, now: Instant, sequence: u16, timestamp: u32, payload: &[u8]) {
        CallCore::handle_payload(self, now, sequence, timestamp, payload);
    }
}

#[cfg(test)]
#[path = "core_tests/mod.rs"]
mod tests;

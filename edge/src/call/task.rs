//! The task that owns one answered call: its media leg (RTP sockets, or a provider's media
//! stream — see [`leg`](super::leg)) and media core, its signalling from the SIP task (or the
//! stream's task), its voice pipeline ([`Responder`]: an agent that listens, answers and is interrupted,
//! or a workflow run through the same pipeline), its limits (maximum duration, RTP inactivity)
//! and its call events. While the caller holds the call (a re-INVITE answered so that we
//! may not send), the agent is paused — no caller frames, no timers, no reprompts — and
//! `call.held` / `call.resumed` are recorded. Digits the caller presses are recorded as call
//! events and handed to a workflow. What the call needs of its dialog — hang up, transfer, digits by SIP INFO — it asks
//! of the SIP task as a [`DialogRequest`], and hears back as a [`CallSignal`]. Without a
//! [`VoiceFactory`] (or when the agent's providers or the workflow cannot be
//! built) the call is ended with a recorded reason rather than held in silence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};

use super::event_payloads::{rtcp_record, transfer_record};
use super::leg::MediaLeg;
use super::liveness::HoldChange;
use super::media::{CallMedia, MediaEvent, MediaSettings, SendDtmfError};
use super::providers::Providers;
use super::responder::{PinnedWorkflow, Responder};
use super::talk::{AgentRequest, CallParties};
use crate::recordings::writer::CallRecording;
use crate::recordings::RecordingOutbox;
use crate::rtp::departure::{rtp_timestamp, DepartureSpacing};
use crate::sip::endpoint::{ByeOutcome, TransferProgress};
use crate::sip::sdp::Direction;
use crate::state::EdgeState;
use crate::voice::VoiceFactory;
use freya_shared::model::call_payloads::{
    CallAnswered, CallEnded, CallFailed, CallStarted, DtmfHeard, DtmfSent, Extra, RtpRecord,
    TransferProgress as TransferRecord,
};
use freya_shared::model::{CallEvent, CallEventData, EndReason, FailReason};
use freya_shared::snapshot::AgentConfig;

/// What the SIP task tells a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSignal {
    /// The caller acknowledged our answer.
    Confirmed,
    /// A digit arrived by SIP INFO.
    Dtmf(char),
    /// The call is over at the signalling level (BYE, CANCEL, lost ACK, or our own BYE on the
    /// control plane's request — `by_us`).
    Hangup { reason: EndReason, by_us: bool },
    /// News of the transfer the call asked for.
    Transfer(TransferProgress),
    /// A re-INVITE changed our media direction (as we answered it): hold when we may not send,
    /// resume when we may again.
    Direction(Direction),
}

/// What a call (its conversation today, a workflow executor tomorrow) asks of the SIP task.
/// The channel waits when full: these are rare, and none may be lost.
#[derive(Debug)]
/// Each names the call by its `dialog`: the SIP Call-ID the SIP task knows it by.
pub enum DialogRequest {
    /// Send our BYE; `bye` hears its outcome (dropped unanswered when no BYE went out, see
    /// `call/bye.rs`).
    Hangup {
        dialog: String,
        bye: Option<oneshot::Sender<ByeOutcome>>,
    },
    /// Transfer the call blindly (REFER) to a number or SIP URI.
    Transfer { dialog: String, destination: String },
    /// Send digits by SIP INFO (the peer negotiated no telephone-event).
    SendDtmf { dialog: String, digits: String },
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    /// A caller dialled one of our numbers.
    Inbound,
    /// We called out through a provider.
    Outbound,
}

impl CallDirection {
    /// The name used in call records.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

/// An answered call, ready to run.
pub struct CallSetup {
    /// The call's id in its record and everywhere outside signalling: ours (UUIDv7), never a
    /// value the caller chose, so two callers cannot share or aim at one record.
    pub call_id: String,
    /// What the SIP task knows the call by: the SIP Call-ID of its dialog on this edge (the same
    /// as `call_id` for calls we place, whose Call-ID we chose; `call_id` for Twilio calls).
    pub dialog: String,
    pub direction: CallDirection,
    pub workspace_id: String,
    pub agent: AgentConfig,
    /// The workflow version that answers instead of `agent` (whose voice it then carries).
    pub workflow: Option<PinnedWorkflow>,
    pub caller: String,
    pub dialled: String,
    /// How the call's audio travels.
    pub leg: MediaLeg,
    /// What the call record says of the provider that carried the call, beside the parties
    /// (with `call.answered` if we called; in `call.started` as it came); `None` for a SIP
    /// call that rang in.
    pub provider: Option<CallAnswered>,
}

/// What every call on this edge shares.
#[derive(Clone)]
pub struct CallServices {
    pub edge_id: Arc<str>,
    pub state: EdgeState,
    pub events: mpsc::Sender<CallEvent>,
    /// Builds each call's voice pipeline; `None` answers calls with silence (tests of signalling).
    pub voice: Option<Arc<VoiceFactory>>,
    /// Where calls of agents with `record: true` are recorded; `None` records nothing.
    pub recordings: Option<RecordingOutbox>,
    pub media: MediaSettings,
    /// Where each outgoing packet's departure spacing is observed (the edge's `/metrics`).
    pub rtp_departure: Histogram,
    /// Where media dropped for coming from a stranger's address is counted (the edge's
    /// `/metrics`: `freya_edge_rtp_foreign_packets_total`).
    pub rtp_foreign: Counter,
}

/// Decrements the edge's call count however the task ends.
struct CallSlot(EdgeState);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.call_ended();
    }
}

/// How the call ended, for the record and for whether we send the BYE.
struct Ending {
    reason: EndReason,
    by_us: bool,
}

/// Runs the call until either side ends it (spawn it inside a `call` span carrying `call_id`,
/// `edge` and `workspace`). The caller of this function already counted the call
/// in with `EdgeState::call_started`. Asks the SIP task on `requests` for our BYE, a transfer,
/// or digits by INFO.
pub async fn run(
    setup: CallSetup,
    mut signals: mpsc::Receiver<CallSignal>,
    services: CallServices,
    requests: mpsc::Sender<DialogRequest>,
) {
    let _slot = CallSlot(services.state.clone());
    let CallSetup {
        call_id,
        dialog,
        direction,
        workspace_id,
        agent,
        workflow,
        caller,
        dialled,
        leg,
        provider,
    } = setup;
    let audio = leg.audio();
    let media_kind = leg.kind();
    let event = |data| CallEvent::new(call_id.clone(), workspace_id.clone(), data);
    let started = Instant::now();
    // Events wait rather than drop: the spool behind this channel is the call's record. An
    // outbound call was recorded as started when it was dialled.
    if direction == CallDirection::Inbound {
        let _ = services
            .events
            .send(event(CallEventData::Started(CallStarted {
                direction: Some(direction.as_str().to_owned()),
                from: Some(caller.clone()),
                to: Some(dialled.clone()),
                agent_id: Some(workflow.is_none().then(|| agent.id.clone())),
                workflow_id: Some(workflow.as_ref().map(|w| w.config.id.clone())),
                workflow_version: Some(workflow.as_ref().map(|w| u64::from(w.config.version))),
                edge_id: Some(services.edge_id.to_string()),
                codec: Some(format!("{:?}", audio.codec)),
                media: Some(media_kind.to_owned()),
                sip_call_id: Some((media_kind != "media_stream").then(|| dialog.clone())),
                provider: Some(serde_json::to_value(&provider).unwrap_or_default()),
                ..CallStarted::default()
            })))
            .await;
    }
    // A call we placed: the trunk or account that carried it, and the attempts that failed first.
    let answered = match direction {
        CallDirection::Outbound => provider.clone().unwrap_or_default(),
        CallDirection::Inbound => CallAnswered::default(),
    };
    let _ = services
        .events
        .send(event(CallEventData::Answered(answered)))
        .await;
    tracing::info!(from = %caller, to = %dialled, agent = %agent.id, "call answered");

    // The call cannot carry media: hang up and record why.
    let end_without_media = |reason: EndReason| {
        let hangup = DialogRequest::Hangup {
            dialog: dialog.clone(),
            bye: None,
        };
        let ended = event(CallEventData::Ended(CallEnded::because(reason)));
        let (requests, events) = (requests.clone(), services.events.clone());
        async move {
            let _ = requests.send(hangup).await;
            let _ = events.send(ended).await;
        }
    };
    let mut media = match CallMedia::new(started, &audio, &services.media) {
        Ok(media) => media,
        Err(e) => {
            tracing::error!(error = %e, "cannot carry this call's media");
            return end_without_media(EndReason::UnsupportedCodec).await;
        }
    };
    // A provider's media stream reports digits in its own messages, not as tones.
    if media_kind == "media_stream" {
        media.stop_listening_for_tones();
    }
    let mut leg = match leg.into_io() {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(error = %e, "cannot take the call's RTP socket off the reactor");
            return end_without_media(EndReason::MediaSocketError).await;
        }
    };
    let mut talk = None;
    let mut misconfigured = None;
    let mut providers = services
        .voice
        .as_ref()
        .map(|factory| Providers::new(call_id.clone(), factory.egress().clone()));
    if let Some(factory) = services.voice.as_ref() {
        let parties = CallParties {
            call_id: &call_id,
            caller: &caller,
            called: &dialled,
            sends_digits: media_kind != "media_stream",
        };
        match Responder::start(Instant::now(), factory, &agent, workflow.as_ref(), &parties) {
            Ok(t) => talk = Some(t),
            Err(e) => {
                tracing::error!(reason = e.reason, field = %e.field, detail = %e.detail, "the call's voice pipeline cannot be built");
                misconfigured = Some(e.reason);
                let _ = services
                    .events
                    .send(event(CallEventData::Failed(CallFailed {
                        field: Some(e.field.clone()),
                        detail: Some(e.detail.clone().into()),
                        ..CallFailed::because(FailReason::parse(e.reason))
                    })))
                    .await;
            }
        }
    }
    let mut recording = start_recording(&services, &agent, &call_id, &workspace_id);
    let max_duration = Duration::from_secs(u64::from(agent.spec.max_call_seconds));
    let deadline = tokio::time::Instant::from_std(started + max_duration);
    let mut records: Vec<CallEventData> = Vec::new();
    // The destination of the transfer under way, for its events and the call's ending.
    let mut transfer: Option<String> = None;
    let mut departures = DepartureSpacing::new();
    // Foreign datagrams already added to the edge's counter.
    let mut foreign_counted = 0;
    // One timer each for the next media tick and the call's time limit, moved rather than
    // rebuilt on every turn of the loop.
    let tick = tokio::time::sleep_until(tokio::time::Instant::from_std(media.poll_timeout()));
    tokio::pin!(tick);
    let time_limit = tokio::time::sleep_until(deadline);
    tokio::pin!(time_limit);
    let ending = loop {
        if let Some(reason) = misconfigured {
            break Ending {
                reason: reason.into(),
                by_us: true,
            };
        }
        let mut wake = media.poll_timeout();
        // A held call's agent is paused: its timers wait for the resume.
        if let Some(at) = talk
            .as_ref()
            .filter(|_| !media.held())
            .and_then(Responder::poll_timeout)
        {
            wake = wake.min(at);
        }
        let wake = tokio::time::Instant::from_std(wake);
        if tick.deadline() != wake {
            tick.as_mut().reset(wake);
        }
        tokio::select! {
            input = leg.recv() => leg.deliver(Instant::now(), input, &mut media),
            _ = &mut tick => {
                let now = Instant::now();
                leg.receive_ready(now, &mut media);
                media.handle_timeout(now);
                if let Some(talk) = talk.as_mut().filter(|_| !media.held()) {
                    talk.handle_timeout(now);
                }
                loop {
                    // The agent hears this tick's caller frame before the tick's packet is
                    // chosen, so a barge-in silences this very packet.
                    if let Some(talk) = talk.as_mut().filter(|_| !media.held()) {
                        if let Some((arrived, frame)) = media.poll_received(now) {
                            talk.push_frame(arrived, frame);
                            talk.drive(now, &mut media, &mut records);
                        }
                    }
                    let clock_rate = media.clock_rate();
                    let Some((to, packet)) = media.poll_transmit(now) else { break };
                    let timestamp = rtp_timestamp(packet);
                    leg.send(to, packet);
                    if let Some(stray) = timestamp.and_then(|ts| departures.on_departure(Instant::now(), ts, clock_rate)) {
                        services.rtp_departure.observe(stray.as_secs_f64());
                    }
                    if let Some(recording) = recording.as_mut() {
                        recording.on_tick(media.sent_frame(), media.peek_received_frame());
                    }
                }
                if let Some((to, report)) = media.poll_rtcp_transmit(now) {
                    leg.send_rtcp(to, report).await;
                }
            }
            signal = signals.recv() => match signal {
                Some(CallSignal::Confirmed) => tracing::debug!("call confirmed by ACK"),
                Some(CallSignal::Dtmf(digit)) => {
                    // The peer signals digits out of band: tones in its audio would count twice.
                    media.stop_listening_for_tones();
                    if let Some(talk) = talk.as_mut() {
                        talk.on_digit(Instant::now(), digit);
                    }
                    let heard = DtmfHeard { digit: digit.to_string(), via: "sip_info".to_owned(), duration_ms: None, extra: Extra::new() };
                    let _ = services.events.send(event(CallEventData::Dtmf(heard))).await;
                }
                Some(CallSignal::Hangup { reason, by_us }) => break Ending { reason, by_us },
                Some(CallSignal::Direction(direction)) => {
                    let now = Instant::now();
                    if let Some(change) = media.set_direction(now, direction) {
                        let record = change.record(direction);
                        tracing::info!(direction = direction.as_str(), "{}", record.kind());
                        if let (HoldChange::Resumed, Some(talk)) = (change, talk.as_mut()) {
                            talk.resume_after_hold(now);
                        }
                        let _ = services.events.send(event(record)).await;
                    }
                }
                Some(CallSignal::Transfer(progress)) => {
                    let done = matches!(progress, TransferProgress::Succeeded { .. });
                    let record = transfer_record(&progress, transfer.as_deref());
                    tracing::info!(status = %record.status, "transfer {}", record.status);
                    let _ = services.events.send(event(CallEventData::Transfer(record))).await;
                    if done {
                        break Ending { reason: EndReason::Transferred, by_us: true };
                    }
                    if let TransferProgress::Failed { .. } = progress {
                        transfer = None;
                        if let Some(talk) = talk.as_mut() {
                            talk.transfer_failed(Instant::now());
                        }
                    }
                }
                None => break Ending { reason: EndReason::EdgeShutdown, by_us: false },
            },
            result = async {
                match providers.as_mut() {
                    Some(providers) => providers.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(talk) = talk.as_mut() {
                    talk.on_result(Instant::now(), result, &mut media);
                }
            }
            _ = &mut time_limit => break Ending { reason: EndReason::MaxDuration, by_us: true },
        }
        let foreign = media.foreign_received();
        if foreign > foreign_counted {
            services.rtp_foreign.inc_by(foreign - foreign_counted);
            foreign_counted = foreign;
        }
        let mut end = None;
        if let Some(talk) = talk.as_mut() {
            talk.drive(Instant::now(), &mut media, &mut records);
            for record in records.drain(..) {
                // Events wait rather than drop: they are the call's record.
                let _ = services.events.send(event(record)).await;
            }
            if let Some(reason) = talk.hangup() {
                end = Some(Ending {
                    reason: reason.into(),
                    by_us: true,
                });
            }
            while let Some(request) = talk.poll_provider_request() {
                if let Some(providers) = providers.as_mut() {
                    providers.execute(request);
                }
            }
            while let Some(request) = talk.take_request() {
                let (record, dialog) = agent_request(&dialog, request, &mut media, &mut transfer);
                let _ = services.events.send(event(record)).await;
                if let Some(dialog) = dialog {
                    let _ = requests.send(dialog).await;
                }
            }
        }
        while let Some(media_event) = media.poll_event() {
            match media_event {
                MediaEvent::Dtmf(heard) => {
                    tracing::info!(digit = %heard.digit, via = heard.via.as_str(), "digit pressed");
                    if let Some(talk) = talk.as_mut() {
                        talk.on_digit(Instant::now(), heard.digit);
                    }
                    let record = event(CallEventData::Dtmf(heard.record()));
                    let _ = services.events.send(record).await;
                }
                MediaEvent::Inactive => {
                    end = Some(Ending {
                        reason: EndReason::RtpTimeout,
                        by_us: true,
                    })
                }
                MediaEvent::HoldTimeout => {
                    end = Some(Ending {
                        reason: EndReason::HoldTimeout,
                        by_us: true,
                    })
                }
                MediaEvent::PlaybackFinished => {
                    tracing::debug!("agent finished speaking");
                    leg.playback_finished();
                }
                MediaEvent::PlaybackCut => leg.playback_cut(),
            }
        }
        if let Some(end) = end {
            break end;
        }
    };
    if let Some(talk) = talk.as_mut() {
        for record in talk.shutdown(Instant::now()) {
            let _ = services.events.send(event(record)).await;
        }
    }
    if let Some((to, report)) = media.close_rtcp(Instant::now()) {
        leg.send_rtcp(to, report).await;
    }
    if let Some(recording) = recording.take() {
        recording.finish();
    }
    let bye_outcome = match ending.by_us {
        true => super::bye::send_bye(&requests, &dialog).await,
        false => None,
    };
    let stats = media.stats();
    tracing::info!(
        reason = %ending.reason,
        received = stats.packets_received,
        sent = stats.packets_sent,
        "call ended"
    );
    let _ = services
        .events
        .send(event(CallEventData::Ended(CallEnded {
            hangup_by: Some(if ending.by_us { "agent" } else { "caller" }.to_owned()),
            bye_outcome: Some(bye_outcome),
            transferred_to: Some(transfer.filter(|_| ending.reason == EndReason::Transferred)),
            duration_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            rtp: Some(RtpRecord {
                received: stats.packets_received,
                sent: stats.packets_sent,
                lost: stats.jitter.lost,
                late: stats.jitter.late,
                junk: stats.junk_received,
                foreign: stats.foreign_received,
                jitter_ms: u64::from(stats.interarrival_jitter_ms),
                extra: Extra::new(),
            }),
            rtcp: Some(rtcp_record(&stats)),
            ..CallEnded::because(ending.reason.clone())
        })))
        .await;
}

/// The call's recording when its agent asks for one and this edge records calls. A recording
/// that cannot start is logged; the call goes on without it.
fn start_recording(
    services: &CallServices,
    agent: &AgentConfig,
    call_id: &str,
    workspace_id: &str,
) -> Option<CallRecording> {
    let outbox = services.recordings.as_ref().filter(|_| agent.spec.record)?;
    match CallRecording::start(outbox, call_id, workspace_id) {
        Ok(recording) => {
            tracing::info!(recording = recording.id(), "recording the call");
            Some(recording)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the call's recording; the call goes on unrecorded");
            None
        }
    }
}

/// Carries out what the agent asked for: a transfer goes to the SIP task (REFER); digits go
/// into the RTP stream, or to the SIP task (INFO) when the peer has no telephone-event. Returns
/// the call event to record and the request for the SIP task, if any.
fn agent_request(
    dialog: &str,
    request: AgentRequest,
    media: &mut CallMedia,
    transfer: &mut Option<String>,
) -> (CallEventData, Option<DialogRequest>) {
    let dialog = dialog.to_owned();
    match request {
        AgentRequest::Transfer(destination) => {
            tracing::info!(%destination, "the agent transfers the call");
            *transfer = Some(destination.clone());
            let record = CallEventData::Transfer(TransferRecord {
                status: "requested".to_owned(),
                destination: Some(destination.clone()),
                code: None,
                reason: None,
                extra: Extra::new(),
            });
            let request = DialogRequest::Transfer {
                dialog,
                destination,
            };
            (record, Some(request))
        }
        AgentRequest::SendDtmf(digits) => {
            let sent = |via: &str, error: Option<String>| DtmfSent {
                digits: digits.clone(),
                via: (!via.is_empty()).then(|| via.to_owned()),
                error,
                extra: Extra::new(),
            };
            match media.send_dtmf(&digits) {
                Ok(()) => (CallEventData::DtmfSent(sent("rfc4733", None)), None),
                Err(SendDtmfError::NoTelephoneEvent) => {
                    let record = CallEventData::DtmfSent(sent("sip_info", None));
                    let request = DialogRequest::SendDtmf { dialog, digits };
                    (record, Some(request))
                }
                Err(e) => (
                    CallEventData::DtmfFailed(sent("", Some(e.to_string()))),
                    None,
                ),
            }
        }
    }
}

//! The task that owns one answered call: a shell around its [`CallCore`], which makes every
//! decision. The task owns only what does I/O — the media leg (RTP sockets or a provider's
//! media stream, [`leg`](super::leg)), the provider work ([`Providers`]), the channels to the
//! SIP task and the edge's events, the recording's writer, the clock. It hands the leg, the
//! core's deadline, [`CallSignal`]s and provider results to the core, then does what its outputs
//! say (send a packet, record an event, a [`DialogRequest`], provider work, the recording, the
//! metrics) until the call has ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::core::{
    CallCore, CallEnding, CallRequest, CallStart, EndedEarly, LegCommand, LegId, LegRequest,
    LegSignal, Output,
};
use super::leg::{LegIo, MediaLeg};
use super::media::MediaSettings;
use super::ports::MediaSockets;
use super::providers::Providers;
use super::responder::PinnedWorkflow;
use super::task_mesh::RemoteLegs;
use crate::recordings::writer::CallRecording;
use crate::recordings::RecordingOutbox;
use crate::rtp::departure::{rtp_timestamp, DepartureSpacing};
use crate::sip::endpoint::{ByeOutcome, TransferProgress};
use crate::sip::sdp::Direction;
use crate::state::EdgeState;
use crate::voice::VoiceFactory;
use freya_shared::model::call_payloads::CallAnswered;
use freya_shared::model::{CallEvent, CallEventData, EndReason};
use freya_shared::recording_spool::RecordingPublicKey;
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
    /// News of a leg the call dialled.
    Leg { leg: LegId, signal: LegSignal },
    /// The control plane's command for the call's legs.
    Legs(LegCommand),
}

/// What a call asks of the SIP task, each naming the call by its `dialog` (the SIP Call-ID the
/// SIP task knows it by). The channel waits when full: these are rare, and none may be lost.
#[derive(Debug)]
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
    /// Dial a party as a new leg of the call (its news comes back as [`CallSignal::Leg`]).
    DialLeg(Box<crate::sip::transport::LegDial>),
    /// Hang up a leg of the call (CANCEL or BYE).
    HangupLeg { dialog: String, leg: LegId },
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
    /// The call's trace: its task runs in `trace.span`; the setup span ends when it starts.
    pub trace: crate::telemetry::CallTrace,
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
    /// Limits on the parties a call may add (`[legs]`).
    pub legs: super::core::LegSettings,
    /// Where each outgoing packet's departure spacing is observed (the edge's `/metrics`).
    pub rtp_departure: Histogram,
    /// Where media dropped for coming from a stranger's address is counted (the edge's
    /// `/metrics`: `freya_edge_rtp_foreign_packets_total`).
    pub rtp_foreign: Counter,
    /// SRTP for calls (`[srtp]`): the inbound policy and the replay window.
    pub srtp: crate::config::SrtpConfig,
    /// Where SRTP packets a call refused are counted (`/metrics`:
    /// `freya_edge_srtp_packets_dropped_total{reason}`).
    pub srtp_dropped: crate::metrics::SrtpDropCounter,
    /// Where provider latency and errors are counted (`/metrics`).
    pub(crate) providers: crate::metrics::ProviderMetrics,
    /// The QUIC mesh, for legs another edge dials; `None` without `[mesh] listen`.
    pub(crate) mesh: Option<crate::mesh::MeshAccess>,
}

/// Decrements the edge's call count however the task ends.
struct CallSlot(EdgeState);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.call_ended();
    }
}

/// Runs the call until either side ends it (spawn it inside a `call` span carrying `call_id`,
/// `edge` and `workspace`). The caller of this function already counted the call
/// in with `EdgeState::call_started`. Asks the SIP task on `requests` for our BYE, a transfer,
/// or digits by INFO.
///
/// Not an `async fn` itself: an `async fn` keeps its arguments in its future for the whole call
/// (the setup's 1.5 KiB beside the copies its fields are moved into), so the setup goes in boxed
/// and is consumed by [`begin`] before the first `.await`.
pub fn run(
    setup: CallSetup,
    signals: mpsc::Receiver<CallSignal>,
    services: CallServices,
    requests: mpsc::Sender<DialogRequest>,
) -> impl std::future::Future<Output = ()> {
    run_boxed(Box::new(setup), signals, services, requests)
}

async fn run_boxed(
    setup: Box<CallSetup>,
    mut signals: mpsc::Receiver<CallSignal>,
    services: CallServices,
    requests: mpsc::Sender<DialogRequest>,
) {
    let _slot = CallSlot(services.state.clone());
    let (mut shell, mut core, leg, providers) = match begin(*setup, services, requests) {
        Begun::Running(running) => running,
        Begun::EndedEarly(shell, early) => return Box::pin(shell.end_early(early)).await,
    };
    let ending = shell.drive(&mut core, leg, providers, &mut signals).await;
    // Boxed: the ending's future is the largest part of the call's and lives only at its end.
    Box::pin(shell.end(ending)).await;
}

/// A call under way: its shell, core (boxed: held for the whole call, kept out of the
/// task's future so that no temporary copy of it is kept there too), leg and provider side.
type Running = (Shell, Box<CallCore>, LegIo, Option<Providers>);

/// How [`begin`] went: the call runs, or it ended before it could carry media.
enum Begun {
    Running(Running),
    EndedEarly(Shell, Box<EndedEarly>),
}

/// Starts the call from its setup, without waiting on anything: the setup's fields are dropped
/// here, before the task's first `.await`, so its future does not keep them for the call's life.
fn begin(setup: CallSetup, services: CallServices, requests: mpsc::Sender<DialogRequest>) -> Begun {
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
        mut trace,
    } = setup;
    trace.setup_done();
    let trace_id = trace.trace_id();
    let trace_span_id = trace.span_id();
    let start = CallStart {
        trace_id: trace_id.as_deref(),
        trace_span_id: trace_span_id.as_deref(),
        call_id: &call_id,
        dialog: &dialog,
        direction,
        edge_id: &services.edge_id,
        agent: &agent,
        workflow: workflow.as_ref(),
        caller: &caller,
        dialled: &dialled,
        provider: provider.as_ref(),
        audio: leg.audio(),
        media_stream: leg.kind() == "media_stream",
        media: &services.media,
        voice: services.voice.as_ref(),
        can_record: services.recordings.is_some(),
        legs: services.legs,
    };
    let mut shell = Shell {
        event: EventStamp(call_id.clone(), workspace_id.clone()),
        dialog: dialog.clone(),
        // Our side's number is the caller id toward an added party.
        our_number: match direction {
            CallDirection::Inbound => dialled.clone(),
            CallDirection::Outbound => caller.clone(),
        },
        legs: HashMap::new(),
        leg_sockets: HashMap::new(),
        remote: RemoteLegs::new(services.mesh.clone(), &call_id, &workspace_id),
        services: services.clone(),
        requests,
        recording: None,
        departures: DepartureSpacing::new(),
        clock_rate: 0,
    };
    let leg = match leg.into_io(&services.srtp_dropped) {
        Ok(leg) => leg,
        Err(e) => {
            tracing::error!(error = %e, "cannot take the call's RTP socket off the reactor");
            return Begun::EndedEarly(shell, start.ended_early(EndReason::MediaSocketError));
        }
    };
    let core = match CallCore::start(Instant::now(), start) {
        Ok(core) => Box::new(core),
        Err(early) => return Begun::EndedEarly(shell, early),
    };
    shell.clock_rate = core.clock_rate();
    if core.records() {
        shell.recording = start_recording(&services, &call_id, &workspace_id);
    }
    let providers = services.voice.as_ref().map(|factory| {
        Providers::new(
            call_id.clone(),
            factory.egress().clone(),
            services.providers.clone(),
        )
    });
    Begun::Running((shell, core, leg, providers))
}

/// Names a call's events with its call and workspace.
struct EventStamp(String, String);

impl EventStamp {
    fn event(&self, data: CallEventData) -> CallEvent {
        CallEvent::new(self.0.clone(), self.1.clone(), data)
    }
}

/// What the task owns around the core besides the leg and the providers.
struct Shell {
    event: EventStamp,
    dialog: String,
    our_number: String,
    /// Added legs' media I/O, once answered.
    legs: HashMap<LegId, LegIo>,
    /// Added legs' RTP sockets, handed over by the SIP task as it dials them.
    leg_sockets: HashMap<LegId, oneshot::Receiver<MediaSockets>>,
    /// Legs other edges dial and carry over the mesh.
    remote: RemoteLegs,
    services: CallServices,
    requests: mpsc::Sender<DialogRequest>,
    recording: Option<CallRecording>,
    departures: DepartureSpacing,
    clock_rate: u32,
}

impl Shell {
    /// Moves bytes, time, signals and provider results into the core until it ends the call.
    async fn drive(
        &mut self,
        core: &mut CallCore,
        mut leg: LegIo,
        mut providers: Option<Providers>,
        signals: &mut mpsc::Receiver<CallSignal>,
    ) -> CallEnding {
        // One timer for the core's deadline, moved rather than rebuilt on every turn.
        let tick = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(tick);
        loop {
            if let Some(ending) = self.carry_out(core, &mut leg, providers.as_mut()).await {
                return ending;
            }
            if let Some(wake) = core.poll_timeout().map(tokio::time::Instant::from_std) {
                if tick.deadline() != wake {
                    tick.as_mut().reset(wake);
                }
            }
            tokio::select! {
                input = leg.recv() => leg.deliver(Instant::now(), input, core),
                _ = &mut tick => {
                    let now = Instant::now();
                    leg.receive_ready(now, core);
                    for (id, io) in &mut self.legs {
                        io.receive_ready(now, &mut AddedLeg(core, *id));
                    }
                    core.handle_timeout(now);
                }
                signal = signals.recv() => match signal {
                    Some(signal) => {
                        self.take_leg_media(&signal);
                        core.handle_signal(Instant::now(), signal)
                    }
                    None => core.handle_signals_closed(Instant::now()),
                },
                (id, news) = self.remote.recv() => self.remote.deliver(Instant::now(), id, news, core),
                result = async {
                    match providers.as_mut() {
                        Some(providers) => providers.recv().await,
                        None => std::future::pending().await,
                    }
                } => core.handle_provider(Instant::now(), result),
            }
        }
    }

    /// Does what the core's outputs say; returns the ending once the core has ended the call.
    async fn carry_out(
        &mut self,
        core: &mut CallCore,
        leg: &mut LegIo,
        mut providers: Option<&mut Providers>,
    ) -> Option<CallEnding> {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Transmit { to, packet } => {
                    leg.send(to, packet);
                    let departed = rtp_timestamp(packet).and_then(|ts| {
                        self.departures
                            .on_departure(Instant::now(), ts, self.clock_rate)
                    });
                    if let Some(stray) = departed {
                        self.services.rtp_departure.observe(stray.as_secs_f64());
                    }
                }
                Output::Rtcp { to, report } => leg.send_rtcp(to, report).await,
                Output::Record {
                    gap,
                    sent,
                    received,
                } => {
                    if let Some(recording) = self.recording.as_mut() {
                        recording.on_tick(gap, sent, received);
                    }
                }
                // Events wait rather than drop: the spool behind this channel is the record.
                Output::Event(data) => {
                    let _ = self.services.events.send(self.event.event(data)).await;
                }
                Output::Dialog(request) => {
                    let dialog = self.dialog.clone();
                    let request = match request {
                        CallRequest::Transfer { destination } => DialogRequest::Transfer {
                            dialog,
                            destination,
                        },
                        CallRequest::SendDtmf { digits } => {
                            DialogRequest::SendDtmf { dialog, digits }
                        }
                    };
                    let _ = self.requests.send(request).await;
                }
                Output::Provider(request) => {
                    if let Some(providers) = providers.as_deref_mut() {
                        providers.execute(request);
                    }
                }
                Output::PlaybackFinished => leg.playback_finished(),
                Output::PlaybackCut => leg.playback_cut(),
                Output::ForeignPackets(n) => {
                    self.services.rtp_foreign.inc_by(n);
                }
                Output::LegTransmit { leg, to, packet } => {
                    if let Some(io) = self.legs.get_mut(&leg) {
                        io.send(to, packet);
                    }
                }
                Output::LegRtcp { leg, to, report } => {
                    if let Some(io) = self.legs.get_mut(&leg) {
                        io.send_rtcp(to, report).await;
                    }
                }
                Output::MeshTransmit {
                    leg,
                    sequence,
                    timestamp,
                    payload,
                } => self.remote.send_audio(leg, sequence, timestamp, payload),
                Output::Leg(request) => self.carry_out_leg(request).await,
                Output::Ended(ending) => return Some(ending),
            }
        }
        None
    }

    /// Dials a leg (its trunks resolved beside the call, which goes on meanwhile) or hangs one
    /// up (its sockets closed now).
    async fn carry_out_leg(&mut self, request: LegRequest) {
        match request {
            LegRequest::Dial {
                leg,
                to,
                edge: Some(edge),
            } => self.remote.dial(leg, &to, &edge),
            LegRequest::Dial {
                leg,
                to,
                edge: None,
            } => {
                let (sockets, taken) = oneshot::channel();
                self.leg_sockets.insert(leg, taken);
                let snapshot = self.services.state.snapshot();
                let providers: Vec<_> = snapshot
                    .providers_for(&self.event.1)
                    .into_iter()
                    .cloned()
                    .collect();
                let (dialog, from) = (self.dialog.clone(), self.our_number.clone());
                let requests = self.requests.clone();
                let dial = async move {
                    let trunks = crate::control_link::commands::sip_trunks(&providers).await;
                    let dial = crate::sip::transport::LegDial {
                        dialog,
                        leg,
                        to,
                        from,
                        trunks,
                        sockets,
                    };
                    let _ = requests.send(DialogRequest::DialLeg(Box::new(dial))).await;
                };
                tokio::spawn(dial.in_current_span());
            }
            LegRequest::Hangup { leg } if self.remote.hang_up(leg) => {}
            LegRequest::Hangup { leg } => {
                self.legs.remove(&leg);
                self.leg_sockets.remove(&leg);
                let dialog = self.dialog.clone();
                let _ = self
                    .requests
                    .send(DialogRequest::HangupLeg { dialog, leg })
                    .await;
            }
        }
    }

    /// An answered leg's sockets, handed over before its answer: ready for its media.
    fn take_leg_media(&mut self, signal: &CallSignal) {
        let CallSignal::Leg {
            leg,
            signal: LegSignal::Answered(audio),
        } = signal
        else {
            return;
        };
        let Some(sockets) = self
            .leg_sockets
            .remove(leg)
            .and_then(|mut s| s.try_recv().ok())
        else {
            return;
        };
        let media = MediaLeg::Rtp {
            audio: *audio,
            sockets,
            // Added legs are dialled with plain RTP (see SECURITY.md, SRTP).
            srtp: None,
        };
        match media.into_io(&self.services.srtp_dropped) {
            Ok(io) => {
                self.legs.insert(*leg, io);
            }
            Err(e) => {
                tracing::warn!(%leg, error = %e, "cannot take a leg's RTP socket off the reactor")
            }
        }
    }

    /// Finishes the recording, sends our BYE when the core says we hang up, and records the
    /// `call.ended` the core wrote, with the BYE's outcome.
    async fn end(mut self, ending: CallEnding) {
        if let Some(recording) = self.recording.take() {
            recording.finish();
        }
        let bye_outcome = match ending.hang_up {
            true => super::bye::send_bye(&self.requests, &self.dialog).await,
            false => None,
        };
        let mut record = ending.record;
        record.bye_outcome = Some(bye_outcome);
        let ended = self.event.event(CallEventData::Ended(record));
        let _ = self.services.events.send(ended).await;
    }

    /// A call that cannot carry media: its opening records, a hang-up, and its end.
    async fn end_early(self, early: Box<EndedEarly>) {
        for record in early.records {
            let _ = self.services.events.send(self.event.event(record)).await;
        }
        let hangup = DialogRequest::Hangup {
            dialog: self.dialog.clone(),
            bye: None,
        };
        let _ = self.requests.send(hangup).await;
        let ended = self.event.event(CallEventData::Ended(early.ended));
        let _ = self.services.events.send(ended).await;
    }
}

/// An added leg's received media, handed to the core under the leg's id.
struct AddedLeg<'a>(&'a mut CallCore, LegId);

impl super::leg::ReceivedMedia for AddedLeg<'_> {
    fn handle_datagram(&mut self, now: Instant, source: std::net::SocketAddr, datagram: &[u8]) {
        self.0.handle_leg_datagram(now, self.1, source, datagram);
    }

    fn handle_rtcp(&mut self, now: Instant, source: std::net::SocketAddr, datagram: &[u8]) {
        self.0.handle_leg_rtcp(now, self.1, source, datagram);
    }

    fn handle_payload(&mut self, _: Instant, _: u16, _: u32, _: &[u8]) {}
}

/// The call's recording in this edge's outbox; one that cannot start is logged, never fatal.
fn start_recording(
    services: &CallServices,
    call_id: &str,
    workspace_id: &str,
) -> Option<CallRecording> {
    let outbox = services.recordings.as_ref()?;
    // Never in the clear on this disk: without the control plane's recording key (a control
    // plane of an earlier release, or no snapshot yet) the call is not recorded.
    let snapshot = services.state.snapshot();
    let key = snapshot
        .recording_key
        .as_deref()
        .and_then(RecordingPublicKey::from_hex);
    let Some(key) = key else {
        tracing::error!(
            "the control plane has sent no recording key; this call is not recorded (recordings are never written in the clear)"
        );
        return None;
    };
    match CallRecording::start(outbox, call_id, workspace_id, key) {
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

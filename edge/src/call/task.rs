//! The task that owns one answered call: its RTP socket and media core, its signalling from the
//! SIP task, its voice pipeline ([`Responder`]: an agent that listens, answers and is interrupted,
//! or a workflow run through the same pipeline), its limits (maximum duration, RTP inactivity)
//! and its call events. Digits the caller presses are recorded as call events and handed to a
//! workflow. Without a [`VoiceFactory`] (or when the agent's providers or the workflow cannot be
//! built) the call is ended with a recorded reason rather than held in silence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::media::{CallMedia, MediaEvent, MediaSettings};
use super::responder::{PinnedWorkflow, Responder};
use super::talk::CallParties;
use crate::sip::sdp::NegotiatedAudio;
use crate::state::EdgeState;
use crate::voice::VoiceFactory;
use freya_shared::model::{CallEvent, CallEventKind};
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
    Hangup { reason: &'static str, by_us: bool },
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
    pub call_id: String,
    pub direction: CallDirection,
    pub workspace_id: String,
    pub agent: AgentConfig,
    /// The workflow version that answers instead of `agent` (whose voice it then carries).
    pub workflow: Option<PinnedWorkflow>,
    pub caller: String,
    pub dialled: String,
    pub audio: NegotiatedAudio,
    pub socket: UdpSocket,
}

/// What every call on this edge shares.
#[derive(Clone)]
pub struct CallServices {
    pub edge_id: Arc<str>,
    pub state: EdgeState,
    pub events: mpsc::Sender<CallEvent>,
    /// Builds each call's voice pipeline; `None` answers calls with silence (tests of signalling).
    pub voice: Option<Arc<VoiceFactory>>,
    pub media: MediaSettings,
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
    reason: &'static str,
    by_us: bool,
}

/// Runs the call until either side ends it (spawn it inside a `call` span carrying `call_id`,
/// `edge` and `workspace`). The caller of this function already counted the call
/// in with `EdgeState::call_started`. Sends the call id on `hangups` when the SIP task must send
/// our BYE.
pub async fn run(
    setup: CallSetup,
    mut signals: mpsc::Receiver<CallSignal>,
    services: CallServices,
    hangups: mpsc::Sender<String>,
) {
    let _slot = CallSlot(services.state.clone());
    let CallSetup {
        call_id,
        direction,
        workspace_id,
        agent,
        workflow,
        caller,
        dialled,
        audio,
        socket,
    } = setup;
    let event =
        |kind, payload| CallEvent::new(call_id.clone(), workspace_id.clone(), kind, payload);
    let started = Instant::now();
    // Events wait rather than drop: the spool behind this channel is the call's record. An
    // outbound call was recorded as started when it was dialled.
    if direction == CallDirection::Inbound {
        let _ = services
            .events
            .send(event(
                CallEventKind::Started,
                serde_json::json!({"direction": direction.as_str(), "from": caller, "to": dialled,
                                   "agent_id": workflow.is_none().then_some(&agent.id),
                                   "workflow_id": workflow.as_ref().map(|w| &w.config.id),
                                   "workflow_version": workflow.as_ref().map(|w| w.config.version),
                                   "edge_id": &*services.edge_id,
                                   "codec": format!("{:?}", audio.codec)}),
            ))
            .await;
    }
    let _ = services
        .events
        .send(event(CallEventKind::Answered, serde_json::json!({})))
        .await;
    tracing::info!(from = %caller, to = %dialled, agent = %agent.id, "call answered");

    let mut media = match CallMedia::new(started, &audio, services.media) {
        Ok(media) => media,
        Err(e) => {
            tracing::error!(error = %e, "cannot carry this call's media");
            let _ = hangups.send(call_id.clone()).await;
            let _ = services
                .events
                .send(event(
                    CallEventKind::Ended,
                    serde_json::json!({"reason": "unsupported_codec"}),
                ))
                .await;
            return;
        }
    };
    let mut talk = None;
    let mut misconfigured = None;
    if let Some(factory) = services.voice.as_ref() {
        let parties = CallParties {
            call_id: &call_id,
            caller: &caller,
            called: &dialled,
        };
        match Responder::start(Instant::now(), factory, &agent, workflow.as_ref(), &parties) {
            Ok(t) => talk = Some(t),
            Err(e) => {
                tracing::error!(reason = e.reason, field = %e.field, detail = %e.detail, "the call's voice pipeline cannot be built");
                misconfigured = Some(e.reason);
                let _ = services
                    .events
                    .send(event(
                        CallEventKind::Failed,
                        serde_json::json!({"reason": e.reason, "field": e.field, "detail": e.detail}),
                    ))
                    .await;
            }
        }
    }
    let max_duration = Duration::from_secs(u64::from(agent.spec.max_call_seconds));
    let deadline = tokio::time::Instant::from_std(started + max_duration);
    let mut buf = [0u8; 2048];
    let mut records: Vec<(&'static str, serde_json::Value)> = Vec::new();
    let ending = loop {
        if let Some(reason) = misconfigured {
            break Ending {
                reason,
                by_us: true,
            };
        }
        let mut wake = media.poll_timeout();
        if let Some(at) = talk.as_ref().and_then(Responder::poll_timeout) {
            wake = wake.min(at);
        }
        let wake = tokio::time::Instant::from_std(wake);
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => media.handle_datagram(Instant::now(), source, buf.get(..n).unwrap_or_default()),
                Err(e) => tracing::debug!(error = %e, "RTP receive error (ICMP?)"),
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                media.handle_timeout(now);
                if let Some(talk) = talk.as_mut() {
                    talk.handle_timeout(now);
                }
                while let Some((to, packet)) = media.poll_transmit(now) {
                    if let Err(e) = socket.send_to(packet, to).await {
                        tracing::debug!(error = %e, "RTP send failed");
                    }
                    if let (Some(talk), Some(frame)) = (talk.as_mut(), media.take_received_frame()) {
                        talk.push_frame(now, frame);
                    }
                }
            }
            signal = signals.recv() => match signal {
                Some(CallSignal::Confirmed) => tracing::debug!("call confirmed by ACK"),
                Some(CallSignal::Dtmf(digit)) => {
                    if let Some(talk) = talk.as_mut() {
                        talk.on_digit(Instant::now(), digit);
                    }
                    let _ = services.events.send(event(CallEventKind::Dtmf, serde_json::json!({"digit": digit.to_string(), "via": "sip_info"}))).await;
                }
                Some(CallSignal::Hangup { reason, by_us }) => break Ending { reason, by_us },
                None => break Ending { reason: "edge_shutdown", by_us: false },
            },
            Some(input) = async {
                match talk.as_mut() {
                    Some(talk) => talk.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(talk) = talk.as_mut() {
                    talk.on_input(Instant::now(), input, &mut media);
                }
            }
            _ = tokio::time::sleep_until(deadline) => break Ending { reason: "max_duration", by_us: true },
        }
        let mut end = None;
        if let Some(talk) = talk.as_mut() {
            talk.drive(Instant::now(), &mut media, &mut records);
            for (kind, payload) in records.drain(..) {
                // Events wait rather than drop: they are the call's record.
                let _ = services
                    .events
                    .send(custom_event(&call_id, &workspace_id, kind, payload))
                    .await;
            }
            if let Some(reason) = talk.hangup() {
                end = Some(Ending {
                    reason,
                    by_us: true,
                });
            }
        }
        while let Some(media_event) = media.poll_event() {
            match media_event {
                MediaEvent::Dtmf(digit) => {
                    tracing::info!(%digit, "digit pressed");
                    if let Some(talk) = talk.as_mut() {
                        talk.on_digit(Instant::now(), digit);
                    }
                    let _ = services
                        .events
                        .send(event(
                            CallEventKind::Dtmf,
                            serde_json::json!({"digit": digit.to_string(), "via": "rfc4733"}),
                        ))
                        .await;
                }
                MediaEvent::Inactive => {
                    end = Some(Ending {
                        reason: "rtp_timeout",
                        by_us: true,
                    })
                }
                MediaEvent::PlaybackFinished => tracing::debug!("agent finished speaking"),
            }
        }
        if let Some(end) = end {
            break end;
        }
    };
    if let Some(talk) = talk.as_mut() {
        for (kind, payload) in talk.shutdown(Instant::now()) {
            let _ = services
                .events
                .send(custom_event(&call_id, &workspace_id, kind, payload))
                .await;
        }
    }
    if ending.by_us {
        let _ = hangups.send(call_id.clone()).await;
    }
    let stats = media.stats();
    tracing::info!(
        reason = ending.reason,
        received = stats.packets_received,
        sent = stats.packets_sent,
        "call ended"
    );
    let _ = services
        .events
        .send(event(
            CallEventKind::Ended,
            serde_json::json!({
                "reason": ending.reason,
                "hangup_by": if ending.by_us { "agent" } else { "caller" },
                "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "rtp": {
                    "received": stats.packets_received,
                    "sent": stats.packets_sent,
                    "lost": stats.jitter.lost,
                    "late": stats.jitter.late,
                    "junk": stats.junk_received,
                    "jitter_ms": stats.interarrival_jitter_ms,
                },
            }),
        ))
        .await;
}

/// A call event of a kind the shared model does not name (`call.turn_latency`, `call.tool`, ...):
/// the control plane stores those as they come.
fn custom_event(
    call_id: &str,
    workspace_id: &str,
    kind: &str,
    payload: serde_json::Value,
) -> CallEvent {
    CallEvent {
        id: freya_shared::ids::new_id(),
        call_id: call_id.to_string(),
        workspace_id: workspace_id.to_string(),
        kind: kind.to_string(),
        at_ms: freya_shared::ids::now_ms(),
        payload,
    }
}

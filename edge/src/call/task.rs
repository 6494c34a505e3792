//! The task that owns one answered call: its RTP socket and media core, its signalling from the
//! SIP task, its greeting, its limits (maximum duration, RTP inactivity) and its call events.
//! Until the voice pipeline is attached the agent speaks its `first_message` and listens; digits
//! the caller presses are recorded as call events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::media::{CallMedia, MediaEvent, MediaSettings};
use crate::sip::sdp::NegotiatedAudio;
use crate::state::EdgeState;
use freya_shared::model::{CallEvent, CallEventKind};
use freya_shared::snapshot::AgentConfig;

/// Turns text into 8 kHz audio for the caller: where text-to-speech plugs in.
pub trait Voice: Send + Sync {
    /// 8 kHz mono samples of `text` spoken.
    fn render<'a>(
        &'a self,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<i16>, VoiceError>> + Send + 'a>>;
}

/// Speech could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("cannot speak: {0}")]
pub struct VoiceError(pub String);

/// What the SIP task tells a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSignal {
    /// The caller acknowledged our answer.
    Confirmed,
    /// A digit arrived by SIP INFO.
    Dtmf(char),
    /// The call is over at the signalling level (BYE, CANCEL, lost ACK).
    Hangup { reason: &'static str },
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
    pub voice: Option<Arc<dyn Voice>>,
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
        caller,
        dialled,
        audio,
        socket,
    } = setup;
    let event =
        |kind, payload| CallEvent::new(call_id.clone(), workspace_id.clone(), kind, payload);
    let started = Instant::now();
    // Events wait rather than drop: the spool behind this channel is the call's record.
    let _ = services
        .events
        .send(event(
            CallEventKind::Started,
            serde_json::json!({"direction": direction.as_str(), "from": caller, "to": dialled,
                               "agent_id": agent.id, "edge_id": &*services.edge_id,
                               "codec": format!("{:?}", audio.codec)}),
        ))
        .await;
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
    let (greeting_tx, mut greeting_rx) = mpsc::channel::<Vec<i16>>(1);
    if let (Some(voice), Some(text)) = (services.voice.clone(), agent.spec.first_message.clone()) {
        tokio::spawn(async move {
            match voice.render(&text).await {
                Ok(samples) => {
                    let _ = greeting_tx.send(samples).await;
                }
                Err(e) => tracing::warn!(error = %e, "the greeting could not be spoken"),
            }
        });
    }
    let max_duration = Duration::from_secs(u64::from(agent.spec.max_call_seconds));
    let deadline = tokio::time::Instant::from_std(started + max_duration);
    let mut buf = [0u8; 2048];
    let ending = loop {
        let wake = tokio::time::Instant::from_std(media.poll_timeout());
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => media.handle_datagram(Instant::now(), source, buf.get(..n).unwrap_or_default()),
                Err(e) => tracing::debug!(error = %e, "RTP receive error (ICMP?)"),
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                media.handle_timeout(now);
                while let Some((to, packet)) = media.poll_transmit(now) {
                    if let Err(e) = socket.send_to(packet, to).await {
                        tracing::debug!(error = %e, "RTP send failed");
                    }
                }
            }
            signal = signals.recv() => match signal {
                Some(CallSignal::Confirmed) => tracing::debug!("call confirmed by ACK"),
                Some(CallSignal::Dtmf(digit)) => {
                    let _ = services.events.send(event(CallEventKind::Dtmf, serde_json::json!({"digit": digit.to_string(), "via": "sip_info"}))).await;
                }
                Some(CallSignal::Hangup { reason }) => break Ending { reason, by_us: false },
                None => break Ending { reason: "edge_shutdown", by_us: false },
            },
            Some(samples) = greeting_rx.recv() => media.play(&samples),
            _ = tokio::time::sleep_until(deadline) => break Ending { reason: "max_duration", by_us: true },
        }
        let mut end = None;
        while let Some(media_event) = media.poll_event() {
            match media_event {
                MediaEvent::Dtmf(digit) => {
                    tracing::info!(%digit, "digit pressed");
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

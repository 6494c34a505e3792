//! One Twilio media stream: the task that owns its WebSocket. It waits for `start`, checks the
//! stream's [`StreamTicket`](super::ticket::StreamTicket), the upgrade's `X-Twilio-Signature`
//! (under the ticket's account) and the media format, spends the ticket (one stream per
//! ticket, for the CallSid it names, before it expires: see [`super::ticket::UsedTickets`]), starts the call
//! task with a [`MediaLeg::Stream`] — routed from the cached configuration like a SIP call
//! (inbound) or with the agent that placed it (outbound) — and then moves messages: caller
//! frames and digits to the call, the call's paced audio, marks and clears to Twilio; a
//! transfer redirects the live call over Twilio's REST API to a `<Dial>`. A `stop`,
//! a closed socket or the edge shutting down hang the call up; the call hanging up closes the
//! socket, which ends Twilio's `<Connect>` and so the call.
//!
//! Until `start` has proved the stream (ticket and signature), nothing it sends is taken as
//! audio: any message before `start` other than `connected` closes the socket. No message or
//! frame may pass [`MAX_MESSAGE_BYTES`]; a larger one is refused from its frame header, before
//! its payload is buffered, and closes the socket (1009).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::messages::{FromTwilio, Mark, StreamStart, ToTwilio};
use super::{rest, signature, twiml, TwilioEdge};
use crate::call::leg::{MediaLeg, StreamFrame, StreamLeg, StreamOut};
use crate::call::task::{self, CallDirection, CallSetup, CallSignal, DialogRequest};
use crate::sip::endpoint::TransferProgress;
use freya_shared::model::call_payloads::{CallAnswered, CallFailed};
use freya_shared::model::{CallEvent, CallEventData, EndReason, FailReason, ProviderSpec};

/// How long Twilio may take from opening the socket to `start`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Caller frames waiting for the call task: one second; beyond, frames are dropped (audio).
const FRAME_QUEUE: usize = 50;
/// Messages waiting to go to Twilio: one second of audio; the call drops beyond (audio).
const OUT_QUEUE: usize = 50;
/// Signals and requests between the stream and its call: rare, and none may be lost (waits).
const SIGNAL_QUEUE: usize = 16;
/// Largest message (and frame) the stream takes. A `media` message carries 20 ms of base64
/// μ-law, under 1 KiB, and `start` a few custom parameters: 64 KiB leaves room and no more.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How the stream's WebSocket is read: messages and frames capped at [`MAX_MESSAGE_BYTES`]
/// (checked against each frame's header, so an oversized one is never buffered).
pub(crate) fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Serves one stream socket until the call ends.
pub(crate) async fn run<S>(
    twilio: TwilioEdge,
    mut socket: WebSocketStream<S>,
    signature: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = match tokio::time::timeout(START_TIMEOUT, wait_for_start(&mut socket)).await {
        Ok(Some(start)) => start,
        Ok(None) => return,
        Err(_) => {
            tracing::warn!("media stream sent no `start` in time; closing it");
            let _ = socket.close(None).await;
            return;
        }
    };
    let (frame_tx, frame_rx) = mpsc::channel(FRAME_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel(OUT_QUEUE);
    let leg = MediaLeg::Stream(StreamLeg {
        frames: frame_rx,
        out: out_tx,
    });
    let Some(setup) = call_setup(&twilio, &start, signature.as_deref(), leg).await else {
        let _ = socket.close(None).await;
        return;
    };
    let provider_id = setup
        .provider
        .as_ref()
        .and_then(|p| p.provider_id.clone())
        .unwrap_or_default();
    let (signal_tx, signal_rx) = mpsc::channel(SIGNAL_QUEUE);
    let (request_tx, mut request_rx) = mpsc::channel(SIGNAL_QUEUE);
    let services = twilio.services.clone();
    services.state.call_started();
    let span = setup.trace.span.clone();
    let call_id = setup.call_id.clone();
    let call =
        tokio::spawn(task::run(setup, signal_rx, services, request_tx).instrument(span.clone()));
    let stream_sid = start.stream_sid.clone();
    let hangup = |reason| CallSignal::Hangup {
        reason,
        by_us: false,
    };
    async {
        tracing::info!(stream = %stream_sid, call_sid = %start.call_sid, "media stream started");
        loop {
            tokio::select! {
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => match FromTwilio::parse(&text) {
                        Ok(FromTwilio::Media { media, .. }) => match media.audio() {
                            Ok(payload) => {
                                let frame = StreamFrame {
                                    // Wrapped like RTP's sequence numbers and timestamps. The
                                    // clock is the chunk counter (one frame each), not Twilio's
                                    // millisecond `timestamp`, which is not exactly 20 ms apart.
                                    sequence: (media.chunk & 0xffff) as u16,
                                    timestamp: (media.chunk.wrapping_mul(160) & 0xffff_ffff) as u32,
                                    payload,
                                };
                                // A full queue drops the frame: late audio is no use.
                                let _ = frame_tx.try_send(frame);
                            }
                            Err(e) => tracing::debug!(error = %e, "dropping a media frame"),
                        },
                        Ok(FromTwilio::Dtmf { dtmf, .. }) => {
                            match dtmf.digit.chars().next().filter(|_| dtmf.digit.len() == 1) {
                                Some(digit) => { let _ = signal_tx.send(CallSignal::Dtmf(digit)).await; }
                                None => tracing::debug!(chars = dtmf.digit.chars().count(), "ignoring a malformed digit"),
                            }
                        }
                        Ok(FromTwilio::Mark { mark, .. }) => tracing::debug!(mark = %mark.name, "Twilio played up to a mark"),
                        Ok(FromTwilio::Stop { .. }) => {
                            let _ = signal_tx.send(hangup(EndReason::CallerHangup)).await;
                            break;
                        }
                        Ok(FromTwilio::Connected { .. } | FromTwilio::Start { .. }) => {}
                        Err(e) => tracing::debug!(error = %e, "ignoring a stream message"),
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        let _ = signal_tx.send(hangup(EndReason::StreamClosed)).await;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "media stream failed");
                        let _ = signal_tx.send(hangup(EndReason::StreamFailed)).await;
                        close_after(&mut socket, &e).await;
                        break;
                    }
                },
                Some(out) = out_rx.recv() => {
                    let message = match out {
                        StreamOut::Media(mulaw) => ToTwilio::media(&stream_sid, &mulaw),
                        StreamOut::Mark(name) => ToTwilio::Mark { stream_sid: stream_sid.clone(), mark: Mark { name } },
                        StreamOut::Clear => ToTwilio::Clear { stream_sid: stream_sid.clone() },
                    };
                    if let Err(e) = socket.send(Message::text(message.to_text())).await {
                        tracing::info!(error = %e, "cannot write to the media stream");
                        let _ = signal_tx.send(hangup(EndReason::StreamFailed)).await;
                        break;
                    }
                }
                request = request_rx.recv() => match request {
                    Some(DialogRequest::Hangup { .. }) | None => {
                        // Closing the socket ends Twilio's <Connect>, and with nothing after it, the call.
                        let _ = socket.close(None).await;
                        break;
                    }
                    Some(DialogRequest::Transfer { destination, .. }) => {
                        // The REST request may take seconds: the stream's audio goes on meanwhile.
                        let (twilio, signals) = (twilio.clone(), signal_tx.clone());
                        let (provider_id, call_sid) = (provider_id.clone(), start.call_sid.clone());
                        tokio::spawn(async move {
                            let progress = transfer(&twilio, &provider_id, &call_sid, &destination).await;
                            let _ = signals.send(CallSignal::Transfer(progress)).await;
                        }.in_current_span());
                    }
                    Some(DialogRequest::SendDtmf { digits, .. }) => {
                        tracing::warn!(digits = digits.chars().count(), "digits asked on a Twilio call; media streams cannot send them");
                    }
                    // Added legs are dialled through SIP trunks, which a media stream call has no
                    // dialog with: the leg fails and the agent keeps the caller.
                    Some(DialogRequest::DialLeg(dial)) => {
                        let detail = "a media stream call cannot dial another party".to_owned();
                        let signal = CallSignal::Leg { leg: dial.leg, signal: crate::call::core::LegSignal::Failed { detail } };
                        let _ = signal_tx.send(signal).await;
                    }
                    Some(DialogRequest::HangupLeg { .. }) => {}
                },
                _ = twilio.shutdown.cancelled() => {
                    let _ = signal_tx.send(CallSignal::Hangup { reason: EndReason::EdgeShutdown, by_us: true }).await;
                    let _ = socket.close(None).await;
                    break;
                }
            }
        }
        // The call task finishes its record after the hang-up signal.
        drop(signal_tx);
        let _ = call.await;
        tracing::debug!(call = %call_id, "media stream closed");
    }
    .instrument(span)
    .await;
}

/// Transfers live call `call_sid` to `destination` by redirecting it, through the account
/// `provider_id` that carries it, to a `<Dial>`: done when Twilio accepts the update (Twilio
/// then leaves our stream), failed — the call goes on — when it does not.
async fn transfer(
    twilio: &TwilioEdge,
    provider_id: &str,
    call_sid: &str,
    destination: &str,
) -> TransferProgress {
    let snapshot = twilio.services.state.snapshot();
    let account = snapshot
        .providers
        .iter()
        .find(|p| p.id == provider_id)
        .and_then(|p| match &p.spec {
            ProviderSpec::Twilio(account) => Some(account),
            ProviderSpec::SipTrunk(_) => None,
        });
    let Some(account) = account else {
        tracing::warn!(provider = %provider_id, "cannot transfer: the call's Twilio account is no longer configured");
        return TransferProgress::Failed {
            reason: "the call's Twilio account is no longer configured".into(),
        };
    };
    let twiml = twiml::dial(destination);
    match rest::update_call(&twilio.http, account, call_sid, &twiml).await {
        Ok(()) => {
            tracing::info!(destination = %freya_shared::redact::MaskedNumber(destination), "Twilio redirected the call to the transfer destination");
            TransferProgress::Succeeded { code: 200 }
        }
        Err(e) => {
            tracing::warn!(destination = %freya_shared::redact::MaskedNumber(destination), error = %e, "Twilio did not redirect the call");
            TransferProgress::Failed {
                reason: e.to_string(),
            }
        }
    }
}

/// Reads up to the `start` message; `None` — the socket closed — when the socket ends first, or
/// sends anything but `connected` (and pings) before it: until `start` proves the stream,
/// nothing from it is taken, media least of all.
async fn wait_for_start<S>(socket: &mut WebSocketStream<S>) -> Option<StreamStart>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = socket.next().await {
        let refused = match message {
            Ok(Message::Text(text)) => match FromTwilio::parse(&text) {
                Ok(FromTwilio::Start { start, .. }) => return Some(start),
                Ok(FromTwilio::Connected { .. }) => continue,
                Ok(other) => format!("a `{}` message before `start`", other.event()),
                Err(e) => format!("an unreadable message before `start`: {e}"),
            },
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return None,
            Ok(_) => "a binary message before `start`".to_owned(),
            Err(e) => {
                tracing::info!(error = %e, "media stream failed before `start`");
                close_after(socket, &e).await;
                return None;
            }
        };
        tracing::warn!("media stream sent {refused}; closing it");
        let _ = socket
            .close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "expected `start`".into(),
            }))
            .await;
        return None;
    }
    None
}

/// Closes the socket after read error `e`: with 1009 when a message or frame was over
/// [`MAX_MESSAGE_BYTES`], so the peer learns why; the connection is dropped either way.
async fn close_after<S>(socket: &mut WebSocketStream<S>, e: &WsError)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let WsError::Capacity(_) = e {
        let _ = socket
            .close(Some(CloseFrame {
                code: CloseCode::Size,
                reason: "message too big".into(),
            }))
            .await;
    }
}

/// The call a started stream carries on `leg`, from its ticket and the cached configuration;
/// `None` (logged, and recorded as failed when the call is known) when it cannot run.
async fn call_setup(
    twilio: &TwilioEdge,
    start: &StreamStart,
    signature: Option<&str>,
    leg: MediaLeg,
) -> Option<CallSetup> {
    if !start.media_format.is_mulaw_8k() {
        tracing::warn!(format = ?start.media_format, "media stream is not μ-law at 8 kHz; closing it");
        return None;
    }
    let Some(text) = start.custom_parameters.get("ticket") else {
        tracing::warn!(call_sid = %start.call_sid, "media stream without a ticket; closing it");
        return None;
    };
    let ticket = match twilio.tickets.open(text) {
        Ok(ticket) => ticket,
        Err(e) => {
            tracing::warn!(call_sid = %start.call_sid, error = %e, "media stream with a bad ticket; closing it");
            return None;
        }
    };
    let snapshot = twilio.services.state.snapshot();
    // Twilio signs the upgrade with the account's auth token over the stream URL it was given.
    let token = snapshot
        .providers
        .iter()
        .find(|p| p.id == ticket.provider_id)
        .and_then(|p| match &p.spec {
            ProviderSpec::Twilio(account) => account.auth_token.as_deref(),
            ProviderSpec::SipTrunk(_) => None,
        });
    let signed = match (token, signature) {
        (Some(token), Some(signature)) => {
            signature::verify(token, &twilio.stream_url(), &[], signature)
        }
        _ => false,
    };
    if !signed {
        tracing::warn!(call_sid = %start.call_sid, call = %ticket.call_id, has_signature = signature.is_some(),
                       "media stream whose `X-Twilio-Signature` does not verify; closing it");
        return None;
    }
    // Spent only once the stream proves it comes from Twilio, so nobody else can burn it.
    let redeemed = twilio
        .used_tickets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .redeem(freya_shared::ids::now_ms(), &ticket, &start.call_sid);
    if let Err(e) = redeemed {
        tracing::warn!(call_sid = %start.call_sid, call = %ticket.call_id, error = %e, "media stream ticket refused; closing it");
        return None;
    }
    let provider = CallAnswered {
        provider: Some("twilio".to_owned()),
        provider_id: Some(ticket.provider_id.clone()),
        provider_call_id: Some(start.call_sid.clone()),
        stream_sid: Some(start.stream_sid.clone()),
        ..CallAnswered::default()
    };
    let (direction, agent, workflow) = if ticket.outbound {
        let agent = ticket.agent_id.as_deref().and_then(|id| {
            snapshot
                .agent(id)
                .filter(|a| a.workspace_id == ticket.workspace_id)
        });
        let Some(agent) = agent else {
            tracing::warn!(call = %ticket.call_id, "outbound Twilio call for an agent this edge does not know");
            record_failed(
                twilio,
                &ticket.call_id,
                &ticket.workspace_id,
                "unknown_agent",
            )
            .await;
            return None;
        };
        (CallDirection::Outbound, agent.clone(), None)
    } else {
        let Some(route) = snapshot
            .route(&ticket.to)
            .filter(|r| r.number.workspace_id == ticket.workspace_id)
        else {
            tracing::warn!(call = %ticket.call_id, to = %ticket.to, "the number of a Twilio call is no longer routed here");
            return None;
        };
        let (agent, workflow) = crate::call::responder::answerer(&snapshot, route.target);
        (CallDirection::Inbound, agent, workflow)
    };
    let trace = crate::telemetry::CallTrace::begin(
        &ticket.call_id,
        &twilio.services.edge_id,
        &ticket.workspace_id,
    );
    Some(CallSetup {
        dialog: ticket.call_id.clone(),
        call_id: ticket.call_id,
        direction,
        workspace_id: ticket.workspace_id,
        agent,
        workflow,
        caller: ticket.from,
        dialled: ticket.to,
        leg,
        provider: Some(provider),
        trace,
    })
}

async fn record_failed(twilio: &TwilioEdge, call_id: &str, workspace_id: &str, reason: &str) {
    let event = CallEvent::new(
        call_id.to_owned(),
        workspace_id.to_owned(),
        CallEventData::Failed(CallFailed::because(FailReason::parse(reason))),
    );
    let _ = twilio.services.events.send(event).await;
}

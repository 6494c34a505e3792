//! A leg this edge dials and carries for a call that lives on another edge (its home): the
//! party's RTP on one side, the mesh on the other. [`HostedLeg`] is the sans-IO part — each
//! 20 ms tick it plays out the party's frame and hands it to the home as a G.711 mesh frame,
//! and sends the party the frame the home mixed for it (through a jitter buffer that conceals
//! a lost datagram); the home's silence past `silence` ends it, so a dead home never leaves a
//! party on the line. [`run`] is its task: dial through the SIP task, tell the home `Join` on
//! the answer, move bytes and time, and tell the home `Hangup` with the cause at the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::core::{LegId, LegSignal, MESH_PAYLOAD};
use super::leg::{MediaLeg, ReceivedMedia};
use super::media::{CallMedia, MediaEvent, MediaSettings, FRAME_SAMPLES};
use super::task::CallSignal;
use crate::media::g711;
use crate::mesh::remote_leg::RemotePlayout;
use crate::mesh::{
    AudioFrame, AudioHeader, ControlMessage, HangupCause, LegKey, Mesh, MeshInbound, RemoteLegAudio,
};
use crate::rtp::jitter::JitterConfig;
use crate::sip::sdp::NegotiatedAudio;
use crate::sip::transport::{HostedLegCommand, LegDial, SipCommand};

/// The party's media and the home's audio of one hosted leg.
pub(crate) struct HostedLeg {
    key: LegKey,
    media: CallMedia,
    from_home: RemoteLegAudio,
    home_frame: [i16; FRAME_SAMPLES],
    sequence: u16,
    timestamp: u32,
    encoded: [u8; FRAME_SAMPLES],
    last_heard: Instant,
    silence: Duration,
}

/// Why a hosted leg ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostedEnd {
    /// The party's RTP stopped.
    PartySilent,
    /// The home's audio stopped.
    HomeSilent,
}

impl HostedLeg {
    /// The leg's media from its answer on.
    pub(crate) fn new(
        now: Instant,
        key: LegKey,
        audio: &NegotiatedAudio,
        settings: &MediaSettings,
        silence: Duration,
    ) -> Option<Self> {
        Some(Self {
            key,
            media: CallMedia::new(now, audio, settings).ok()?,
            from_home: RemoteLegAudio::new(JitterConfig::default()).ok()?,
            home_frame: [0; FRAME_SAMPLES],
            sequence: 0,
            timestamp: 0,
            encoded: [0; FRAME_SAMPLES],
            last_heard: now,
            silence,
        })
    }

    /// A frame the home sent for the party.
    pub(crate) fn handle_mesh_audio(&mut self, now: Instant, header: &AudioHeader, payload: &[u8]) {
        self.from_home.push(now, header, payload);
        self.last_heard = now;
    }

    /// Time passed: each due tick gives `rtp` the party's packet and `mesh` the home's frame.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        rtp: &mut impl FnMut(SocketAddr, &[u8]),
        mesh: &mut impl FnMut(&AudioFrame<'_>),
    ) -> Option<HostedEnd> {
        self.media.handle_timeout(now);
        while self.media.tick_due() {
            let party = self.media.poll_received(now).map(|(_, frame)| *frame);
            let n = g711::encode_ulaw(&party.unwrap_or([0; FRAME_SAMPLES]), &mut self.encoded);
            let frame = AudioFrame {
                header: AudioHeader {
                    key: self.key,
                    kind: MESH_PAYLOAD,
                    sequence: self.sequence,
                    timestamp: self.timestamp,
                },
                payload: &self.encoded[..n],
            };
            mesh(&frame);
            self.sequence = self.sequence.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
            if self.from_home.pop(now, &mut self.home_frame) != RemotePlayout::Silent {
                self.media.mix_mut().add(&self.home_frame);
            }
            match self.media.poll_transmit(now) {
                Some((to, packet)) => rtp(to, packet),
                None => break,
            }
        }
        while let Some(event) = self.media.poll_event() {
            if let MediaEvent::Inactive | MediaEvent::HoldTimeout = event {
                return Some(HostedEnd::PartySilent);
            }
        }
        (now >= self.last_heard + self.silence).then_some(HostedEnd::HomeSilent)
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.media
            .poll_timeout()
            .min(self.last_heard + self.silence)
    }
}

impl ReceivedMedia for HostedLeg {
    fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.media.handle_datagram(now, source, datagram);
    }

    fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        self.media.handle_rtcp(now, source, datagram);
    }

    fn handle_payload(&mut self, _: Instant, _: u16, _: u32, _: &[u8]) {}
}

/// What a hosted leg's task needs.
pub(crate) struct HostedSpec {
    pub key: LegKey,
    pub home: SocketAddr,
    pub to: String,
    pub workspace: String,
    pub edge_id: String,
    pub mesh: Mesh,
    pub sip: mpsc::Sender<SipCommand>,
    pub services: super::task::CallServices,
}

/// Dials the leg and carries it until either side ends it; returns the key for the gate.
pub(crate) async fn run(spec: HostedSpec) -> LegKey {
    let HostedSpec {
        key,
        home,
        to,
        workspace,
        edge_id,
        mesh,
        sip,
        services,
    } = spec;
    let tell = |cause: HangupCause| {
        let mesh = mesh.clone();
        async move {
            let hangup = ControlMessage::Hangup { key, cause };
            if let Err(e) = mesh.send_control(home, &hangup).await {
                tracing::debug!(error = %e, "could not tell the home of a hosted leg's end");
            }
        }
    };
    let Ok(mut inbound) = mesh.join(key, home) else {
        tell(HangupCause::Unavailable).await;
        return key;
    };
    let leg = LegId(u8::try_from(key.leg).unwrap_or(u8::MAX));
    let dialog = format!("mesh-{}-{}", key.call, key.leg);
    let providers: Vec<_> = services
        .state
        .snapshot()
        .providers_for(&workspace)
        .into_iter()
        .cloned()
        .collect();
    let trunks = crate::control_link::commands::sip_trunks(&providers).await;
    let (signals_tx, mut signals) = mpsc::channel(16);
    let (sockets, taken) = oneshot::channel();
    let dial = LegDial {
        dialog: dialog.clone(),
        leg,
        to,
        from: edge_id.clone(),
        trunks,
        sockets,
    };
    let command = HostedLegCommand::Dial {
        signals: signals_tx,
        dial: Box::new(dial),
    };
    if sip.send(SipCommand::Hosted(command)).await.is_err() {
        tell(HangupCause::Unavailable).await;
        mesh.leave(key, home);
        return key;
    }
    let cause = match ring(&mut signals, &mut inbound).await {
        Ok(audio) => {
            let io = (audio, taken);
            carry(
                key,
                home,
                &edge_id,
                &mesh,
                io,
                &mut signals,
                &mut inbound,
                &services,
            )
            .await
        }
        Err(cause) => cause,
    };
    if let Some(cause) = cause {
        tell(cause).await;
    }
    let end = HostedLegCommand::End { dialog, leg };
    let _ = sip.send(SipCommand::Hosted(end)).await;
    mesh.leave(key, home);
    key
}

/// While the party rings: its answer, or why not (the cause to tell the home; `None` when the
/// home gave up first, by its own dial timeout or hang-up).
async fn ring(
    signals: &mut mpsc::Receiver<CallSignal>,
    inbound: &mut mpsc::Receiver<MeshInbound>,
) -> Result<NegotiatedAudio, Option<HangupCause>> {
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(CallSignal::Leg { signal: LegSignal::Answered(audio), .. }) => return Ok(audio),
                Some(CallSignal::Leg { signal: LegSignal::Failed { detail }, .. }) => {
                    tracing::info!(%detail, "hosted leg's dial failed");
                    return Err(Some(HangupCause::DialFailed));
                }
                Some(CallSignal::Leg { .. }) => continue,
                _ => return Err(Some(HangupCause::Remote)),
            },
            message = inbound.recv() => match message {
                Some(MeshInbound::Control(ControlMessage::Hangup { .. }) | MeshInbound::Lost)
                | None => return Err(None),
                Some(_) => continue,
            },
        }
    }
}

/// The answered leg: tells the home, then moves bytes and time until an end; the cause to
/// tell the home, `None` when the home ended it.
#[allow(clippy::too_many_arguments)]
async fn carry(
    key: LegKey,
    home: SocketAddr,
    edge_id: &str,
    mesh: &Mesh,
    (audio, taken): (
        NegotiatedAudio,
        oneshot::Receiver<crate::call::ports::MediaSockets>,
    ),
    signals: &mut mpsc::Receiver<CallSignal>,
    inbound: &mut mpsc::Receiver<MeshInbound>,
    services: &super::task::CallServices,
) -> Option<HangupCause> {
    let sockets = taken.await.ok()?;
    let mut io = MediaLeg::Rtp {
        audio,
        sockets,
        srtp: None,
    }
    .into_io(&services.srtp_dropped)
    .ok()?;
    let now = Instant::now();
    let silence = services.legs.remote_silence;
    let mut leg = HostedLeg::new(now, key, &audio, &services.media, silence)?;
    let join = ControlMessage::Join {
        key,
        kind: MESH_PAYLOAD,
        from_edge: edge_id.to_owned(),
    };
    if mesh.send_control(home, &join).await.is_err() {
        return Some(HangupCause::Unavailable);
    }
    tracing::info!(call = %key.call, leg = key.leg, "hosted leg answered and joined to its home");
    let mut buf = Vec::with_capacity(256);
    loop {
        let wake = tokio::time::Instant::from_std(leg.poll_timeout());
        tokio::select! {
            input = io.recv() => io.deliver(Instant::now(), input, &mut leg),
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                io.receive_ready(now, &mut leg);
                let ended = leg.handle_timeout(
                    now,
                    &mut |to, packet| io.send(to, packet),
                    &mut |frame| { mesh.send_audio(home, frame, &mut buf); },
                );
                match ended {
                    Some(HostedEnd::PartySilent) => return Some(HangupCause::Remote),
                    Some(HostedEnd::HomeSilent) => return Some(HangupCause::Unavailable),
                    None => {}
                }
            }
            signal = signals.recv() => match signal {
                Some(CallSignal::Leg { signal: LegSignal::Answered(_), .. }) => {}
                _ => return Some(HangupCause::Remote),
            },
            message = inbound.recv() => match message {
                Some(MeshInbound::Audio { header, payload }) => {
                    leg.handle_mesh_audio(Instant::now(), &header, &payload);
                }
                Some(MeshInbound::Control(ControlMessage::Hangup { .. })) => return None,
                Some(MeshInbound::Lost) | None => return None,
                Some(MeshInbound::Control(_)) => {}
            },
        }
    }
}

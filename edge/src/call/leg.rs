//! A call's media leg: how its audio reaches the far end. A SIP call carries RTP (and RTCP) on
//! its own UDP sockets; a call that came through a provider's media stream (Twilio Media
//! Streams) carries μ-law frames as WebSocket messages, moved by the stream's own task over two
//! channels. Either way the audio goes through the same [`CallMedia`] core — jitter buffer,
//! codec, the 20 ms pacing clock — inside the call's core, so the call task drives both alike: at each tick it takes
//! what the RTP socket holds ([`LegIo::receive_ready`]), it waits on [`LegIo::recv`] for the
//! rest (RTCP on its own port, stream frames), hands that to [`LegIo::deliver`], and sends what
//! the core paces out with [`LegIo::send`].
//!
//! Why the RTP socket is read on the tick rather than when a packet arrives: the caller's audio
//! is only played out on the tick anyway (one frame per 20 ms into the VAD and speech-to-text),
//! so waking the call for each packet as well doubled its wake-ups for nothing. Under load those
//! wake-ups (the task, the reactor, the threads parking and unparking) were a large share of the
//! edge's CPU. The socket is therefore taken off the runtime's reactor and read without blocking.
//! Each packet keeps its arrival time all the same: the kernel stamps it as it is queued
//! ([`crate::rtp::arrival`]), so the jitter buffer, the turn detector and RTCP's round-trip time
//! see when it came, not when the tick read it.
//!
//! On an SRTP call ([`SrtpLeg`]) every datagram is checked and decrypted between the socket
//! and the core, and every packet the core sends is encrypted between the core and the socket:
//! the core only ever sees plain RTP, and a refused packet never reaches it.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::media::CallMedia;
use super::ports::MediaSockets;
use super::srtp_leg::SrtpLeg;
use crate::metrics::SrtpDropCounter;
use crate::rtp::arrival::{recv_stamped, stamp_arrivals};
use crate::rtp::packet::RtpPacket;
use crate::sip::sdp::{Codec, Direction, NegotiatedAudio};

/// The media leg a call starts with.
pub enum MediaLeg {
    /// RTP negotiated by SDP, on the call's sockets.
    Rtp {
        audio: NegotiatedAudio,
        /// RTP and RTCP; the RTCP one goes unused when the call multiplexes RTCP on RTP.
        sockets: MediaSockets,
        /// The SRTP transform when SDP agreed `RTP/SAVP` (boxed: most calls have none).
        srtp: Option<Box<crate::rtp::srtp::SrtpSession>>,
    },
    /// A provider's media stream (μ-law, 8 kHz, 20 ms frames).
    Stream(StreamLeg),
}

/// The call's end of a media stream: frames in, messages out. The stream's task owns the
/// WebSocket.
pub struct StreamLeg {
    /// Caller audio, in arrival order. The stream task drops frames when this is full (audio).
    pub frames: mpsc::Receiver<StreamFrame>,
    /// What the call sends; the call drops audio when this is full rather than wait.
    pub out: mpsc::Sender<StreamOut>,
}

/// One frame of caller audio from a media stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// The stream's frame counter (Twilio's `chunk`), wrapped to 16 bits like RTP's.
    pub sequence: u16,
    /// Position of the frame in samples at 8 kHz.
    pub timestamp: u32,
    /// μ-law bytes.
    pub payload: Vec<u8>,
}

/// What a call sends down a media stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOut {
    /// 20 ms of μ-law audio for the caller.
    Media(Vec<u8>),
    /// A label the far end echoes back once the audio before it has played.
    Mark(String),
    /// Drop the audio the far end still buffers (barge-in).
    Clear,
}

impl MediaLeg {
    /// What the media core is told of the leg's audio: for a stream, μ-law at 8 kHz with no
    /// telephone-event and no network address (the stream task knows where audio goes).
    pub fn audio(&self) -> NegotiatedAudio {
        match self {
            MediaLeg::Rtp { audio, .. } => *audio,
            MediaLeg::Stream(_) => {
                let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
                NegotiatedAudio {
                    codec: Codec::Pcmu,
                    payload_type: 0,
                    telephone_event: None,
                    telephone_event_rate: 8000,
                    remote_rtp: nowhere,
                    ptime: 20,
                    direction: Direction::SendRecv,
                    rtcp_mux: true,
                    remote_rtcp: nowhere,
                }
            }
        }
    }

    /// The name call records use for the leg's transport.
    pub fn kind(&self) -> &'static str {
        match self {
            MediaLeg::Rtp { .. } => "rtp",
            MediaLeg::Stream(_) => "media_stream",
        }
    }

    /// The leg ready for the call task's loop, counting refused SRTP packets in `srtp_dropped`.
    /// Fails only if the RTP socket cannot be taken off the runtime's reactor.
    pub fn into_io(self, srtp_dropped: &SrtpDropCounter) -> std::io::Result<LegIo> {
        Ok(match self {
            MediaLeg::Rtp {
                audio,
                sockets,
                srtp,
            } => {
                // Stays non-blocking: tokio's sockets are.
                let rtp = sockets.rtp.into_std()?;
                if let Err(e) = stamp_arrivals(&rtp) {
                    tracing::warn!(error = %e, "no arrival stamps on the RTP socket; packets are dated when read");
                }
                LegIo::Rtp {
                    rtcp: (!audio.rtcp_mux).then_some(sockets.rtcp),
                    rtp,
                    bufs: Box::new(Buffers {
                        rtp: [0; 2048],
                        rtcp: [0; 1500],
                    }),
                    srtp: srtp.map(|session| Box::new(SrtpLeg::new(session, srtp_dropped))),
                }
            }
            MediaLeg::Stream(leg) => LegIo::Stream {
                frames: Some(leg.frames),
                out: leg.out,
                marks: 0,
            },
        })
    }
}

/// A leg as the call task runs it.
pub enum LegIo {
    Rtp {
        /// Read on the call's tick, never awaited (see the module notes).
        rtp: std::net::UdpSocket,
        /// RTCP on its own port, awaited: reports are rare and their arrival times matter for
        /// the round-trip time.
        rtcp: Option<UdpSocket>,
        /// Receive buffers for RTP and RTCP (one box: the call task's future stays small).
        bufs: Box<Buffers>,
        /// Set on an SRTP call: every datagram passes through it both ways.
        srtp: Option<Box<SrtpLeg>>,
    },
    Stream {
        /// `None` once the stream task is gone (its hang-up signal ends the call).
        frames: Option<mpsc::Receiver<StreamFrame>>,
        out: mpsc::Sender<StreamOut>,
        marks: u32,
    },
}

/// A leg's receive buffers.
pub struct Buffers {
    rtp: [u8; 2048],
    rtcp: [u8; 1500],
}

/// Most datagrams taken from the RTP socket on one tick: a caller sends one per 20 ms, so this
/// only bounds what a flood can make one tick do; the rest waits in the socket.
const MAX_READS_PER_TICK: usize = 16;

/// What a leg hands received media to: the call's core (or, in tests, a bare media core).
pub trait ReceivedMedia {
    /// A datagram from the RTP socket (RTCP too when multiplexed), dated by its arrival.
    fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]);
    /// A datagram from the RTCP socket.
    fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]);
    /// A media stream's frame.
    fn handle_payload(&mut self, now: Instant, sequence: u16, timestamp: u32, payload: &[u8]);
}

impl ReceivedMedia for CallMedia {
    fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        CallMedia::handle_datagram(self, now, source, datagram);
    }

    fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        CallMedia::handle_rtcp(self, now, source, datagram);
    }

    fn handle_payload(&mut self, now: Instant, sequence: u16, timestamp: u32, payload: &[u8]) {
        CallMedia::handle_payload(self, now, sequence, timestamp, payload);
    }
}

/// Something that arrived on a leg.
pub enum LegInput {
    /// `len` bytes of an RTCP-socket datagram, in the leg's buffer.
    Rtcp { len: usize, source: SocketAddr },
    /// A media-stream frame.
    Frame(StreamFrame),
    /// Nothing usable (a receive error, logged).
    Nothing,
}

impl LegIo {
    /// Hands the media core every datagram the RTP socket holds, each dated by its arrival
    /// (`now`, the tick, when the kernel gave no stamp). On a call that multiplexes RTCP, its
    /// reports come this way too. A stream leg has nothing here: its frames come through
    /// [`recv`](Self::recv).
    pub fn receive_ready(&mut self, now: Instant, media: &mut impl ReceivedMedia) {
        let LegIo::Rtp {
            rtp, bufs, srtp, ..
        } = self
        else {
            return;
        };
        for _ in 0..MAX_READS_PER_TICK {
            match recv_stamped(rtp, &mut bufs.rtp[..], now) {
                Ok(datagram) => {
                    let received = bufs.rtp.get_mut(..datagram.len).unwrap_or_default();
                    let plain = match srtp {
                        Some(srtp) => match srtp.open(now, received) {
                            Some(plain) => plain,
                            None => continue,
                        },
                        None => received,
                    };
                    media.handle_datagram(datagram.arrived, datagram.source, plain)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // An ICMP error from an earlier send is reported once; read on.
                Err(e) => tracing::debug!(error = %e, "RTP receive error (ICMP?)"),
            }
        }
    }

    /// Waits for the next input that is not read on the tick (cancel-safe: use it in
    /// `select!`): RTCP on its own port, or a stream's frame. A stream whose task is gone waits
    /// forever; its hang-up comes as a call signal.
    pub async fn recv(&mut self) -> LegInput {
        match self {
            LegIo::Rtp { rtcp, bufs, .. } => {
                let received = match rtcp {
                    Some(rtcp) => rtcp.recv_from(&mut bufs.rtcp[..]).await,
                    None => std::future::pending().await,
                };
                match received {
                    Ok((len, source)) => LegInput::Rtcp { len, source },
                    Err(e) => {
                        tracing::debug!(error = %e, "RTCP receive error (ICMP?)");
                        LegInput::Nothing
                    }
                }
            }
            LegIo::Stream { frames, .. } => {
                let next = match frames.as_mut() {
                    Some(frames) => frames.recv().await,
                    None => std::future::pending().await,
                };
                match next {
                    Some(frame) => LegInput::Frame(frame),
                    None => {
                        *frames = None;
                        LegInput::Nothing
                    }
                }
            }
        }
    }

    /// Hands what [`recv`](Self::recv) returned to the media core.
    pub fn deliver(&mut self, now: Instant, input: LegInput, media: &mut impl ReceivedMedia) {
        match (self, input) {
            (LegIo::Rtp { bufs, srtp, .. }, LegInput::Rtcp { len, source }) => {
                let received = bufs.rtcp.get_mut(..len).unwrap_or_default();
                let plain = match srtp {
                    Some(srtp) => match srtp.open(now, received) {
                        Some(plain) => plain,
                        None => return,
                    },
                    None => received,
                };
                media.handle_rtcp(now, source, plain)
            }
            (_, LegInput::Frame(frame)) => {
                media.handle_payload(now, frame.sequence, frame.timestamp, &frame.payload)
            }
            _ => {}
        }
    }

    /// Sends one packet the media core paced out: as it is on RTP, as its payload on a stream.
    /// Neither waits: a packet the socket cannot take now is dropped, as a congested network
    /// would, rather than sent late.
    pub fn send(&mut self, to: SocketAddr, packet: &[u8]) {
        match self {
            LegIo::Rtp { rtp, srtp, .. } => {
                let packet = match srtp {
                    Some(srtp) => match srtp.seal_rtp(packet) {
                        Some(sealed) => sealed,
                        None => return,
                    },
                    None => packet,
                };
                if let Err(e) = rtp.send_to(packet, to) {
                    tracing::debug!(error = %e, "RTP send failed");
                }
            }
            LegIo::Stream { out, .. } => {
                let Ok(parsed) = RtpPacket::parse(packet) else {
                    return;
                };
                // Audio is dropped rather than waited for: a late frame is worse than none.
                if out
                    .try_send(StreamOut::Media(parsed.payload.to_vec()))
                    .is_err()
                {
                    tracing::debug!("media stream busy; dropped a frame");
                }
            }
        }
    }

    /// Sends an RTCP report (RTP legs only: a stream has no RTCP).
    pub async fn send_rtcp(&mut self, to: SocketAddr, report: &[u8]) {
        let LegIo::Rtp {
            rtp, rtcp, srtp, ..
        } = self
        else {
            return;
        };
        let report = match srtp {
            Some(srtp) => match srtp.seal_rtcp(report) {
                Some(sealed) => sealed,
                None => return,
            },
            None => report,
        };
        let sent = match rtcp {
            Some(rtcp) => rtcp.send_to(report, to).await,
            None => rtp.send_to(report, to),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "RTCP send failed");
        }
    }

    /// The agent stopped talking over the caller: a stream's far end drops what it buffers.
    pub fn playback_cut(&self) {
        if let LegIo::Stream { out, .. } = self {
            if out.try_send(StreamOut::Clear).is_err() {
                tracing::warn!("media stream busy; could not clear its playback");
            }
        }
    }

    /// The agent's audio so far has all been sent: a stream marks the spot, and its far end
    /// says when it has played.
    pub fn playback_finished(&mut self) {
        if let LegIo::Stream { out, marks, .. } = self {
            *marks += 1;
            let _ = out.try_send(StreamOut::Mark(format!("agent-{marks}")));
        }
    }
}

#[cfg(test)]
#[path = "leg_tests.rs"]
mod tests;

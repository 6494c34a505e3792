//! A call's media leg: how its audio reaches the far end. A SIP call carries RTP (and RTCP) on
//! its own UDP sockets; a call that came through a provider's media stream (Twilio Media
//! Streams) carries μ-law frames as WebSocket messages, moved by the stream's own task over two
//! channels. Either way the audio goes through the same [`CallMedia`] core — jitter buffer,
//! codec, the 20 ms pacing clock — so the call task drives both alike: it waits on
//! [`LegIo::recv`], hands what arrives to [`LegIo::deliver`], and sends what the core paces out
//! with [`LegIo::send`].

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::media::CallMedia;
use super::ports::MediaSockets;
use crate::rtp::packet::RtpPacket;
use crate::sip::sdp::{Codec, Direction, NegotiatedAudio};

/// The media leg a call starts with.
pub enum MediaLeg {
    /// RTP negotiated by SDP, on the call's sockets.
    Rtp {
        audio: NegotiatedAudio,
        /// RTP and RTCP; the RTCP one goes unused when the call multiplexes RTCP on RTP.
        sockets: MediaSockets,
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

    /// The leg ready for the call task's loop.
    pub fn into_io(self) -> LegIo {
        match self {
            MediaLeg::Rtp { audio, sockets } => LegIo::Rtp {
                rtcp: (!audio.rtcp_mux).then_some(sockets.rtcp),
                rtp: sockets.rtp,
                buf: Box::new([0; 2048]),
                rtcp_buf: Box::new([0; 1500]),
            },
            MediaLeg::Stream(leg) => LegIo::Stream {
                frames: Some(leg.frames),
                out: leg.out,
                marks: 0,
            },
        }
    }
}

/// A leg as the call task runs it.
pub enum LegIo {
    Rtp {
        rtp: UdpSocket,
        rtcp: Option<UdpSocket>,
        buf: Box<[u8; 2048]>,
        rtcp_buf: Box<[u8; 1500]>,
    },
    Stream {
        /// `None` once the stream task is gone (its hang-up signal ends the call).
        frames: Option<mpsc::Receiver<StreamFrame>>,
        out: mpsc::Sender<StreamOut>,
        marks: u32,
    },
}

/// Something that arrived on a leg.
pub enum LegInput {
    /// `len` bytes of an RTP-socket datagram, in the leg's buffer.
    Rtp { len: usize, source: SocketAddr },
    /// `len` bytes of an RTCP-socket datagram, in the leg's buffer.
    Rtcp { len: usize, source: SocketAddr },
    /// A media-stream frame.
    Frame(StreamFrame),
    /// Nothing usable (a receive error, logged).
    Nothing,
}

impl LegIo {
    /// Waits for the next input (cancel-safe: use it in `select!`). A stream whose task is gone
    /// waits forever; its hang-up comes as a call signal.
    pub async fn recv(&mut self) -> LegInput {
        match self {
            LegIo::Rtp {
                rtp,
                rtcp,
                buf,
                rtcp_buf,
            } => {
                tokio::select! {
                    received = rtp.recv_from(&mut buf[..]) => match received {
                        Ok((len, source)) => LegInput::Rtp { len, source },
                        Err(e) => {
                            tracing::debug!(error = %e, "RTP receive error (ICMP?)");
                            LegInput::Nothing
                        }
                    },
                    received = async {
                        match rtcp {
                            Some(rtcp) => rtcp.recv_from(&mut rtcp_buf[..]).await,
                            None => std::future::pending().await,
                        }
                    } => match received {
                        Ok((len, source)) => LegInput::Rtcp { len, source },
                        Err(e) => {
                            tracing::debug!(error = %e, "RTCP receive error (ICMP?)");
                            LegInput::Nothing
                        }
                    },
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
    pub fn deliver(&self, now: Instant, input: LegInput, media: &mut CallMedia) {
        match (self, input) {
            (LegIo::Rtp { buf, .. }, LegInput::Rtp { len, source }) => {
                media.handle_datagram(now, source, buf.get(..len).unwrap_or_default())
            }
            (LegIo::Rtp { rtcp_buf, .. }, LegInput::Rtcp { len, source }) => {
                media.handle_rtcp(now, source, rtcp_buf.get(..len).unwrap_or_default())
            }
            (_, LegInput::Frame(frame)) => {
                media.handle_payload(now, frame.sequence, frame.timestamp, &frame.payload)
            }
            _ => {}
        }
    }

    /// Sends one packet the media core paced out: as it is on RTP, as its payload on a stream.
    pub async fn send(&self, to: SocketAddr, packet: &[u8]) {
        match self {
            LegIo::Rtp { rtp, .. } => {
                if let Err(e) = rtp.send_to(packet, to).await {
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
    pub async fn send_rtcp(&self, to: SocketAddr, report: &[u8]) {
        if let LegIo::Rtp { rtp, rtcp, .. } = self {
            if let Err(e) = rtcp.as_ref().unwrap_or(rtp).send_to(report, to).await {
                tracing::debug!(error = %e, "RTCP send failed");
            }
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

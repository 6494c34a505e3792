//! The mesh's wire format, without I/O. Audio travels as one QUIC datagram per frame: a 26-byte
//! header (version, payload kind, call id, leg, sequence, RTP-clock timestamp) and the encoded
//! frame. Control messages (dial, join, leave, mute, hang up) travel on a stream, each behind a
//! two-byte length and at most [`MAX_CONTROL_LEN`] bytes; [`ControlReader`] cuts them out of
//! whatever pieces the stream delivers. Every read is checked: hostile bytes are a typed
//! [`MeshCodecError`], never a panic and never an allocation larger than the caps.

use bytes::{Buf, BufMut};
use uuid::Uuid;

/// The only wire version this edge speaks; another is refused, not guessed at.
pub const MESH_VERSION: u8 = 1;
/// Bytes before an audio frame's payload.
pub const AUDIO_HEADER_LEN: usize = 1 + 1 + 16 + 2 + 2 + 4;
/// Largest audio payload carried (20 ms of 16 kHz L16; G.711 needs 160): anything larger is
/// refused before it is copied.
pub const MAX_AUDIO_PAYLOAD: usize = 640;
/// Largest control message body; a length prefix above it ends the stream.
pub const MAX_CONTROL_LEN: usize = 256;
/// Longest text field (an edge id, a workspace id, a number) inside a control message.
pub const MAX_TEXT_LEN: usize = 64;

/// Why bytes from a peer were not a mesh message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshCodecError {
    #[error("mesh message cut short")]
    Short,
    #[error("mesh wire version {0} is not spoken here")]
    Version(u8),
    #[error("unknown payload kind {0}")]
    PayloadKind(u8),
    #[error("audio payload of {0} bytes is over the cap")]
    PayloadTooLarge(usize),
    #[error("control message of {0} bytes is over the cap")]
    ControlTooLarge(usize),
    #[error("unknown control message type {0}")]
    ControlType(u8),
    #[error("a text field is not UTF-8 or is too long")]
    Text,
    #[error("bytes left over after a control message")]
    Trailing,
}

/// How an audio frame's payload is encoded (the leg's negotiated codec, or linear PCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Pcmu,
    Pcma,
    Opus,
    /// 16-bit little-endian linear PCM at 8 kHz.
    L16,
}

impl PayloadKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 1,
            Self::Opus => 2,
            Self::L16 => 3,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, MeshCodecError> {
        Ok(match byte {
            0 => Self::Pcmu,
            1 => Self::Pcma,
            2 => Self::Opus,
            3 => Self::L16,
            other => return Err(MeshCodecError::PayloadKind(other)),
        })
    }
}

/// Which leg of which call a frame or message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegKey {
    /// The call on its home edge.
    pub call: Uuid,
    /// The leg's number within the call (`LegId` on the home edge).
    pub leg: u16,
}

/// The header of one audio datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    pub key: LegKey,
    pub kind: PayloadKind,
    /// Grows by one per frame, wrapping: the receiver's jitter buffer orders by it.
    pub sequence: u16,
    /// The frame's first sample on the RTP clock of its payload kind.
    pub timestamp: u32,
}

/// One audio frame as read from a datagram; the payload borrows the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame<'a> {
    pub header: AudioHeader,
    pub payload: &'a [u8],
}

impl AudioFrame<'_> {
    /// Writes the datagram into `out` (cleared first), so a sender can reuse one buffer.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), MeshCodecError> {
        if self.payload.len() > MAX_AUDIO_PAYLOAD {
            return Err(MeshCodecError::PayloadTooLarge(self.payload.len()));
        }
        out.clear();
        out.reserve(AUDIO_HEADER_LEN + self.payload.len());
        let h = &self.header;
        out.put_u8(MESH_VERSION);
        out.put_u8(h.kind.to_byte());
        out.put_slice(h.key.call.as_bytes());
        out.put_u16(h.key.leg);
        out.put_u16(h.sequence);
        out.put_u32(h.timestamp);
        out.put_slice(self.payload);
        Ok(())
    }

    /// Reads one datagram; the payload is a slice of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<AudioFrame<'_>, MeshCodecError> {
        if bytes.len() < AUDIO_HEADER_LEN {
            return Err(MeshCodecError::Short);
        }
        let payload_len = bytes.len() - AUDIO_HEADER_LEN;
        if payload_len > MAX_AUDIO_PAYLOAD {
            return Err(MeshCodecError::PayloadTooLarge(payload_len));
        }
        let (mut head, payload) = bytes.split_at(AUDIO_HEADER_LEN);
        let version = head.get_u8();
        if version != MESH_VERSION {
            return Err(MeshCodecError::Version(version));
        }
        let kind = PayloadKind::from_byte(head.get_u8())?;
        let call = take_uuid(&mut head)?;
        let header = AudioHeader {
            key: LegKey {
                call,
                leg: head.get_u16(),
            },
            kind,
            sequence: head.get_u16(),
            timestamp: head.get_u32(),
        };
        Ok(AudioFrame { header, payload })
    }
}

/// Why a remote leg was hung up, as the other edge tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupCause {
    /// The party on that leg hung up.
    Remote,
    /// The call (or the API) ended the leg.
    Ended,
    /// The dial failed (busy, no answer, trunk refused).
    DialFailed,
    /// The edge is shutting down or cannot carry the leg.
    Unavailable,
    /// The edge refused to dial: no grant for that call and leg from the control plane, a
    /// workspace it does not serve, or the asking peer over its dial rate.
    Refused,
}

impl HangupCause {
    fn to_byte(self) -> u8 {
        match self {
            Self::Remote => 0,
            Self::Ended => 1,
            Self::DialFailed => 2,
            Self::Unavailable => 3,
            Self::Refused => 4,
        }
    }

    fn from_byte(byte: u8) -> Self {
        // A cause this edge does not know is still a hang-up.
        match byte {
            0 => Self::Remote,
            1 => Self::Ended,
            2 => Self::DialFailed,
            4 => Self::Refused,
            _ => Self::Unavailable,
        }
    }
}

/// A control message about one remote leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// The call's home edge asks the receiving edge to dial `to` as leg `key` of its call, for
    /// `workspace`, with its own SIP trunks, and to carry the leg's audio back over the mesh.
    /// The receiver dials only what the control plane granted it for that call and leg.
    Dial {
        key: LegKey,
        workspace: String,
        to: String,
        /// The home edge's id: it must be the peer the grant names.
        from_edge: String,
    },
    /// The leg on the sending edge joins the call that lives on the receiving edge; its audio
    /// will come as `kind`.
    Join {
        key: LegKey,
        kind: PayloadKind,
        /// The sending edge's id, for logs and the leg's events.
        from_edge: String,
    },
    /// The leg leaves the call without hanging up (the bridge is taken down).
    Leave { key: LegKey },
    /// The sender stops (or resumes) sending the leg's audio.
    Mute { key: LegKey, muted: bool },
    /// The leg is over on the sending side.
    Hangup { key: LegKey, cause: HangupCause },
}

impl ControlMessage {
    /// The leg the message is about.
    pub fn key(&self) -> LegKey {
        match self {
            Self::Join { key, .. }
            | Self::Dial { key, .. }
            | Self::Leave { key }
            | Self::Mute { key, .. }
            | Self::Hangup { key, .. } => *key,
        }
    }

    /// Appends the message with its length prefix to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), MeshCodecError> {
        let start = out.len();
        out.put_u16(0);
        let (tag, key) = match self {
            Self::Join { key, .. } => (1, key),
            Self::Leave { key } => (2, key),
            Self::Mute { key, .. } => (3, key),
            Self::Hangup { key, .. } => (4, key),
            Self::Dial { key, .. } => (5, key),
        };
        out.put_u8(tag);
        out.put_slice(key.call.as_bytes());
        out.put_u16(key.leg);
        match self {
            Self::Join {
                kind, from_edge, ..
            } => {
                out.put_u8(kind.to_byte());
                if from_edge.len() > MAX_TEXT_LEN {
                    out.truncate(start);
                    return Err(MeshCodecError::Text);
                }
                out.put_u8(from_edge.len() as u8);
                out.put_slice(from_edge.as_bytes());
            }
            Self::Dial {
                workspace,
                to,
                from_edge,
                ..
            } => {
                for text in [workspace, to, from_edge] {
                    if text.len() > MAX_TEXT_LEN {
                        out.truncate(start);
                        return Err(MeshCodecError::Text);
                    }
                    out.put_u8(text.len() as u8);
                    out.put_slice(text.as_bytes());
                }
            }
            Self::Leave { .. } => {}
            Self::Mute { muted, .. } => out.put_u8(u8::from(*muted)),
            Self::Hangup { cause, .. } => out.put_u8(cause.to_byte()),
        }
        let len = out.len() - start - 2;
        if len > MAX_CONTROL_LEN {
            out.truncate(start);
            return Err(MeshCodecError::ControlTooLarge(len));
        }
        out[start..start + 2].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(())
    }

    /// Reads one message body (without its length prefix); the whole of `body` must be it.
    pub fn decode(mut body: &[u8]) -> Result<Self, MeshCodecError> {
        if body.len() > MAX_CONTROL_LEN {
            return Err(MeshCodecError::ControlTooLarge(body.len()));
        }
        let buf = &mut body;
        let tag = buf.try_get_u8().map_err(|_| MeshCodecError::Short)?;
        let call = take_uuid(buf)?;
        let leg = buf.try_get_u16().map_err(|_| MeshCodecError::Short)?;
        let key = LegKey { call, leg };
        let byte = |buf: &mut &[u8]| buf.try_get_u8().map_err(|_| MeshCodecError::Short);
        let message = match tag {
            1 => {
                let kind = PayloadKind::from_byte(byte(buf)?)?;
                Self::Join {
                    key,
                    kind,
                    from_edge: take_text(buf)?,
                }
            }
            5 => Self::Dial {
                key,
                workspace: take_text(buf)?,
                to: take_text(buf)?,
                from_edge: take_text(buf)?,
            },
            2 => Self::Leave { key },
            3 => Self::Mute {
                key,
                muted: byte(buf)? != 0,
            },
            4 => Self::Hangup {
                key,
                cause: HangupCause::from_byte(byte(buf)?),
            },
            other => return Err(MeshCodecError::ControlType(other)),
        };
        if buf.has_remaining() {
            return Err(MeshCodecError::Trailing);
        }
        Ok(message)
    }
}

/// A length-prefixed UTF-8 field of at most [`MAX_TEXT_LEN`] bytes.
fn take_text(buf: &mut &[u8]) -> Result<String, MeshCodecError> {
    let len = usize::from(buf.try_get_u8().map_err(|_| MeshCodecError::Short)?);
    if len > MAX_TEXT_LEN || buf.remaining() < len {
        return Err(MeshCodecError::Text);
    }
    let text = std::str::from_utf8(&buf[..len])
        .map_err(|_| MeshCodecError::Text)?
        .to_owned();
    buf.advance(len);
    Ok(text)
}

fn take_uuid(buf: &mut &[u8]) -> Result<Uuid, MeshCodecError> {
    if buf.remaining() < 16 {
        return Err(MeshCodecError::Short);
    }
    let mut bytes = [0u8; 16];
    buf.copy_to_slice(&mut bytes);
    Ok(Uuid::from_bytes(bytes))
}

/// Cuts length-prefixed control messages out of a stream's pieces. It holds at most one
/// message's worth of bytes: a prefix over the cap is an error after which the stream must be
/// closed (the reader is then spent).
#[derive(Debug, Default)]
pub struct ControlReader {
    pending: Vec<u8>,
    failed: bool,
}

impl ControlReader {
    /// Takes the next piece the stream delivered and pushes every whole message in it, in
    /// order, to `out`; an error ends the stream.
    pub fn push(
        &mut self,
        mut piece: &[u8],
        out: &mut Vec<ControlMessage>,
    ) -> Result<(), MeshCodecError> {
        if self.failed {
            return Err(MeshCodecError::Trailing);
        }
        while !piece.is_empty() {
            // Fill the prefix, then the body, never holding more than one message.
            let want = match self.pending.len() {
                n if n < 2 => 2 - n,
                _ => {
                    let len = usize::from(u16::from_be_bytes([self.pending[0], self.pending[1]]));
                    if len > MAX_CONTROL_LEN {
                        self.failed = true;
                        return Err(MeshCodecError::ControlTooLarge(len));
                    }
                    2 + len - self.pending.len()
                }
            };
            let take = want.min(piece.len());
            self.pending.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.pending.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([self.pending[0], self.pending[1]]));
                if len > MAX_CONTROL_LEN {
                    self.failed = true;
                    return Err(MeshCodecError::ControlTooLarge(len));
                }
                if self.pending.len() == 2 + len {
                    let decoded = ControlMessage::decode(&self.pending[2..]);
                    self.pending.clear();
                    match decoded {
                        Ok(message) => out.push(message),
                        Err(e) => {
                            self.failed = true;
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes held of a message not yet whole.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

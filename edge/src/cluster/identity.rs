//! Who a cluster member is, and how foca's messages about members travel. A [`Peer`] is an
//! edge's id, its gossip address and a generation (its start time in milliseconds): an edge
//! that restarts on the same address comes back with a larger generation, which wins foca's
//! address conflict, so peers rename the old identity instead of keeping a ghost. The codec is
//! written by hand (no serde format in the dependency tree fits foca's `Buf`/`BufMut`): every
//! read is checked, so a short or garbled datagram is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};

/// Longest edge id gossip carries; a longer one is refused when the edge starts.
pub const MAX_ID_LEN: usize = 64;

/// A member of the cluster: one run of one edge.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// The edge's id (empty only in the placeholder a seed is announced to).
    pub id: Arc<str>,
    /// Where its gossip socket listens.
    pub addr: SocketAddr,
    /// Start time of this run, in milliseconds since the epoch (bumped by one on a rejoin).
    pub generation: u64,
}

impl Peer {
    /// The identity a seed is addressed by before we know who answers there.
    pub fn placeholder(addr: SocketAddr) -> Self {
        Self {
            id: Arc::from(""),
            addr,
            generation: 0,
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.id, self.addr, self.generation)
    }
}

impl foca::Identity for Peer {
    type Addr = SocketAddr;

    /// Declared down (a partition, a long pause): rejoin at once as a newer generation.
    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// Why bytes did not decode as a gossip message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the message ends early")]
    Short,
    #[error("an edge id is over {MAX_ID_LEN} bytes or not UTF-8")]
    BadId,
    #[error("unknown address family {0}")]
    BadFamily(u8),
    #[error("unknown message kind {0}")]
    BadMessage(u8),
    #[error("unknown member state {0}")]
    BadState(u8),
}

/// foca's codec for [`Peer`]s: length-prefixed id, address, generation.
#[derive(Debug, Default, Clone, Copy)]
pub struct PeerCodec;

fn u8_of(buf: &mut impl Buf) -> Result<u8, CodecError> {
    buf.try_get_u8().map_err(|_| CodecError::Short)
}

fn u16_of(buf: &mut impl Buf) -> Result<u16, CodecError> {
    buf.try_get_u16().map_err(|_| CodecError::Short)
}

fn u64_of(buf: &mut impl Buf) -> Result<u64, CodecError> {
    buf.try_get_u64().map_err(|_| CodecError::Short)
}

/// Writes a peer (its id already bounded by [`MAX_ID_LEN`] at start).
pub(crate) fn put_peer(peer: &Peer, buf: &mut impl BufMut) {
    let id = &peer.id.as_bytes()[..peer.id.len().min(MAX_ID_LEN)];
    buf.put_u8(id.len() as u8);
    buf.put_slice(id);
    put_addr(peer.addr, buf);
    buf.put_u64(peer.generation);
}

/// Writes a socket address: family (4 or 6), the address, the port.
pub(crate) fn put_addr(addr: SocketAddr, buf: &mut impl BufMut) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            buf.put_u8(4);
            buf.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.put_u8(6);
            buf.put_slice(&ip.octets());
        }
    }
    buf.put_u16(addr.port());
}

/// Reads a string of at most [`MAX_ID_LEN`] bytes after a one-byte length.
pub(crate) fn take_str(buf: &mut impl Buf) -> Result<Arc<str>, CodecError> {
    let len = usize::from(u8_of(buf)?);
    if len > MAX_ID_LEN {
        return Err(CodecError::BadId);
    }
    if buf.remaining() < len {
        return Err(CodecError::Short);
    }
    let mut bytes = vec![0; len];
    buf.copy_to_slice(&mut bytes);
    String::from_utf8(bytes)
        .map(Arc::from)
        .map_err(|_| CodecError::BadId)
}

/// Reads what [`put_addr`] wrote.
pub(crate) fn take_addr(buf: &mut impl Buf) -> Result<SocketAddr, CodecError> {
    let ip = match u8_of(buf)? {
        4 => {
            let mut octets = [0; 4];
            buf.try_copy_to_slice(&mut octets)
                .map_err(|_| CodecError::Short)?;
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        6 => {
            let mut octets = [0; 16];
            buf.try_copy_to_slice(&mut octets)
                .map_err(|_| CodecError::Short)?;
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        other => return Err(CodecError::BadFamily(other)),
    };
    Ok(SocketAddr::new(ip, u16_of(buf)?))
}

fn take_peer(buf: &mut impl Buf) -> Result<Peer, CodecError> {
    Ok(Peer {
        id: take_str(buf)?,
        addr: take_addr(buf)?,
        generation: u64_of(buf)?,
    })
}

fn put_message(message: &Message<Peer>, buf: &mut impl BufMut) {
    let (tag, peer, probe) = match message {
        Message::Ping(n) => (0, None, Some(*n)),
        Message::Ack(n) => (1, None, Some(*n)),
        Message::PingReq {
            target,
            probe_number,
        } => (2, Some(target), Some(*probe_number)),
        Message::IndirectPing {
            origin,
            probe_number,
        } => (3, Some(origin), Some(*probe_number)),
        Message::IndirectAck {
            target,
            probe_number,
        } => (4, Some(target), Some(*probe_number)),
        Message::ForwardedAck {
            origin,
            probe_number,
        } => (5, Some(origin), Some(*probe_number)),
        Message::Announce => (6, None, None),
        Message::Feed => (7, None, None),
        Message::Gossip => (8, None, None),
        Message::Broadcast => (9, None, None),
        Message::TurnUndead => (10, None, None),
    };
    buf.put_u8(tag);
    if let Some(peer) = peer {
        put_peer(peer, buf);
    }
    if let Some(probe) = probe {
        buf.put_u8(probe);
    }
}

fn take_message(buf: &mut impl Buf) -> Result<Message<Peer>, CodecError> {
    let tag = u8_of(buf)?;
    Ok(match tag {
        0 => Message::Ping(u8_of(buf)?),
        1 => Message::Ack(u8_of(buf)?),
        2..=5 => {
            let peer = take_peer(buf)?;
            let probe_number = u8_of(buf)?;
            match tag {
                2 => Message::PingReq {
                    target: peer,
                    probe_number,
                },
                3 => Message::IndirectPing {
                    origin: peer,
                    probe_number,
                },
                4 => Message::IndirectAck {
                    target: peer,
                    probe_number,
                },
                _ => Message::ForwardedAck {
                    origin: peer,
                    probe_number,
                },
            }
        }
        6 => Message::Announce,
        7 => Message::Feed,
        8 => Message::Gossip,
        9 => Message::Broadcast,
        10 => Message::TurnUndead,
        other => return Err(CodecError::BadMessage(other)),
    })
}

impl foca::Codec<Peer> for PeerCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<Peer>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        put_peer(&header.src, &mut buf);
        buf.put_u16(header.src_incarnation);
        put_peer(&header.dst, &mut buf);
        put_message(&header.message, &mut buf);
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<Peer>, CodecError> {
        Ok(Header {
            src: take_peer(&mut buf)?,
            src_incarnation: u16_of(&mut buf)?,
            dst: take_peer(&mut buf)?,
            message: take_message(&mut buf)?,
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<Peer>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        put_peer(member.id(), &mut buf);
        buf.put_u16(member.incarnation());
        buf.put_u8(match member.state() {
            State::Alive => 0,
            State::Suspect => 1,
            State::Down => 2,
        });
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<Peer>, CodecError> {
        let peer = take_peer(&mut buf)?;
        let incarnation = u16_of(&mut buf)?;
        let state = match u8_of(&mut buf)? {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            other => return Err(CodecError::BadState(other)),
        };
        Ok(Member::new(peer, incarnation, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Codec;

    fn peer(id: &str, port: u16) -> Peer {
        Peer {
            id: Arc::from(id),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            generation: 7,
        }
    }

    #[test]
    fn every_message_kind_round_trips() {
        let messages = [
            Message::Ping(1),
            Message::Ack(2),
            Message::PingReq {
                target: peer("c", 3),
                probe_number: 3,
            },
            Message::IndirectPing {
                origin: peer("d", 4),
                probe_number: 4,
            },
            Message::IndirectAck {
                target: peer("e", 5),
                probe_number: 5,
            },
            Message::ForwardedAck {
                origin: peer("f", 6),
                probe_number: 6,
            },
            Message::Announce,
            Message::Feed,
            Message::Gossip,
            Message::Broadcast,
            Message::TurnUndead,
        ];
        for message in messages {
            let header = Header {
                src: peer("a", 1),
                src_incarnation: 9,
                dst: peer("b", 2),
                message,
            };
            let mut buf = Vec::new();
            PeerCodec.encode_header(&header, &mut buf).expect("encode");
            let back = PeerCodec.decode_header(&buf[..]).expect("decode");
            assert_eq!(back, header);
        }
    }

    #[test]
    fn every_truncation_of_a_header_is_an_error_not_a_panic() {
        let header = Header {
            src: Peer {
                addr: "[::1]:9".parse().expect("addr"),
                ..peer("edge-a", 1)
            },
            src_incarnation: 1,
            dst: peer("edge-b", 2),
            message: Message::PingReq {
                target: peer("edge-c", 3),
                probe_number: 1,
            },
        };
        let mut buf = Vec::new();
        PeerCodec.encode_header(&header, &mut buf).expect("encode");
        for cut in 0..buf.len() {
            assert!(PeerCodec.decode_header(&buf[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn an_overlong_id_is_refused() {
        let mut buf = vec![200u8];
        buf.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(take_str(&mut &buf[..]), Err(CodecError::BadId));
    }
}

//! The transport seam: which transport a message came over or must leave by, and the peer at
//! the other end.
//!
//! The sans-IO cores see only [`Peer`] values and bytes; the tokio shell (`transport.rs`) maps a
//! [`Transport::Udp`] peer to `send_to` on the UDP socket and a [`Transport::Tcp`] peer to the
//! connection with that remote address (opening one if none is up). Over TCP the transactions
//! are `reliable` (RFC 3261 section 17: no retransmissions, zero wait timers) and responses go
//! back on the connection the request came in on (section 18.2.2). TLS would be one more variant.

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams; transactions retransmit.
    Udp,
    /// A byte stream framed by Content-Length; nothing is retransmitted.
    Tcp,
}

impl Transport {
    /// Whether the transport itself delivers reliably (RFC 3261's `reliable` transports).
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp)
    }

    /// The name in a Via sent-protocol (`SIP/2.0/UDP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }

    /// The `;transport=` URI parameter our Contact needs (none for UDP, the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Self::Udp => "",
            Self::Tcp => ";transport=tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_name())
    }
}

/// The other end of a message: an address and the transport that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// How the message travels.
    pub transport: Transport,
    /// The remote address (for TCP: the connection's remote address).
    pub addr: SocketAddr,
}

impl Peer {
    /// A peer reached by UDP.
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A peer reached over a TCP connection.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Tcp,
            addr,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.transport)
    }
}

/// A message the endpoint wants sent: the bytes, where, and over what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The transport to use.
    pub transport: Transport,
    /// The destination address (for TCP: the connection's remote address).
    pub dest: SocketAddr,
    /// One complete serialized SIP message.
    pub bytes: Vec<u8>,
}

impl Outgoing {
    /// A transaction's transmit, sent over `transport`.
    pub fn new(transport: Transport, transmit: super::Transmit) -> Self {
        Self {
            transport,
            dest: transmit.dest,
            bytes: transmit.bytes,
        }
    }
}

//! The transport seam: which transport a message came over or must leave by, and the peer at
//! the other end.
//!
//! The sans-IO cores see only [`Peer`] values and bytes; the tokio shell (`transport.rs`) maps a
//! [`Transport::Udp`] peer to `send_to` on the UDP socket and a [`Transport::Tcp`] peer to the
//! connection with that remote address (opening one if none is up). Over TCP the transactions
//! are `reliable` (RFC 3261 section 17: no retransmissions, zero wait timers) and responses go
//! back on the connection the request came in on (section 18.2.2). TLS (RFC 3261 section 26,
//! RFC 5630) is a stream like TCP to the cores: framed the same way, reliable, answered on its
//! connection; only the shell knows about certificates, and URIs for it say `sips:`.

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams; transactions retransmit.
    Udp,
    /// A byte stream framed by Content-Length; nothing is retransmitted.
    Tcp,
    /// TCP inside TLS: framed and reliable as TCP, and the only one a `sips:` URI may use.
    Tls,
}

impl Transport {
    /// Whether the transport itself delivers reliably (RFC 3261's `reliable` transports).
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp | Self::Tls)
    }

    /// The name in a Via sent-protocol (`SIP/2.0/UDP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The `;transport=` URI parameter our Contact needs (none for UDP, the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Self::Udp => "",
            Self::Tcp => ";transport=tcp",
            Self::Tls => "",
        }
    }

    /// Our Contact value (`<sips:192.0.2.1:5061>`, `<sip:192.0.2.1:5060;transport=tcp>`) at
    /// `local` for messages over this transport.
    pub fn contact(self, local: SocketAddr) -> String {
        format!("<{}:{local}{}>", self.uri_scheme(), self.uri_param())
    }

    /// Our Contact in a dialog over this transport whose INVITE named a `sips:` Request-URI
    /// (`secure`) or a `sip:` one. RFC 3261 section 12.1.1 asks for a SIPS Contact only in the
    /// first case; a `sip:` dialog that merely travels over TLS gets
    /// `<sip:192.0.2.1:5061;transport=tls>`, which phones that cannot dial `sips:` (baresip,
    /// many desk phones) still reach over TLS.
    pub fn dialog_contact(self, local: SocketAddr, secure: bool) -> String {
        match (self, secure) {
            (Self::Tls, false) => format!("<sip:{local};transport=tls>"),
            _ => self.contact(local),
        }
    }

    /// The URI scheme our Contact and Request-URIs use over this transport: `sips` over TLS
    /// (RFC 5630 section 3.1.3: `sips:` already means TLS, so no `transport=tls`), else `sip`.
    pub fn uri_scheme(self) -> &'static str {
        match self {
            Self::Tls => "sips",
            Self::Udp | Self::Tcp => "sip",
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

    /// A peer reached over a TLS connection.
    pub fn tls(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Tls,
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

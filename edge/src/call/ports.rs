//! RTP ports for calls: a pair of UDP sockets per call from the configured range, RTP on an even
//! port and RTCP on the odd one above (RFC 3550 §11). A port is free again when its socket
//! drops, so there is no lease to leak.
//!
//! A call's media is in the address family of its SDP offer (an `IN IP6` offer gets an
//! `IN IP6` answer): [`MediaAddresses`] holds the edge's address per family, and the pair is
//! bound on that family's address ([`PortAllocator::bind_on`]), never on a dual-stack `[::]`
//! socket, so that a call's sockets only ever send to and receive from peers of one family and
//! the media code needs no IPv4-mapped addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::UdpSocket;

/// One call's media sockets.
pub struct MediaSockets {
    /// RTP, on the even port (and RTCP too when the call multiplexes it).
    pub rtp: UdpSocket,
    /// RTCP, on the odd port above.
    pub rtcp: UdpSocket,
}

/// Hands out RTP/RTCP socket pairs round-robin over a port range.
pub struct PortAllocator {
    ip: IpAddr,
    min: u16,
    max: u16,
    next: AtomicU32,
}

impl PortAllocator {
    /// Ports `min..=max` on `ip` (pairs of an even port and the odd one above, both in range).
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        Self {
            ip,
            min: min + (min % 2),
            max,
            next: AtomicU32::new(0),
        }
    }

    /// Binds the next free pair on the allocator's IP; `None` when every pair is taken.
    pub async fn bind(&self) -> Option<MediaSockets> {
        self.bind_on(self.ip).await
    }

    /// Binds the next free pair on `ip` (the address of the call's media family); `None` when
    /// every pair is taken.
    pub async fn bind_on(&self, ip: IpAddr) -> Option<MediaSockets> {
        let pairs = u32::from(self.max.saturating_sub(self.min).saturating_add(1) / 2);
        for _ in 0..pairs {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % pairs;
            let Ok(offset) = u16::try_from(slot * 2) else {
                continue;
            };
            let port = self.min + offset;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, port)).await else {
                continue;
            };
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                return Some(MediaSockets { rtp, rtcp });
            }
        }
        None
    }
}

/// Where the edge receives one family's media: the IP its sockets bind and the IP written in
/// SDP (they differ behind NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaAddress {
    pub bind: IpAddr,
    pub public: IpAddr,
}

/// The edge's media address per IP family; a family without one cannot carry calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaAddresses {
    pub v4: Option<MediaAddress>,
    pub v6: Option<MediaAddress>,
}

/// The media addresses configured (`rtp.ip`, `rtp.public_ip`, `rtp.ip_v6`,
/// `rtp.public_ip_v6`), each already known to be of its family.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfiguredMedia {
    pub ip: Option<IpAddr>,
    pub public_ip: Option<IpAddr>,
    pub ip_v6: Option<IpAddr>,
    pub public_ip_v6: Option<IpAddr>,
}

impl MediaAddresses {
    /// The addresses for an edge whose SIP socket is bound to `sip` and advertised as
    /// `public_sip`. Per family: the configured bind IP, else the SIP listener's IP when it is
    /// of that family, else the family's wildcard when SIP listens dual-stack on `[::]`; the
    /// configured public IP, else the advertised SIP IP when of that family, else the bind IP
    /// unless it is a wildcard. So `[::1]:5060` gives IPv6 media on `::1` only; `[::]:5060`
    /// needs `rtp.public_ip` / `rtp.public_ip_v6` (or `sip.public_addr`) to advertise.
    pub fn derive(sip: IpAddr, public_sip: IpAddr, configured: ConfiguredMedia) -> Self {
        let dual_stack = sip == IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let family = |v6: bool, ip: Option<IpAddr>, public: Option<IpAddr>, any: IpAddr| {
            let bind = ip
                .or_else(|| (sip.is_ipv6() == v6).then_some(sip))
                .or_else(|| dual_stack.then_some(any))?;
            let public = public
                .or_else(|| (public_sip.is_ipv6() == v6).then_some(public_sip))
                .or_else(|| (!bind.is_unspecified()).then_some(bind))?;
            Some(MediaAddress { bind, public })
        };
        Self {
            v4: family(
                false,
                configured.ip,
                configured.public_ip,
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ),
            v6: family(
                true,
                configured.ip_v6,
                configured.public_ip_v6,
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ),
        }
    }

    /// The address for media in the family of `offered` (the offer's connection address).
    pub fn for_family_of(&self, offered: IpAddr) -> Option<MediaAddress> {
        if offered.is_ipv6() {
            self.v6
        } else {
            self.v4
        }
    }

    /// The address advertised first (IPv4 if the edge has one), for the control plane.
    pub fn primary(&self) -> Option<MediaAddress> {
        self.v4.or(self.v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(socket: &UdpSocket) -> u16 {
        socket.local_addr().expect("addr").port()
    }

    // Fixed ports above the kernel's ephemeral range (32768–60999), which other sockets of
    // the test run may be given at any moment.
    #[tokio::test]
    async fn pairs_are_even_and_odd_within_range_and_reused_after_release() {
        let ports = PortAllocator::new("127.0.0.1".parse().expect("ip"), 61001, 61006);
        let a = ports.bind().await.expect("a pair");
        let b = ports.bind().await.expect("another pair");
        let (pa, pb) = (port(&a.rtp), port(&b.rtp));
        assert!([61002, 61004].contains(&pa) && [61002, 61004].contains(&pb) && pa != pb);
        assert_eq!((port(&a.rtcp), port(&b.rtcp)), (pa + 1, pb + 1));
        assert!(
            ports.bind().await.is_none(),
            "61006 has no odd port above it in range"
        );
        drop(a);
        assert_eq!(port(&ports.bind().await.expect("freed").rtp), pa);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn media_addresses_follow_the_sip_listener_family() {
        let none = ConfiguredMedia::default();
        let v4 = MediaAddresses::derive(ip("10.0.0.5"), ip("10.0.0.5"), none);
        assert_eq!(v4.v4.map(|a| a.public), Some(ip("10.0.0.5")));
        assert_eq!(v4.v6, None, "an IPv4 edge has no IPv6 media");
        let v6 = MediaAddresses::derive(ip("::1"), ip("::1"), none);
        assert_eq!(v6.v4, None, "a v6-only edge cannot receive IPv4 media");
        assert_eq!(
            v6.v6,
            Some(MediaAddress {
                bind: ip("::1"),
                public: ip("::1")
            })
        );
        let dual = ConfiguredMedia {
            public_ip: Some(ip("203.0.113.5")),
            public_ip_v6: Some(ip("2001:db8::5")),
            ..none
        };
        let both = MediaAddresses::derive(ip("::"), ip("::"), dual);
        assert_eq!(
            both.v4,
            Some(MediaAddress {
                bind: ip("0.0.0.0"),
                public: ip("203.0.113.5")
            })
        );
        assert_eq!(both.v6.map(|a| a.bind), Some(ip("::")));
        assert_eq!(both.for_family_of(ip("2001:db8::9")), both.v6);
        assert_eq!(both.for_family_of(ip("198.51.100.1")), both.v4);
        let unadvertised = MediaAddresses::derive(ip("::"), ip("::"), none);
        assert_eq!(
            unadvertised.v4, None,
            "0.0.0.0 is not an address to advertise"
        );
    }

    #[tokio::test]
    async fn a_pair_binds_on_the_family_asked_for() {
        let ports = PortAllocator::new(ip("127.0.0.1"), 61021, 61024);
        let pair = ports.bind_on(ip("::1")).await.expect("an IPv6 pair");
        assert!(pair.rtp.local_addr().expect("addr").is_ipv6());
    }

    #[tokio::test]
    async fn a_taken_rtcp_port_skips_the_pair() {
        let _squatter = std::net::UdpSocket::bind("127.0.0.1:61013").expect("squat");
        let ports = PortAllocator::new("127.0.0.1".parse().expect("ip"), 61012, 61015);
        let pair = ports.bind().await.expect("the other pair");
        assert_eq!(port(&pair.rtp), 61014);
        assert!(ports.bind().await.is_none());
    }
}

//! RTP ports for calls: a pair of UDP sockets per call from the configured range, RTP on an even
//! port and RTCP on the odd one above (RFC 3550 §11). A port is free again when its socket
//! drops, so there is no lease to leak.

use std::net::{IpAddr, SocketAddr};
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

    /// Binds the next free pair; `None` when every pair is taken.
    pub async fn bind(&self) -> Option<MediaSockets> {
        let pairs = u32::from(self.max.saturating_sub(self.min).saturating_add(1) / 2);
        for _ in 0..pairs {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % pairs;
            let Ok(offset) = u16::try_from(slot * 2) else {
                continue;
            };
            let port = self.min + offset;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.ip, port)).await else {
                continue;
            };
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.ip, port + 1)).await {
                return Some(MediaSockets { rtp, rtcp });
            }
        }
        None
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

    #[tokio::test]
    async fn a_taken_rtcp_port_skips_the_pair() {
        let _squatter = std::net::UdpSocket::bind("127.0.0.1:61013").expect("squat");
        let ports = PortAllocator::new("127.0.0.1".parse().expect("ip"), 61012, 61015);
        let pair = ports.bind().await.expect("the other pair");
        assert_eq!(port(&pair.rtp), 61014);
        assert!(ports.bind().await.is_none());
    }
}

//! RTP ports for calls: one UDP socket per call, on an even port from the configured range
//! (RTCP conventionally takes the odd one above). A port is free again when its socket drops, so
//! there is no lease to leak.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::UdpSocket;

/// Hands out RTP sockets round-robin over a port range.
pub struct PortAllocator {
    ip: IpAddr,
    min: u16,
    max: u16,
    next: AtomicU32,
}

impl PortAllocator {
    /// Ports `min..=max` on `ip` (only even ports are used).
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        Self {
            ip,
            min: min + (min % 2),
            max,
            next: AtomicU32::new(0),
        }
    }

    /// Binds a socket on the next free even port; `None` when every port is taken.
    pub async fn bind(&self) -> Option<UdpSocket> {
        let slots = u32::from(self.max.saturating_sub(self.min) / 2 + 1);
        for _ in 0..slots {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % slots;
            let Ok(offset) = u16::try_from(slot * 2) else {
                continue;
            };
            let port = self.min + offset;
            if let Ok(socket) = UdpSocket::bind(SocketAddr::new(self.ip, port)).await {
                return Some(socket);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_are_even_within_range_and_reused_after_release() {
        let ports = PortAllocator::new("127.0.0.1".parse().expect("ip"), 41001, 41004);
        let a = ports.bind().await.expect("a port");
        let b = ports.bind().await.expect("another port");
        let (pa, pb) = (
            a.local_addr().expect("addr").port(),
            b.local_addr().expect("addr").port(),
        );
        assert!([41002, 41004].contains(&pa) && [41002, 41004].contains(&pb) && pa != pb);
        assert!(ports.bind().await.is_none(), "the range is exhausted");
        drop(a);
        assert_eq!(
            ports
                .bind()
                .await
                .expect("freed")
                .local_addr()
                .expect("addr")
                .port(),
            pa
        );
    }
}

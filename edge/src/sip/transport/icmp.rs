//! ICMP "unreachable" errors for datagrams sent from the shared SIP UDP socket.
//!
//! Linux reports ICMP errors on an *unconnected* UDP socket only when asked: with `IP_RECVERR`
//! (and `IPV6_RECVERR` on an IPv6 socket) each error is queued on the socket's error queue, and
//! `recvmsg(MSG_ERRQUEUE)` returns it with the original destination in `msg_name`. That keeps
//! one socket for every peer (Via, `rport` and NAT bindings stay as they are); the alternative,
//! a connected socket per outbound attempt, would need a second local port per trunk and its
//! own receive path. The error queue is drained as soon as the socket reports an error, which
//! also clears the socket's pending error (otherwise the next `send_to`, to anyone, would fail
//! with it).
//!
//! Only "port, host or network unreachable" from ICMP / ICMPv6 count; anything else on the
//! queue (fragmentation needed, local errors) is read and dropped.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use nix::libc;
use nix::sys::socket::{
    getsockname, recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

/// Room for one `IP_RECVERR` control message (the extended error and the offender's address).
const CONTROL_SPACE: usize = 128;

/// Errors read per call: a flood of ICMP cannot hold the SIP task in one drain.
const MAX_PER_DRAIN: usize = 64;

/// Asks the kernel to queue ICMP errors for datagrams `socket` sends (see the module docs).
pub(super) fn report_unreachable(socket: &impl AsFd) -> io::Result<()> {
    let v6 = getsockname::<SockaddrStorage>(socket.as_fd().as_raw_fd())
        .map(|a| a.as_sockaddr_in6().is_some())
        .map_err(io::Error::from)?;
    if v6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true).map_err(io::Error::from)?;
        // Dual-stack: errors about IPv4 peers (mapped addresses) come through the IPv4 path.
        if let Err(e) = setsockopt(socket, sockopt::Ipv4RecvErr, &true) {
            tracing::debug!(error = %e, "IP_RECVERR on an IPv6 socket");
        }
        Ok(())
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true).map_err(io::Error::from)
    }
}

/// Reads the socket's error queue without blocking and returns the destinations reported
/// unreachable (IPv4-mapped addresses as plain IPv4), oldest first.
pub(super) fn drain_unreachable(socket: &impl AsRawFd) -> Vec<SocketAddr> {
    let mut unreachable = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..MAX_PER_DRAIN {
        let mut control = [0u8; CONTROL_SPACE];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(message) =
            recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut control), flags)
        else {
            break; // EAGAIN: the queue is empty
        };
        let reported = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::Ipv4RecvErr(err, _) => {
                    is_unreachable(err.ee_origin, err.ee_errno).then_some(())
                }
                ControlMessageOwned::Ipv6RecvErr(err, _) => {
                    is_unreachable(err.ee_origin, err.ee_errno).then_some(())
                }
                _ => None,
            })
        });
        let dest = message.address.as_ref().and_then(socket_addr);
        // Once per destination: a peer gone mid-transaction queues an error for every
        // retransmission, and one is enough to fail all our transactions to it (and to log it).
        if let (Some(()), Some(dest)) = (reported, dest) {
            if !unreachable.contains(&dest) {
                unreachable.push(dest);
            }
        }
    }
    unreachable
}

/// An ICMP / ICMPv6 error that means nobody will answer at that address.
fn is_unreachable(origin: u8, errno: u32) -> bool {
    let from_icmp = origin == libc::SO_EE_ORIGIN_ICMP || origin == libc::SO_EE_ORIGIN_ICMP6;
    let errno = i32::try_from(errno).unwrap_or_default();
    from_icmp && [libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ENETUNREACH].contains(&errno)
}

/// An address as the SIP core knows it: IPv4 peers of a dual-stack socket as IPv4.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Where to `send_to` for `dest` on a socket of this family: an IPv4 peer of a dual-stack
/// (IPv6) socket as its mapped address; anything else as it is.
pub(super) fn for_socket(ipv6_socket: bool, dest: SocketAddr) -> SocketAddr {
    match dest.ip() {
        IpAddr::V4(v4) if ipv6_socket => {
            SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), dest.port())
        }
        _ => dest,
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| canonical(SocketAddr::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    /// A port on `ip` where nothing listens (bound, then released).
    fn dead_port(ip: &str) -> SocketAddr {
        let socket = UdpSocket::bind((ip, 0)).expect("bind");
        socket.local_addr().expect("addr")
    }

    fn wait_for_errors(socket: &UdpSocket) -> Vec<SocketAddr> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let found = drain_unreachable(socket);
            if !found.is_empty() || Instant::now() > until {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn retransmissions_to_a_dead_port_report_it_once() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        report_unreachable(&socket).expect("IP_RECVERR");
        let dead = dead_port("127.0.0.1");
        for _ in 0..5 {
            // A send may return the previous datagram's error; the queue keeps each one.
            let _ = socket.send_to(b"INVITE", dead);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(wait_for_errors(&socket), vec![dead]);
    }

    #[test]
    fn a_datagram_to_a_dead_port_reports_that_destination_only() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        report_unreachable(&socket).expect("IP_RECVERR");
        let live = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let dead = dead_port("127.0.0.1");
        socket
            .send_to(b"x", live.local_addr().expect("addr"))
            .expect("send");
        socket.send_to(b"INVITE", dead).expect("send");
        assert_eq!(wait_for_errors(&socket), vec![dead]);
        assert!(
            drain_unreachable(&socket).is_empty(),
            "the queue is drained"
        );
        // The pending error is cleared: the next send to anyone goes out.
        socket
            .send_to(b"y", live.local_addr().expect("addr"))
            .expect("send after the error");
    }

    #[test]
    fn ipv6_and_mapped_ipv4_destinations_are_reported_on_a_dual_stack_socket() {
        let Ok(socket) = UdpSocket::bind("[::]:0") else {
            return; // no IPv6 on this machine
        };
        report_unreachable(&socket).expect("IPV6_RECVERR");
        let dead6 = dead_port("::1");
        socket.send_to(b"INVITE", dead6).expect("send v6");
        assert_eq!(wait_for_errors(&socket), vec![dead6]);
        let dead4 = dead_port("127.0.0.1");
        let mapped = match dead4.ip() {
            IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), dead4.port()),
            IpAddr::V6(_) => dead4,
        };
        socket.send_to(b"INVITE", mapped).expect("send v4");
        assert_eq!(wait_for_errors(&socket), vec![dead4]);
    }

    #[tokio::test]
    async fn a_tokio_socket_wakes_for_the_error_of_its_first_datagram() {
        use tokio::io::Interest;
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        report_unreachable(&socket).expect("IP_RECVERR");
        for _ in 0..3 {
            let dead = dead_port("127.0.0.1");
            socket.send_to(b"INVITE", dead).await.expect("send");
            let ready = tokio::time::timeout(Duration::from_secs(2), socket.ready(Interest::ERROR))
                .await
                .expect("woken by the ICMP error")
                .expect("ready");
            assert!(ready.is_error());
            let mut found = Vec::new();
            let _ = socket.try_io(Interest::ERROR, || {
                found = drain_unreachable(&socket);
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
            assert_eq!(found, vec![dead]);
        }
    }
}

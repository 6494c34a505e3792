//! Non-blocking datagram reads that keep each datagram's arrival time. A call reads its RTP
//! socket on its 20 ms tick rather than on every packet (see `call::leg`), but the jitter buffer,
//! the turn detector and RTCP's round-trip time need to know when a packet *arrived*, not when it
//! was read. The kernel stamps each datagram as it is queued (`SO_TIMESTAMPNS`); this reads the
//! stamp with the datagram and turns it into an `Instant`.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

/// Room for one `SCM_TIMESTAMPNS` control message (a 16-byte header and a 16-byte timespec,
/// aligned), with margin.
const CONTROL_SPACE: usize = 64;

/// A stamp older than this is not believed (the wall clock was stepped): the read time is used.
const MAX_AGE: Duration = Duration::from_secs(1);

/// One datagram read from a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Who sent it.
    pub source: SocketAddr,
    /// When the kernel queued it (or, without a stamp, when it was read).
    pub arrived: Instant,
}

/// Asks the kernel to stamp every datagram `socket` (a UDP socket, std's or tokio's) receives
/// with its arrival time.
pub fn stamp_arrivals(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Reads one datagram without blocking (`WouldBlock` when there is none). `now` is the read
/// time, the arrival time's fallback and reference.
pub fn recv_stamped(socket: &impl AsRawFd, buf: &mut [u8], now: Instant) -> io::Result<Datagram> {
    let mut control = [0u8; CONTROL_SPACE];
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let source = message
        .address
        .as_ref()
        .and_then(socket_addr)
        .ok_or_else(|| io::Error::other("a datagram without an IP source address"))?;
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(ts) => {
                let nanos = u32::try_from(ts.tv_nsec()).ok()?;
                let secs = u64::try_from(ts.tv_sec()).ok()?;
                Some(UNIX_EPOCH + Duration::new(secs, nanos))
            }
            _ => None,
        })
    });
    Ok(Datagram {
        len: message.bytes,
        source,
        arrived: stamp.map_or(now, |at| arrival(now, SystemTime::now(), at)),
    })
}

/// The `Instant` of a wall-clock stamp, given the same moment (`now`, `wall_now`) on both clocks.
fn arrival(now: Instant, wall_now: SystemTime, stamp: SystemTime) -> Instant {
    match wall_now.duration_since(stamp) {
        Ok(age) if age <= MAX_AGE => now.checked_sub(age).unwrap_or(now),
        // From the future (a clock step) or too old to believe.
        _ => now,
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_datagram_read_late_keeps_the_time_it_arrived() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver.set_nonblocking(true).expect("non-blocking");
        stamp_arrivals(&receiver).expect("timestamps");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut buf = [0u8; 64];
        let empty = recv_stamped(&receiver, &mut buf, Instant::now()).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);

        // The kernel turns receive stamping on a moment after the first socket asks (until then
        // it stamps at read time), so allow a few tries.
        let mut lag = Duration::ZERO;
        for _ in 0..10 {
            let sent = Instant::now();
            sender
                .send_to(b"hello", receiver.local_addr().expect("addr"))
                .expect("send");
            std::thread::sleep(Duration::from_millis(30));
            let read_at = Instant::now();
            let datagram = recv_stamped(&receiver, &mut buf, read_at).expect("a datagram");
            assert_eq!(&buf[..datagram.len], b"hello");
            assert_eq!(datagram.source, sender.local_addr().expect("addr"));
            assert!(datagram.arrived <= read_at);
            assert!(datagram.arrived + Duration::from_millis(5) >= sent);
            lag = read_at - datagram.arrived;
            if lag >= Duration::from_millis(20) {
                break;
            }
        }
        // Dated when it arrived, not 30 ms later when it was read.
        assert!(
            lag >= Duration::from_millis(20),
            "read {lag:?} after its stamp"
        );
    }

    #[test]
    fn a_stamp_from_a_stepped_clock_falls_back_to_the_read_time() {
        let now = Instant::now();
        let wall = SystemTime::now();
        assert_eq!(arrival(now, wall, wall + Duration::from_secs(5)), now);
        assert_eq!(arrival(now, wall, wall - Duration::from_secs(5)), now);
        assert_eq!(
            arrival(now, wall, wall - Duration::from_millis(7)),
            now - Duration::from_millis(7)
        );
    }
}

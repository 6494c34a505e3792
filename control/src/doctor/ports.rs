//! Checks that the addresses Freya listens on are free: the REST API (TCP), SIP (UDP and TCP at
//! the same address, RFC 3261 section 18) and a sample of the RTP range the edge binds calls'
//! media in. Each probe socket is closed before the check returns, so `freya dev` can bind the
//! same addresses right after.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};

use freya_edge::config::RtpConfig;

use super::Check;

/// How many RTP port pairs are test-bound, spread over the range (binding all 5,000 pairs
/// would take long and tell little more).
const RTP_SAMPLES: u16 = 8;

#[derive(Clone, Copy)]
enum Transport {
    Tcp,
    Udp,
}

pub(super) fn check(http: &str, sip: &str) -> Vec<Check> {
    let mut checks = vec![listen_check("HTTP port", http, "--http", &[Transport::Tcp])];
    checks.push(listen_check(
        "SIP port (UDP)",
        sip,
        "--sip",
        &[Transport::Udp],
    ));
    checks.push(listen_check(
        "SIP port (TCP)",
        sip,
        "--sip",
        &[Transport::Tcp],
    ));
    checks.push(rtp_range(sip, &RtpConfig::default()));
    checks
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    addr.to_socket_addrs().ok()?.next()
}

fn bind(addr: SocketAddr, transport: Transport) -> std::io::Result<()> {
    // The socket is dropped, and so closed, at once.
    match transport {
        Transport::Tcp => TcpListener::bind(addr).map(drop),
        Transport::Udp => UdpSocket::bind(addr).map(drop),
    }
}

fn listen_check(name: &str, addr: &str, flag: &str, transports: &[Transport]) -> Check {
    let Some(socket) = resolve(addr) else {
        return Check::failed(
            name,
            format!("`{addr}` is not HOST:PORT"),
            format!("pass {flag} IP:PORT"),
        );
    };
    if socket.port() == 0 {
        return Check::passed(name, format!("{addr}: a free port is picked at start"));
    }
    for transport in transports {
        if let Err(e) = bind(socket, *transport) {
            return bind_failure(name, socket, flag, &e);
        }
    }
    Check::passed(name, format!("{socket} is free"))
}

fn bind_failure(name: &str, socket: SocketAddr, flag: &str, e: &std::io::Error) -> Check {
    match e.kind() {
        ErrorKind::AddrInUse => Check::failed(
            name,
            format!("{socket} is in use"),
            format!("stop the process using it or pass {flag}"),
        ),
        ErrorKind::AddrNotAvailable => Check::failed(
            name,
            format!("{} is not an address of this machine", socket.ip()),
            format!("pass {flag} with one of this machine's addresses"),
        ),
        ErrorKind::PermissionDenied => Check::failed(
            name,
            format!("{socket}: permission denied (ports below 1024 need privileges)"),
            format!("pass {flag} with a port above 1023"),
        ),
        _ => Check::failed(
            name,
            format!("{socket}: {e}"),
            format!("pass {flag} with another address"),
        ),
    }
}

/// The RTP ports a call would take (pairs of an even port and the one above, on the SIP IP).
fn rtp_range(sip: &str, rtp: &RtpConfig) -> Check {
    let name = "RTP ports";
    let ip: IpAddr = match rtp.ip.as_deref() {
        Some(ip) => match ip.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return Check::failed(name, format!("rtp.ip `{ip}` is not an IP"), "fix rtp.ip")
            }
        },
        None => match resolve(sip) {
            Some(socket) => socket.ip(),
            None => {
                return Check::failed(
                    name,
                    format!("`{sip}` is not HOST:PORT"),
                    "pass --sip IP:PORT",
                )
            }
        },
    };
    let range = format!("{}–{} on {ip}", rtp.port_min, rtp.port_max);
    let samples = sample_pairs(rtp.port_min, rtp.port_max, RTP_SAMPLES);
    let mut busy = 0;
    for &port in &samples {
        let pair = bind_pair(ip, port);
        match pair {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AddrInUse => busy += 1,
            Err(e) => return bind_failure(name, SocketAddr::new(ip, port), "--sip", &e),
        }
    }
    let sampled = samples.len();
    if sampled == 0 {
        return Check::failed(
            name,
            format!("{range}: no even/odd port pair in the range"),
            "widen rtp.port_min..rtp.port_max",
        );
    }
    match busy {
        0 => Check::passed(name, format!("{range}: {sampled} sampled pairs free")),
        n if n == sampled => Check::failed(
            name,
            format!("{range}: all {sampled} sampled pairs are in use"),
            "stop the process using them (another Freya edge or media server?)",
        ),
        n => Check::warning(
            name,
            format!("{range}: {n} of {sampled} sampled pairs in use; calls take the free ones"),
            None,
        ),
    }
}

/// Binds the RTP port and the RTCP port above it, on UDP, and closes both.
fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<()> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port.saturating_add(1)));
    drop(rtp);
    rtcp.map(drop)
}

/// Up to `count` even ports spread evenly over `min..=max`, each with its odd neighbour in range.
fn sample_pairs(min: u16, max: u16, count: u16) -> Vec<u16> {
    let first = u32::from(min) + u32::from(min % 2);
    let last = u32::from(max);
    if last <= first {
        return Vec::new();
    }
    // Even ports p with p + 1 <= last.
    let pairs = (last - first).div_ceil(2);
    let count = u32::from(count).min(pairs);
    let mut ports: Vec<u16> = (0..count)
        .filter_map(|k| {
            // The middle of the k-th of `count` equal slices, so the first pair a live edge
            // hands out (the range's start) is not among them.
            let pair = (2 * k + 1) * pairs / (2 * count);
            u16::try_from(first + 2 * pair).ok()
        })
        .collect();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_even_in_range_and_spread() {
        let ports = sample_pairs(20_000, 29_999, 8);
        assert_eq!(ports.len(), 8);
        assert!(ports
            .iter()
            .all(|p| p % 2 == 0 && (20_001..29_999).contains(p)));
        assert!(ports.windows(2).all(|w| w[1] - w[0] > 1_000), "{ports:?}");
        assert_eq!(sample_pairs(61_001, 61_004, 8), vec![61_002]);
        assert!(sample_pairs(61_001, 61_002, 8).is_empty());
    }

    #[test]
    fn a_port_in_use_is_reported_and_port_zero_is_not_checked() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr").to_string();
        let check = listen_check("HTTP port", &addr, "--http", &[Transport::Tcp]);
        assert!(check.is_failed(), "{check}");
        assert!(check.to_string().contains("in use"), "{check}");
        assert!(!listen_check("HTTP port", "127.0.0.1:0", "--http", &[Transport::Tcp]).is_failed());
        drop(taken);
        assert!(!listen_check("HTTP port", &addr, "--http", &[Transport::Tcp]).is_failed());
    }

    #[test]
    fn an_address_that_is_not_one_is_reported() {
        let check = listen_check("SIP port (UDP)", "nowhere", "--sip", &[Transport::Udp]);
        assert!(check.is_failed());
        assert!(check.to_string().contains("pass --sip IP:PORT"), "{check}");
    }
}

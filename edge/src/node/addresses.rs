//! Where the edge listens for SIP and what it tells others: SIP bound on UDP and TCP at one
//! address, the public SIP address behind a NAT, and the media addresses put in SDP.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};

use crate::call::ports::{ConfiguredMedia, MediaAddress, MediaAddresses};
use crate::config::EdgeConfig;

/// The addresses callers, trunks and peers are told to use.
pub(super) struct Advertised {
    /// The SIP address in Contact and Via: `sip.public_addr`, or the bound port on
    /// `sip.external_ip`, or the bound address.
    pub(super) public_sip: SocketAddr,
    /// The media addresses of each IP family, bound and advertised.
    pub(super) media: MediaAddresses,
    /// The family RTP ports are allocated in (IPv4 when there is one).
    pub(super) primary: MediaAddress,
}

impl Advertised {
    /// From the `[sip]` and `[rtp]` addresses and the bound SIP address; an error names the key.
    pub(super) fn from_config(config: &EdgeConfig, sip_addr: SocketAddr) -> anyhow::Result<Self> {
        let external_ip: Option<IpAddr> = match &config.sip.external_ip {
            Some(ip) => Some(ip.parse().context("sip.external_ip")?),
            None => None,
        };
        let public_sip: SocketAddr = match (&config.sip.public_addr, external_ip) {
            (Some(public), _) => public.parse().context("sip.public_addr")?,
            (None, Some(ip)) => SocketAddr::new(ip, sip_addr.port()),
            (None, None) => sip_addr,
        };
        let ip = |key: &str, value: &Option<String>| -> anyhow::Result<Option<IpAddr>> {
            value
                .as_deref()
                .map(|v| v.parse().with_context(|| key.to_owned()))
                .transpose()
        };
        let configured = ConfiguredMedia {
            ip: ip("rtp.ip", &config.rtp.ip)?,
            public_ip: ip("rtp.public_ip", &config.rtp.public_ip)?
                .or(external_ip.filter(IpAddr::is_ipv4)),
            ip_v6: ip("rtp.ip_v6", &config.rtp.ip_v6)?,
            public_ip_v6: ip("rtp.public_ip_v6", &config.rtp.public_ip_v6)?
                .or(external_ip.filter(IpAddr::is_ipv6)),
        };
        let media = MediaAddresses::derive(sip_addr.ip(), public_sip.ip(), configured);
        let primary = media.primary().context(
            "no media address: set rtp.public_ip or rtp.public_ip_v6 (sip.addr is a wildcard)",
        )?;
        tracing::info!(v4 = ?media.v4, v6 = ?media.v6, "media addresses");
        Ok(Self {
            public_sip,
            media,
            primary,
        })
    }
}

/// Binds SIP on UDP and TCP at the same address (RFC 3261 section 18: both, always). With port
/// 0, a port free for both is searched for: the UDP port the system picks may be taken on TCP.
pub(super) async fn bind_sip(addr: &str) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let wanted: SocketAddr = addr
        .parse()
        .with_context(|| format!("sip.addr `{addr}` is not IP:PORT"))?;
    let attempts = if wanted.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(wanted)
            .await
            .with_context(|| format!("while binding sip.addr {addr} (UDP)"))?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some((bound, e)),
        }
    }
    match last_error {
        Some((bound, e)) => {
            Err(anyhow::Error::new(e).context(format!("while binding sip.addr {bound} (TCP)")))
        }
        None => Err(anyhow::anyhow!(
            "while binding sip.addr {addr}: no attempt made"
        )),
    }
}

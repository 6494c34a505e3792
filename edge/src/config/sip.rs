//! `[sip]`: the SIP listeners (UDP, TCP, TLS), the public addresses behind a NAT, the caps and
//! timeouts on connections and INVITEs, registrations and trunk pings; and the checks of its
//! TLS and NAT keys, with errors naming the key.

use std::net::SocketAddr;
use std::time::Duration;

use freya_shared::config::{check_socket_addr, ConfigProblem};
use serde::Deserialize;

use super::EdgeConfig;
use crate::serve::{ConnectionLimits, ConnectionTimeouts};

/// The SIP listener. A key left out takes its value from `Default` below, the one place
/// each default is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub addr: String,
    /// The address callers should use, when it differs from `addr` (NAT, 0.0.0.0).
    pub public_addr: Option<String>,
    /// The edge's public IP behind a NAT (a cloud VM's elastic IP): the IP of Contact and Via
    /// on every listener and of the SDP media address, unless `public_addr`,
    /// `tls_public_addr` or `rtp.public_ip` say otherwise. Ports stay the listeners' own.
    pub external_ip: Option<String>,
    /// Ring this long (180 Ringing) before answering; 0 answers at once.
    pub ring_ms: u32,
    /// Longest a SIP message may take over TCP from its first byte to its last (default 10 s):
    /// carriers write a message at once, so only a stalled or hostile peer comes near it.
    pub tcp_message_timeout_ms: u32,
    /// A SIP TCP connection with nothing read or written this long is closed (default 40 min):
    /// carriers keep connections open for hours and may say nothing during a call, and this is
    /// longer than RFC 4028's usual 30 min session interval, so a dialog whose refreshes use
    /// the connection keeps it.
    pub tcp_idle_timeout_ms: u32,
    /// Most SIP TCP connections one IP may hold open (default 64: a carrier's SBC opens a few).
    pub tcp_max_connections_per_ip: u32,
    /// Most SIP TCP connections open in all (default 1024, well under the edge's open-file
    /// limit, which RTP sockets share).
    pub tcp_max_connections: u32,
    /// New INVITEs one source address (an IPv4 address, or an IPv6 /64) may send per second,
    /// on average; beyond it they are answered 503 with `Retry-After`. Retransmissions of an
    /// INVITE already taken do not count. A carrier trunk sends every call from one address:
    /// raise this to its peak call rate.
    pub invites_per_second_per_source: f64,
    /// How many new INVITEs one source may send at once before the per-second rate applies.
    pub invite_burst_per_source: u32,
    /// Calls ringing, or answered but not yet acknowledged (ACK), the edge holds at once. They
    /// have a budget of their own so that INVITEs which never ACK cannot take the slots of
    /// confirmed calls (`capacity`); a call leaves it when its ACK arrives.
    pub max_unconfirmed: u32,
    /// The share of `max_unconfirmed` one source address may hold, so that one flooding
    /// address cannot take the whole budget. A trunk needs about its call rate × (`ring_ms` +
    /// the ACK's round trip).
    pub max_unconfirmed_per_source: u32,
    /// SIP over TLS (RFC 3261 section 26): the address to listen on (`0.0.0.0:5061`; a bare
    /// IP gets port 5061). Off when unset; needs `tls_cert_file` and `tls_key_file`.
    pub tls_listen: Option<String>,
    /// The address callers reach the TLS listener at, when it differs (NAT, 0.0.0.0): Contact
    /// and Via on TLS flows say it. Defaults to `tls_listen` with `public_addr`'s IP.
    pub tls_public_addr: Option<String>,
    /// The TLS listener's certificate chain (PEM, leaf first). Reloaded when the file changes;
    /// connections already up keep their session.
    pub tls_cert_file: Option<String>,
    /// The certificate's private key (PEM). Reloaded with the certificate.
    pub tls_key_file: Option<String>,
    /// CA certificates (PEM) that trunks reached over TLS must chain to. Unset: Mozilla's
    /// roots (webpki-roots), as for any public certificate.
    pub tls_ca_file: Option<String>,
    /// Longest a TLS handshake may take, inbound or outbound (default 5 s): a client that
    /// connects and stalls is closed after it.
    pub tls_handshake_timeout_ms: u32,
    /// Most TLS connections open in all, handshakes included (default 1024). The per-IP cap
    /// is `tcp_max_connections_per_ip`, the timeouts after the handshake the TCP ones.
    pub tls_max_connections: u32,
    /// On TCP and TLS connections the edge opened (trunks, registrars), send a CRLF
    /// keep-alive ping (RFC 5626 section 4.4.1) after this long without traffic (default
    /// 90 s, under common NAT and load-balancer idle timeouts).
    pub keepalive_interval_ms: u32,
    /// The first wait after a failed registration with a PBX or trunk (default 30 s); it
    /// doubles with each failure up to `registration_retry_max_ms` (a `Retry-After` wins).
    pub registration_retry_base_ms: u32,
    /// The longest wait between registration attempts (default 30 min).
    pub registration_retry_max_ms: u32,
    /// How often each UDP trunk the edge may dial out through is pinged with SIP `OPTIONS`
    /// (default 30 s, at least 1 s; 0 pings none, and health shows `unknown`): its health as
    /// the providers API shows it.
    pub options_interval_ms: u32,
    /// How long a ping waits for a final answer before the trunk counts as down (default 5 s,
    /// at least 100 ms, at most the interval).
    pub options_timeout_ms: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:5060".into(),
            public_addr: None,
            external_ip: None,
            ring_ms: 0,
            tcp_message_timeout_ms: 10_000,
            tcp_idle_timeout_ms: 40 * 60 * 1000,
            tcp_max_connections_per_ip: 64,
            tcp_max_connections: 1024,
            invites_per_second_per_source: 10.0,
            invite_burst_per_source: 20,
            max_unconfirmed: 64,
            max_unconfirmed_per_source: 16,
            tls_listen: None,
            tls_public_addr: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            tls_handshake_timeout_ms: 5_000,
            tls_max_connections: 1024,
            keepalive_interval_ms: 90_000,
            registration_retry_base_ms: 30_000,
            registration_retry_max_ms: 30 * 60 * 1000,
            options_interval_ms: 30_000,
            options_timeout_ms: 5_000,
        }
    }
}

impl SipConfig {
    /// The TLS listener's address, `tls_listen` with port 5061 when it names none; `None`
    /// when TLS is off or the value is not an address.
    pub fn tls_listen_addr(&self) -> Option<SocketAddr> {
        let value = self.tls_listen.as_deref()?.trim();
        value.parse::<SocketAddr>().ok().or_else(|| {
            let ip = value
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .ok()?;
            Some(SocketAddr::new(ip, 5061))
        })
    }

    /// The SIP TCP listener's caps and timeouts.
    pub fn tcp_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            timeouts: ConnectionTimeouts {
                message: Duration::from_millis(u64::from(self.tcp_message_timeout_ms)),
                idle: Duration::from_millis(u64::from(self.tcp_idle_timeout_ms)),
            },
            max_per_ip: self.tcp_max_connections_per_ip,
            max_total: self.tcp_max_connections,
        }
    }
}

impl EdgeConfig {
    /// `[sip]`'s TLS keys: an address that parses, and both files when the listener is on.
    pub(super) fn tls_problems(&self, problems: &mut Vec<ConfigProblem>) {
        let sip = &self.sip;
        if sip.tls_listen.is_some() && sip.tls_listen_addr().is_none() {
            problems.push(ConfigProblem::new(
                "sip.tls_listen",
                "must be an address such as 0.0.0.0:5061 (or an IP, for port 5061)",
            ));
        }
        if let Some(ip) = &sip.external_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                problems.push(ConfigProblem::new(
                    "sip.external_ip",
                    "must be an IP address",
                ));
            }
        }
        if let Some(public) = &sip.tls_public_addr {
            check_socket_addr("sip.tls_public_addr", public, problems);
        }
        if sip.tls_listen.is_some() {
            for (key, value) in [
                ("sip.tls_cert_file", &sip.tls_cert_file),
                ("sip.tls_key_file", &sip.tls_key_file),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    problems.push(ConfigProblem::new(key, "is required with sip.tls_listen"));
                }
            }
        }
    }
}

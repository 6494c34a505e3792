//! `[rtp]`: the media side of calls — the addresses RTP binds to and advertises, the port
//! range, the codecs and the timers that declare a call dead.

use serde::Deserialize;

/// The media side of calls. A key left out takes its value from `Default` below, the one place
/// each default is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtpConfig {
    /// The IPv4 address RTP sockets bind to for IPv4 calls; defaults to the SIP listener's IP
    /// when it is IPv4, to 0.0.0.0 when SIP listens dual-stack on `[::]`.
    pub ip: Option<String>,
    /// The IPv4 address put in SDP for callers to send media to, when it differs (NAT).
    /// Defaults to `sip.public_addr`'s (or `sip.addr`'s) IP when IPv4.
    pub public_ip: Option<String>,
    /// The IPv6 address RTP sockets bind to for calls offered `c=IN IP6`; defaults to the SIP
    /// listener's IP when it is IPv6. With neither, IPv6 offers are refused (488).
    pub ip_v6: Option<String>,
    /// The IPv6 address put in SDP (`c=IN IP6`) for IPv6 callers; defaults to
    /// `sip.public_addr`'s (or `sip.addr`'s) IP when IPv6, else `rtp.ip_v6` unless it is `::`.
    pub public_ip_v6: Option<String>,
    pub port_min: u16,
    pub port_max: u16,
    /// A call with no RTP from the caller for this long is hung up.
    pub inactivity_timeout_ms: u32,
    /// A call the caller holds (re-INVITE with `a=sendonly`, `a=inactive` or `c=0.0.0.0`) sends
    /// no RTP by design: instead of `inactivity_timeout_ms`, it is hung up only after this long
    /// with neither RTP nor RTCP from the caller (RTCP reports prove a held phone is there).
    pub hold_timeout_ms: u32,
    /// Codecs we answer and offer with, most preferred first: `pcmu`, `pcma`, `opus`.
    pub codecs: Vec<String>,
    /// Nominal time between a call's RTCP reports (RFC 3550 suggests 5 s), randomised 0.5–1.5×.
    pub rtcp_interval_ms: u32,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            ip: None,
            public_ip: None,
            ip_v6: None,
            public_ip_v6: None,
            port_min: 20_000,
            port_max: 29_999,
            inactivity_timeout_ms: 30_000,
            hold_timeout_ms: 3_600_000,
            rtcp_interval_ms: 5_000,
            // G.711 first: what every carrier speaks, and the cheapest per call; Opus when only
            // it is common, or when configured first.
            codecs: vec!["pcmu".into(), "pcma".into(), "opus".into()],
        }
    }
}

//! Trunk health, the sans-IO core: every SIP trunk the edge may dial out through is pinged with
//! an `OPTIONS` on an interval, and what came back is its state. Any final answer but 503 means
//! the trunk is reachable (`up`, with the round trip); a 503, no answer within the timeout, or
//! a resolution failure means `down`, with the reason in `last_error`. A trunk reached over TCP
//! or TLS is not pinged yet and stays `unknown`.
//!
//! Plain values driven with `now`: the shell (`control_link/trunk_health_report.rs`) hands in
//! the trunks ([`TrunkPinger::set_trunks`]), datagrams ([`TrunkPinger::handle_datagram`]) and
//! timeouts, and sends what [`TrunkPinger::poll_transmit`] gives. Answers are matched by
//! Call-ID (one fresh per ping) and source address; anything else — junk, a stray answer, a
//! request — is counted and dropped, and a trunk answering only junk times out like a dead one,
//! with `last_error` saying what it sent. At most one ping per trunk is outstanding.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Longest answer kept for the record in `last_error` (a hostile trunk may send anything).
const MAX_ERROR_EXCERPT: usize = 60;

/// What a trunk's pings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrunkState {
    /// Not pinged yet, or not pinged at all (TCP, TLS).
    Unknown,
    /// The last ping had a final answer other than 503.
    Up,
    /// The last ping had a 503, no answer, or no address to go to.
    Down,
}

impl TrunkState {
    /// The name the control plane shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// Where a trunk is pinged, as the shell resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeTarget {
    /// Pinged over UDP at this address; `host` goes in the Request-URI.
    Udp { addr: SocketAddr, host: String },
    /// Not pinged; the reason is the trunk's `last_error` (its host did not resolve, or its
    /// transport is one the pinger does not speak).
    Unpingable { state: TrunkState, reason: String },
}

/// One trunk to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrunkTarget {
    pub provider_id: String,
    pub target: ProbeTarget,
}

/// A trunk's state as the report carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrunkStatus {
    pub provider_id: String,
    pub state: TrunkState,
    /// The last answered ping's round trip.
    pub rtt: Option<Duration>,
    /// When the last ping ended.
    pub checked_at: Option<Instant>,
    pub last_error: Option<String>,
    /// The last final answer's status code.
    pub last_status: Option<u16>,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
struct Outstanding {
    call_id: String,
    sent_at: Instant,
    /// What the trunk sent that was not an answer, for `last_error` if no answer comes.
    junk: Option<String>,
}

#[derive(Debug)]
struct Trunk {
    target: ProbeTarget,
    next_ping: Instant,
    outstanding: Option<Outstanding>,
    status: TrunkStatus,
}

/// Pings trunks and keeps their states (see the module's documentation).
#[derive(Debug)]
pub(crate) struct TrunkPinger {
    interval: Duration,
    timeout: Duration,
    /// The address Via and Contact name (the pinger's socket).
    local: SocketAddr,
    /// Makes Call-IDs and branches unguessable from outside: a random token per pinger.
    token: String,
    sequence: u64,
    trunks: HashMap<String, Trunk>,
    outbox: Vec<Transmit>,
    /// A state, round trip or error changed since the last [`TrunkPinger::take_changed`].
    changed: bool,
    /// Datagrams that matched no outstanding ping.
    dropped: u64,
}

impl TrunkPinger {
    /// A pinger sending from `local`, every `interval`, giving up on an answer after
    /// `timeout` (at most the interval). `token` goes into every Call-ID and branch.
    pub(crate) fn new(
        local: SocketAddr,
        interval: Duration,
        timeout: Duration,
        token: String,
    ) -> Self {
        Self {
            interval,
            timeout: timeout.min(interval),
            local,
            token,
            sequence: 0,
            trunks: HashMap::new(),
            outbox: Vec::new(),
            changed: false,
            dropped: 0,
        }
    }

    /// The trunks to watch from now on: a new trunk is pinged at once, a trunk whose target
    /// changed is pinged again at once, one left out is forgotten.
    pub(crate) fn set_trunks(&mut self, now: Instant, targets: Vec<TrunkTarget>) {
        let before = self.trunks.len();
        let mut kept = HashMap::with_capacity(targets.len());
        for target in targets {
            let trunk = match self.trunks.remove(&target.provider_id) {
                Some(trunk) if trunk.target == target.target => trunk,
                _ => {
                    self.changed = true;
                    new_trunk(now, &target)
                }
            };
            kept.insert(target.provider_id, trunk);
        }
        if kept.len() != before || !self.trunks.is_empty() {
            self.changed = true;
        }
        self.trunks = kept;
        self.handle_timeout(now);
    }

    /// A datagram that arrived on the pinger's socket.
    pub(crate) fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(answer) = Answer::parse(bytes) else {
            self.note_junk(from, bytes);
            return;
        };
        let Some(trunk) = self.trunks.values_mut().find(|t| {
            t.outstanding
                .as_ref()
                .is_some_and(|o| o.call_id == answer.call_id)
        }) else {
            self.dropped += 1;
            return;
        };
        if !matches!(&trunk.target, ProbeTarget::Udp { addr, .. } if *addr == from) {
            // The Call-ID is right but the source is not the trunk: ignore it.
            self.dropped += 1;
            return;
        }
        if answer.status < 200 {
            return;
        }
        let Some(outstanding) = trunk.outstanding.take() else {
            return;
        };
        let rtt = now.saturating_duration_since(outstanding.sent_at);
        let status = &mut trunk.status;
        status.checked_at = Some(now);
        status.last_status = Some(answer.status);
        if answer.status == 503 {
            status.state = TrunkState::Down;
            status.rtt = Some(rtt);
            status.last_error = Some(format!("OPTIONS answered 503 {}", answer.reason));
        } else {
            status.state = TrunkState::Up;
            status.rtt = Some(rtt);
            status.last_error = None;
        }
        self.changed = true;
    }

    /// Times out pings and sends the ones due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.timeout;
        for (id, trunk) in &mut self.trunks {
            if let Some(outstanding) = &trunk.outstanding {
                if now >= outstanding.sent_at + timeout {
                    let reason = match &outstanding.junk {
                        Some(junk) => format!(
                            "no valid answer to OPTIONS within {} ms (received: {junk})",
                            timeout.as_millis()
                        ),
                        None => format!("no answer to OPTIONS within {} ms", timeout.as_millis()),
                    };
                    trunk.outstanding = None;
                    let status = &mut trunk.status;
                    status.state = TrunkState::Down;
                    status.checked_at = Some(now);
                    status.last_error = Some(reason);
                    self.changed = true;
                }
            }
            if trunk.outstanding.is_some() || now < trunk.next_ping {
                continue;
            }
            trunk.next_ping = now + self.interval;
            let ProbeTarget::Udp { addr, host } = &trunk.target else {
                continue;
            };
            self.sequence += 1;
            let call_id = format!("ping-{}-{}", self.token, self.sequence);
            let bytes = options_request(self.local, *addr, host, &call_id, self.sequence);
            trunk.outstanding = Some(Outstanding {
                call_id,
                sent_at: now,
                junk: None,
            });
            tracing::trace!(provider_id = %id, to = %addr, "OPTIONS ping");
            self.outbox.push(Transmit { to: *addr, bytes });
        }
    }

    /// The next datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.remove(0))
        }
    }

    /// When [`TrunkPinger::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.trunks
            .values()
            .map(|t| match &t.outstanding {
                Some(o) => o.sent_at + self.timeout,
                None => t.next_ping,
            })
            .min()
    }

    /// Whether anything shown changed since the last call.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Every trunk's state, by provider id.
    pub(crate) fn statuses(&self) -> Vec<TrunkStatus> {
        let mut all: Vec<TrunkStatus> = self.trunks.values().map(|t| t.status.clone()).collect();
        all.sort_by(|a, b| a.provider_id.cmp(&b.provider_id));
        all
    }

    /// Datagrams dropped because they answered no outstanding ping (or were not SIP).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    fn note_junk(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.dropped += 1;
        let excerpt: String = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ERROR_EXCERPT)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        for trunk in self.trunks.values_mut() {
            if let (ProbeTarget::Udp { addr, .. }, Some(o)) =
                (&trunk.target, &mut trunk.outstanding)
            {
                if *addr == from {
                    o.junk = Some(format!(
                        "{} bytes that are not a SIP answer: {excerpt:?}",
                        bytes.len()
                    ));
                }
            }
        }
    }
}

fn new_trunk(now: Instant, target: &TrunkTarget) -> Trunk {
    let mut status = TrunkStatus {
        provider_id: target.provider_id.clone(),
        state: TrunkState::Unknown,
        rtt: None,
        checked_at: None,
        last_error: None,
        last_status: None,
    };
    if let ProbeTarget::Unpingable { state, reason } = &target.target {
        status.state = *state;
        status.last_error = Some(reason.clone());
        if *state == TrunkState::Down {
            status.checked_at = Some(now);
        }
    }
    Trunk {
        target: target.target.clone(),
        next_ping: now,
        outstanding: None,
        status,
    }
}

/// The OPTIONS a ping sends (RFC 3261 section 11): Max-Forwards 70, a fresh branch and Call-ID.
fn options_request(
    local: SocketAddr,
    to: SocketAddr,
    host: &str,
    call_id: &str,
    sequence: u64,
) -> Vec<u8> {
    options_over("UDP", local, to, host, call_id, sequence)
}

/// An OPTIONS sent over a connection (`TCP`, or `TLS` when `tls`), for a trunk tested on
/// demand (`control_link/trunk_test.rs`); the same request as a ping but for the Via's
/// transport.
pub(crate) fn stream_options_request(
    local: SocketAddr,
    to: SocketAddr,
    host: &str,
    call_id: &str,
    tls: bool,
) -> Vec<u8> {
    let transport = if tls { "TLS" } else { "TCP" };
    options_over(transport, local, to, host, call_id, 1)
}

/// A final answer's status and reason if `bytes` is a SIP response for `call_id`.
pub(crate) fn final_answer(bytes: &[u8], call_id: &str) -> Option<(u16, String)> {
    Answer::parse(bytes)
        .filter(|a| a.call_id == call_id && a.status >= 200)
        .map(|a| (a.status, a.reason))
}

fn options_over(
    transport: &str,
    local: SocketAddr,
    to: SocketAddr,
    host: &str,
    call_id: &str,
    sequence: u64,
) -> Vec<u8> {
    let target = match to {
        SocketAddr::V6(v6) if host.parse::<std::net::Ipv6Addr>().is_ok() => {
            format!("[{}]:{}", v6.ip(), v6.port())
        }
        _ => format!("{host}:{}", to.port()),
    };
    let local = match local {
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
        SocketAddr::V4(v4) => v4.to_string(),
    };
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:freya@{local}>;tag={sequence:x}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {sequence} OPTIONS\r\n\
         Contact: <sip:freya@{local}>\r\n\
         Accept: application/sdp\r\n\
         User-Agent: freya\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The parts of an answer a ping needs.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    reason: String,
    call_id: String,
}

impl Answer {
    /// A SIP response's status, reason and Call-ID; `None` for anything else.
    fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let head = text.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let rest = status_line.strip_prefix("SIP/2.0 ")?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 {
            return None;
        }
        let status: u16 = code.parse().ok()?;
        if !(100..700).contains(&status) {
            return None;
        }
        let call_id = lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("call-id") || name == "i").then(|| value.trim().to_owned())
        })?;
        Some(Self {
            status,
            reason: reason.chars().take(MAX_ERROR_EXCERPT).collect(),
            call_id,
        })
    }
}

#[cfg(test)]
#[path = "trunk_health_tests.rs"]
mod tests;

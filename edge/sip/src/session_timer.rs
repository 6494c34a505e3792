//! RFC 4028 session timers, sans-IO: what an INVITE asks for (`Session-Expires`, `Min-SE`,
//! `Supported: timer`), what we agree to (or the 422 we answer when the interval is below our
//! minimum), and the clock of an agreed timer — when we must refresh (half the interval, when we
//! are the refresher) or when the session counts as dead (the peer refreshes and has not). Calls
//! whose signalling path died (a crashed PBX, a lost NAT binding) are ended instead of held
//! forever.

use std::time::{Duration, Instant};

use rsip::{Header, Headers};

use super::message::{header_lists, header_named, header_param};

/// The smallest session interval we accept, in seconds (RFC 4028 section 4: at least 90).
pub const MIN_SE: u32 = 90;

/// Which side refreshes the session (named as RFC 4028 does, from the INVITE's point of view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller (who sent the INVITE).
    Uac,
    /// The callee: the edge, for an inbound call.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// The session timer we agree to for a call we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Session interval, in seconds.
    pub interval: u32,
    pub refresher: Refresher,
    /// The caller supports timers: our 2xx says `Require: timer`.
    pub require: bool,
}

/// The interval asked for is below what we accept: answer 422 with `Min-SE: min_se`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Session-Expires {asked} is below our minimum {min_se}")]
pub struct IntervalTooSmall {
    pub asked: u32,
    pub min_se: u32,
}

/// What we make of an INVITE's (or UPDATE's) session timer headers: `None` when it asks for
/// none (the timer is off), an [`Agreement`], or the 422 to send.
pub fn negotiate(headers: &Headers) -> Result<Option<Agreement>, IntervalTooSmall> {
    let Some(value) = header_named(headers, "Session-Expires") else {
        return Ok(None);
    };
    let asked: u32 = match value.split(';').next().map(str::trim).map(str::parse) {
        Some(Ok(seconds)) => seconds,
        // An unreadable value: treat the request as asking for no timer rather than fail the call.
        _ => return Ok(None),
    };
    let their_min = header_named(headers, "Min-SE")
        .and_then(|v| {
            v.split(';')
                .next()
                .and_then(|s| s.trim().parse::<u32>().ok())
        })
        .unwrap_or(MIN_SE);
    let min_se = their_min.max(MIN_SE);
    if asked < min_se {
        return Err(IntervalTooSmall { asked, min_se });
    }
    let uac_supports = header_lists(headers, "Supported", "timer");
    let asked_refresher = match header_param(&value, "refresher").map(str::trim) {
        Some(r) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
        Some(r) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
        _ => None,
    };
    // RFC 4028 section 9: keep the caller's choice; without one, the caller refreshes when it
    // supports timers, and we do when it does not (a proxy asked for the timer on its behalf).
    let refresher = match (asked_refresher, uac_supports) {
        (Some(r), true) => r,
        (_, false) => Refresher::Uas,
        (None, true) => Refresher::Uac,
    };
    Ok(Some(Agreement {
        interval: asked,
        refresher,
        require: uac_supports,
    }))
}

impl Agreement {
    /// The headers of our 2xx that state the agreement.
    pub fn response_headers(&self) -> Vec<Header> {
        let mut headers = vec![
            Header::Other(
                "Session-Expires".into(),
                format!("{};refresher={}", self.interval, self.refresher.as_str()),
            ),
            Header::Supported("timer".into()),
        ];
        if self.require {
            headers.push(Header::Require("timer".into()));
        }
        headers
    }
}

/// The running session timer of one answered call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    pub agreement: Agreement,
    /// When the session was last refreshed (answered, re-INVITE, UPDATE); `None` before the
    /// answer, when nothing runs yet.
    pub last_refresh: Option<Instant>,
    /// Our refresh is on its way and not yet answered.
    pub refreshing: bool,
}

/// What is due when a session timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionDue {
    /// Nothing yet.
    Nothing,
    /// We are the refresher and half the interval has passed: refresh now.
    Refresh,
    /// The session is dead: no refresh came (or ours went unanswered).
    Expired,
}

impl SessionTimer {
    /// A timer agreed in the INVITE, started by [`Self::refreshed`] at the answer.
    pub fn new(agreement: Agreement) -> Self {
        Self {
            agreement,
            last_refresh: None,
            refreshing: false,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.agreement.interval))
    }

    /// Whether we send the refreshes.
    pub fn we_refresh(&self) -> bool {
        self.agreement.refresher == Refresher::Uas
    }

    /// The session was refreshed (or answered) at `now`.
    pub fn refreshed(&mut self, now: Instant) {
        self.last_refresh = Some(now);
        self.refreshing = false;
    }

    /// When [`Self::due`] next has something to say.
    pub fn next_deadline(&self) -> Option<Instant> {
        let last = self.last_refresh?;
        let interval = self.interval();
        Some(if self.we_refresh() && !self.refreshing {
            last + interval / 2
        } else if self.we_refresh() {
            last + interval
        } else {
            // RFC 4028 section 10: BYE before expiry by a third of the interval, at most 32 s.
            last + interval - (interval / 3).min(Duration::from_secs(32))
        })
    }

    /// What to do at `now`.
    pub fn due(&self, now: Instant) -> SessionDue {
        match self.next_deadline() {
            Some(at) if at <= now => {
                if self.we_refresh() && !self.refreshing {
                    SessionDue::Refresh
                } else {
                    SessionDue::Expired
                }
            }
            _ => SessionDue::Nothing,
        }
    }
}

#[cfg(test)]
#[path = "session_timer_tests.rs"]
mod tests;

//! A real SIP user agent client for load tests: one tokio task per call, driving the edge's own
//! sans-IO transaction machines and SDP offer/answer over a shared UDP SIP socket, with real
//! G.711 audio both ways on a per-call RTP socket.
//!
//! Use [`SipEndpoint::bind`] once, then [`place_call`] for each call with a [`CallConfig`]; it
//! returns a [`CallReport`] whatever happens: the outcome (answered, or a typed
//! [`CallFailure`]), signalling times, conversation latencies and RTP receive statistics.
//! `freya call` and the project's test UAC can use the same two functions; `freya call` also
//! follows the conversation live through [`CallConfig::conversation_events`].

mod call;
pub mod dialog;
pub mod endpoint;
pub mod far_end;
pub mod media;
pub mod talker;
pub mod turn_taking;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use freya_edge::sip::sdp::Codec;
use hdrhistogram::Histogram;
use serde::Serialize;

pub use call::place_call;
pub use endpoint::SipEndpoint;
pub use talker::TalkerConfig;
pub use turn_taking::ConversationEvent;

use crate::audio::Utterance;
use crate::onset::OnsetConfig;
use crate::stream::StreamSummary;

/// Which side ends an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HangupSide {
    /// We send BYE after the hold time.
    Caller,
    /// We wait for the far end's BYE (and send our own if it does not come in time).
    Callee,
}

/// How one call is placed.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The SIP peer (edge) to send the INVITE to.
    pub target: SocketAddr,
    /// The number (user part) dialled.
    pub number: String,
    /// Our user part in From and Contact.
    pub caller: String,
    /// Codec offered (PCMU, PCMA or Opus).
    pub codec: Codec,
    /// Address for our RTP sockets and SDP.
    pub media_ip: IpAddr,
    /// How long an answered call lasts before the caller hangs up (or the callee is expected to).
    pub hold: Duration,
    /// Who hangs up.
    pub hangup: HangupSide,
    /// With [`HangupSide::Callee`], how long after `hold` we wait for its BYE.
    pub callee_grace: Duration,
    /// Longest wait for a final response to the INVITE (capped by timer B, 32 s).
    pub setup_timeout: Duration,
    /// Longest wait for the response to our BYE.
    pub bye_timeout: Duration,
    /// What the caller says.
    pub turns: Arc<[Utterance]>,
    /// When the caller says it.
    pub talker: TalkerConfig,
    /// How replies are detected.
    pub onset: OnsetConfig,
    /// A packet this far behind the stream's best transit counts as late.
    pub late_after: Duration,
    /// Where to keep everything heard (8 kHz), for a caller who records the call; `None` in
    /// load tests, which only measure.
    pub received_audio: Option<AudioTap>,
    /// Where each turn of the conversation is reported as it happens, for a person watching the
    /// call (`freya call`); `None` in load tests. Sent without waiting: a full queue loses the
    /// event rather than delay the call's media.
    pub conversation_events: Option<tokio::sync::mpsc::Sender<ConversationEvent>>,
    /// RTCP and key presses.
    pub media: MediaOptions,
}

/// How the call's media goes beyond its codec: RTCP and the keys the caller presses.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Offer RTCP on the RTP port (RFC 5761); without it RTCP takes the odd port above.
    pub rtcp_mux: bool,
    /// Nominal time between our RTCP reports.
    pub rtcp_interval: Duration,
    /// Keys pressed (RFC 4733), each at a time after the answer.
    pub dtmf: Vec<DtmfPress>,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            rtcp_mux: true,
            rtcp_interval: Duration::from_secs(5),
            dtmf: Vec::new(),
        }
    }
}

/// One key press in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DtmfPress {
    /// After the answer.
    pub at: Duration,
    /// 0-9, *, #, A-D.
    pub digit: char,
}

/// What RTCP said during a call, in plain units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RtcpSummary {
    /// Reports we sent.
    pub reports_sent: u64,
    /// Reports the far end sent.
    pub reports_received: u64,
    /// The far end's latest fraction lost of our stream (0..1).
    pub peer_fraction_lost: Option<f64>,
    /// The far end's latest cumulative count of our packets lost.
    pub peer_cumulative_lost: Option<i32>,
    /// Latest round-trip time measured from the far end's LSR/DLSR echo.
    pub rtt_ms: Option<f64>,
}

impl From<freya_edge::rtp::rtcp_session::RtcpStats> for RtcpSummary {
    fn from(s: freya_edge::rtp::rtcp_session::RtcpStats) -> Self {
        Self {
            reports_sent: s.reports_sent,
            reports_received: s.reports_received,
            peer_fraction_lost: s.peer_fraction_lost.map(|f| f64::from(f) / 256.0),
            peer_cumulative_lost: s.peer_cumulative_lost,
            rtt_ms: s.rtt_micros.map(|us| f64::from(us) / 1000.0),
        }
    }
}

/// The far end's decoded audio, appended as it arrives.
pub type AudioTap = Arc<std::sync::Mutex<Vec<i16>>>;

/// Why a call failed, by cause; the reason keys of the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallFailure {
    /// No final response to the INVITE in time.
    #[error("no final response to the INVITE (timeout)")]
    Timeout,
    /// The INVITE was refused (3xx-6xx).
    #[error("INVITE refused with {code}")]
    Rejected {
        /// The status code.
        code: u16,
    },
    /// The 200 OK's SDP was missing or unusable.
    #[error("bad SDP answer: {reason}")]
    BadAnswer {
        /// What was wrong.
        reason: String,
    },
    /// The call was answered but no RTP came back.
    #[error("answered, but no audio was received")]
    NoAudio,
    /// The callee was to hang up and did not.
    #[error("callee did not send BYE")]
    NoByeFromCallee,
    /// A socket or message-building error on our side.
    #[error("local error: {reason}")]
    Local {
        /// The error.
        reason: String,
    },
    /// The run was stopped before the call finished.
    #[error("cancelled")]
    Cancelled,
}

impl CallFailure {
    /// A short key for counting failures by reason, e.g. `rejected_486`.
    pub fn key(&self) -> String {
        match self {
            Self::Timeout => "timeout".into(),
            Self::Rejected { code } => format!("rejected_{code}"),
            Self::BadAnswer { .. } => "bad_answer".into(),
            Self::NoAudio => "no_audio".into(),
            Self::NoByeFromCallee => "no_bye_from_callee".into(),
            Self::Local { .. } => "local_error".into(),
            Self::Cancelled => "cancelled".into(),
        }
    }
}

/// Everything measured about one call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallReport {
    /// The Call-ID.
    pub call_id: String,
    /// Why it failed, if it did.
    pub failure: Option<CallFailure>,
    /// INVITE to first provisional response (100/180/183).
    pub first_provisional_ms: Option<f64>,
    /// INVITE to 180 Ringing or 183 Session Progress.
    pub ringing_ms: Option<f64>,
    /// 3xx answers to the INVITE that were followed to their Contact (at most one).
    pub redirects: u32,
    /// INVITE to 200 OK: the setup time (a redirect's round trip included).
    pub setup_ms: Option<f64>,
    /// The edge that answered (after a redirect, the peer it named).
    pub edge: Option<SocketAddr>,
    /// Answer to the first far-end talk spurt: time to first agent audio.
    pub first_audio_ms: Option<f64>,
    /// Voice-to-voice latency of each answered caller turn.
    pub v2v_ms: Vec<f64>,
    /// Barge-in reaction of each far-end turn the caller talked over: start of caller speech to
    /// the end of the far end's last speech in that turn.
    pub barge_in_ms: Vec<f64>,
    /// Caller turns spoken.
    pub turns_spoken: u32,
    /// Answer to hang-up.
    pub talk_ms: Option<f64>,
    /// Who hung up.
    pub hung_up_by: Option<HangupSide>,
    /// BYE to its final response, when we sent it.
    pub bye_ms: Option<f64>,
    /// RTP packets we sent.
    pub rtp_sent: u64,
    /// What we received.
    pub rtp: StreamSummary,
    /// RTCP both ways.
    pub rtcp: RtcpSummary,
    /// Key presses sent as RFC 4733 events.
    pub dtmf_sent: u32,
    /// 99th percentile of our own send lateness behind the pacer clock.
    pub send_late_p99_ms: f64,
    /// Inter-arrival gaps (µs), merged into the run's histogram.
    #[serde(skip)]
    pub gaps_micros: Option<Histogram<u64>>,
    /// Send lateness (µs), merged into the run's histogram.
    #[serde(skip)]
    pub send_lateness_micros: Option<Histogram<u64>>,
}

impl CallReport {
    /// Was the call answered and carried to its end?
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

//! What one call's media is set up with ([`MediaSettings`]) and what it counts for the call
//! record ([`MediaStats`]).

use std::sync::Arc;
use std::time::Duration;

use crate::call::codec::LossRepair;
use crate::rtp::jitter::JitterStats;
use crate::rtp::rtcp_session::RtcpStats;
use crate::sip::sdp::Codec;

/// Counters for the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub junk_received: u64,
    /// Datagrams (RTP or RTCP) dropped because they came from an address other than the
    /// caller's latched one: a stranger trying to take the stream over, or a NAT that rebound.
    pub foreign_received: u64,
    pub jitter: JitterStats,
    /// RFC 3550 interarrival jitter, in milliseconds.
    pub interarrival_jitter_ms: u32,
    /// The playout delay the jitter buffer has settled on (its depth), in milliseconds.
    pub jitter_buffer_ms: u32,
    /// RTCP reports both ways and what the far end says of our stream.
    pub rtcp: RtcpStats,
    /// How lost frames were rebuilt, concealed or silenced.
    pub repair: LossRepair,
}

/// Settings of one call's media.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// Codecs we answer and offer with, most preferred first.
    pub codecs: Arc<[Codec]>,
    pub inactivity_timeout: Duration,
    /// How long a held call may go without RTP or RTCP from the peer (hold sends no RTP, so
    /// the inactivity timeout would hang up every held call).
    pub hold_timeout: Duration,
    /// Nominal time between RTCP reports (each one randomised 0.5–1.5×).
    pub rtcp_interval: Duration,
}

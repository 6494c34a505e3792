//! RTP cores of the edge, all sans-IO: parsing and building RTP packets, the jitter buffer that
//! turns a network's uneven arrivals into one frame per 20 ms tick, RFC 4733 DTMF events, RFC
//! 3550 statistics and RTCP reports, the pacing clock that times outgoing packets, and the latch
//! that decides which address a call's media is taken from (symmetric RTP without hijack). The
//! per-call RTP socket task feeds these with bytes and `Instant`s and sends what they produce.

/// Kernel arrival stamps: the load tester's caller measures with them.
pub mod arrival;
pub(crate) mod departure;
/// RFC 4733 digits: the load tester presses keys, the RTP fuzz target parses them.
pub mod dtmf;
pub(crate) mod dtmf_out;
/// The jitter buffer: the load tester and the RTP fuzz target.
pub mod jitter;
pub(crate) mod latch;
/// The 20 ms pacer: the load tester's talker.
pub mod pacer;
/// RTP packets: the load tester and the RTP fuzz target.
pub mod packet;
/// RTCP: the load tester's reports and the RTP fuzz target.
pub mod rtcp;
/// RTCP sessions: the load tester's per-call statistics.
pub mod rtcp_session;
/// SRTP and SRTCP (RFC 3711, RFC 7714): the call leg protects and checks packets with it; the
/// media bench measures it.
pub mod srtp;

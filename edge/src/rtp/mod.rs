//! RTP cores of the edge, all sans-IO: parsing and building RTP packets, the jitter buffer that
//! turns a network's uneven arrivals into one frame per 20 ms tick, RFC 4733 DTMF events, RFC
//! 3550 statistics and RTCP reports, the pacing clock that times outgoing packets, and the latch
//! that decides which address a call's media is taken from (symmetric RTP without hijack). The
//! per-call RTP socket task feeds these with bytes and `Instant`s and sends what they produce.

pub mod arrival;
pub mod departure;
pub mod dtmf;
pub mod dtmf_out;
pub mod jitter;
pub mod latch;
pub mod pacer;
pub mod packet;
pub mod rtcp;
pub mod rtcp_session;

//! The call's policy under simulated time: a [`CallCore`](super::CallCore) between a simulated
//! caller and a fake provider side ([`harness`]), each test asserting what reaches the caller,
//! what is recorded, and what is asked of the SIP side and of the providers. No sockets, no
//! sleeping: a call of several seconds runs in milliseconds.

mod answers;
mod harness;
mod heard;
mod legs;
mod parties;
mod privacy;
mod remote;
mod scripts;
mod telephony;
mod voice;

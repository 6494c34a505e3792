//! The edge's SIP: the sans-IO core from `freya-sip`, re-exported so every path
//! `crate::sip::...` names it, plus the tokio shell that drives it.
//!
//! The core (messages, transactions, dialogs, SDP, digest, outbound calls, the endpoint) is the
//! crate `freya-sip` (`edge/sip/`), which has no async runtime in its dependency tree. This module
//! adds only [`transport`]: the SIP task that owns the sockets, feeds the endpoint bytes and
//! `now`, and hands each call's signals to its task without ever awaiting that task.

pub use freya_sip::*;

pub(crate) mod transport;
/// Trunk health: OPTIONS pings to each trunk, sans-IO (driven by `control_link`).
pub(crate) mod trunk_health;

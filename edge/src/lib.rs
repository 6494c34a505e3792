//! Freya's edge node: everything that touches a live call. It answers from its cached
//! configuration, reports call events through a durable spool, and keeps a link to the control
//! plane that survives the control plane going away.
//!
//! The public surface is kept small on purpose: a module is `pub` only where another crate
//! reaches into it (`freya-control`'s `freya dev`, `freya edge`, `doctor` and tests;
//! `freya-loadtest`'s caller; the `fuzz/` targets; this crate's benches and integration tests),
//! and inside it only the sub-modules those callers name stay `pub`. Everything else is
//! `pub(crate)`.
//!
//! `unreachable_pub` holds that line: an item marked `pub` must be reachable from outside the
//! crate, so `pub` says "another crate uses this" and nothing else.
#![warn(unreachable_pub)]

/// The call's media pieces (`codec`, `media`, `core`, `task`): the edge's benches and
/// `freya-control`'s DTMF test drive one call's media without a SIP dialog.
pub mod call;
/// Cluster membership and health (SWIM): `freya-control` reads the view types, the edge's
/// bench and tests drive the core.
pub mod cluster;
/// `[edge]` configuration: `freya-control` embeds it in its own config and reuses its defaults.
pub mod config;
/// The gRPC client, spool and snapshot cache: `freya-control`'s tests act as an edge with them.
pub mod control_link;
mod cpu;
/// The egress guard for outbound HTTP: `freya-control`'s webhook delivery uses the same one.
pub mod egress;
mod http;
/// Tool-call signatures and the fake LLM server: `freya-control` checks webhook signatures and
/// its tests and `freya dev` talk to the fake.
pub mod llm;
/// Frames, codecs, resampler and keypad tones: `freya-loadtest` is a caller with the same
/// media, the fuzz targets decode with it.
pub mod media;
/// The QUIC mesh between edges (cross-edge legs) on the cluster certificates:
/// `edge/tests/mesh.rs` and the bridge bench run endpoints.
pub mod mesh;
/// The edge's `/metrics`; `certificates` (the certificate-expiry gauge) the control plane uses too.
pub mod metrics;
pub(crate) mod node;
/// The recording writer: `freya-control`'s recording tests write a file as an edge would.
pub mod recordings;
/// RTP, RTCP, jitter buffer, pacer and DTMF: the load tester's caller and the fuzz targets.
pub mod rtp;
/// The HTTP listener with connection caps: `freya-control` serves its REST API and gRPC with it.
pub mod serve;
/// The SIP core (`freya-sip`) as the edge sees it: the load tester and fuzz targets parse,
/// transact and negotiate SDP with it.
pub mod sip;
/// Speech providers, fakes, WAV and the local recogniser: `freya dev`, `doctor`, the load
/// tester's narrator and `freya-control`'s tests.
pub mod speech;
pub(crate) mod state;
/// Logs (text or JSON) and OpenTelemetry traces: `freya` installs them, `freya-control`'s
/// tests read a call's trace.
pub mod telemetry;
/// The edge's cluster identity (certificates, key), enrolment and TLS to the control plane:
/// `freya-control`'s tests enrol and connect with it, and a QUIC mesh uses the same identity.
pub mod trust;
/// The fake Twilio: `freya-control`'s Twilio tests call through it.
pub mod twilio;
/// Voice defaults: `freya-control` shows and applies the same defaults.
pub mod voice;

#[cfg(test)]
mod test_support;

/// How another process runs an edge (`freya edge`, `freya dev`, tests).
pub use config::EdgeConfig;
/// An edge started in-process: `freya dev`, `freya edge` and `freya-control`'s tests.
pub use node::Edge;

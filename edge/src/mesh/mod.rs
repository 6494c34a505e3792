//! The QUIC mesh between edges: how a leg dialled on one edge joins a call that lives on
//! another. Audio frames travel as QUIC datagrams with a small header, control messages (join,
//! leave, mute, hang up) on a stream, between edges that authenticate each other with
//! certificates from one cluster CA. `codec.rs` is the wire format and `peers.rs` the
//! connection bookkeeping (both sans-IO, driven with `now`), `remote_leg.rs` the receiving
//! side's playout (a jitter buffer that conceals losses), `tls.rs` the credentials and
//! `shell.rs` the quinn endpoint around them.
//!
//! **Invariant:** `codec.rs`, `peers.rs` and `remote_leg.rs` name no tokio, open no socket and
//! read no clock; the shell only moves bytes and time.

/// The wire format: the fuzz-style tests and the bench build frames with it.
pub mod codec;
/// Connection bookkeeping: limits the shell enforces.
pub mod peers;
/// The receiving side's playout of a remote leg's audio.
pub mod remote_leg;
/// The quinn endpoint: `edge/tests/mesh.rs` and the bridge bench run two of them.
pub mod shell;
/// Credentials: `freya dev` writes its dev CA with it.
pub mod tls;

pub use codec::{AudioFrame, AudioHeader, ControlMessage, HangupCause, LegKey, PayloadKind};
pub use remote_leg::RemoteLegAudio;
pub use shell::{Mesh, MeshError, MeshInbound, MeshSettings};
pub use tls::{MeshTls, MeshTlsError};

//! The gRPC contract between the control plane and its edges, generated from `proto/` at build
//! time. Both sides depend on this crate so the wire format has a single source.

/// Version 1 of the edge ↔ control-plane protocol.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("freya.v1");
}

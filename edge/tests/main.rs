//! The edge's integration tests, as one test binary.
//!
//! Each test target links the whole edge, so a binary per file cost minutes of linking and
//! gigabytes of disk on every clean build. nextest still runs each test in a process of its
//! own; a file here is a module, named as its file
//! (`cargo nextest run -p freya-edge --test integration mesh::`).

mod support;

mod acme;
mod architecture;
mod cluster_gossip;
mod hold;
mod invite_flood;
mod mesh;
mod mesh_trust;
mod sip_register;
mod sip_tls;

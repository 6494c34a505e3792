//! What the edge's integration tests share: an edge started from a cached configuration
//! (`cached_edge`), a SIP caller that floods or places real calls (`flood`), and a mesh peer
//! (`mesh_peer`).

pub mod cached_edge;
pub mod flood;
pub mod mesh_peer;

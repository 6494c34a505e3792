//! `[grpc]`: the listener edges connect to, and its connection caps.

use serde::Deserialize;

/// The listener edges connect to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    #[serde(default = "default_grpc_addr")]
    pub addr: String,
    /// Most connections one IP may hold open: an edge holds one or two; the rest of the slots
    /// are room for restarts and for several edges behind one NAT address.
    #[serde(default = "default_grpc_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Most connections the listener holds open in all.
    #[serde(default = "default_grpc_max_connections")]
    pub max_connections: u32,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            addr: default_grpc_addr(),
            max_connections_per_ip: default_grpc_max_connections_per_ip(),
            max_connections: default_grpc_max_connections(),
        }
    }
}

fn default_grpc_max_connections_per_ip() -> u32 {
    16
}

fn default_grpc_max_connections() -> u32 {
    1024
}

fn default_grpc_addr() -> String {
    "127.0.0.1:7070".into()
}

//! The configuration of an edge on 127.0.0.1 that answers from its cached configuration alone:
//! one number routed to one agent, stored in the cache of `data_dir` before the edge starts. No
//! control plane listens at its link's address, so the link retries in the background and call
//! events stay in the edge's spool. Callers adjust capacity, SIP and RTP settings before
//! `Edge::start`.

#![allow(dead_code)] // each user takes what it needs

use std::path::Path;

use freya_edge::config::{ControlLinkConfig, EdgeHttpConfig, RtpConfig, SipConfig};
use freya_edge::control_link::snapshot_cache::SnapshotCache;
use freya_edge::EdgeConfig;
use freya_shared::snapshot::EdgeConfigSnapshot;

/// Caches a snapshot routing `number` to an agent with `agent` as its spec (workspace `w`,
/// agent `a`) and returns an edge configuration named `id` that serves from it.
pub fn cached_edge_config(
    data_dir: &Path,
    id: &str,
    number: &str,
    agent: serde_json::Value,
) -> EdgeConfig {
    let spec = serde_json::from_value(agent).expect("agent");
    let snapshot = EdgeConfigSnapshot::single_agent(1, number, spec);
    SnapshotCache::new(data_dir)
        .expect("configuration cache")
        .store(&snapshot)
        .expect("cached snapshot");
    EdgeConfig {
        id: Some(id.into()),
        region: "local".into(),
        data_dir: data_dir.to_owned(),
        capacity: 10,
        control: ControlLinkConfig {
            // Nothing listens there: the edge serves from its cache and retries the link.
            url: "http://127.0.0.1:9".into(),
            urls: Vec::new(),
            shared_secret: Some("secret".into()),
            join_token: None,
            cert_dir: None,
            connect_timeout_ms: 200,
            max_backoff_ms: 1_000,
        },
        sip: SipConfig {
            addr: "127.0.0.1:0".into(),
            ..SipConfig::default()
        },
        rtp: RtpConfig::default(),
        srtp: Default::default(),
        // Local fakes only; nothing here calls a customer URL.
        egress: Default::default(),
        cluster: Default::default(),
        mesh: Default::default(),

        legs: Default::default(),
        drain: Default::default(),
        metrics: Default::default(),
        http: EdgeHttpConfig {
            addr: "127.0.0.1:0".into(),
            ..EdgeHttpConfig::default()
        },
    }
}

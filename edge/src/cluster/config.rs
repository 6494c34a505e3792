//! `[cluster]`: whether and where the edge gossips with its peers, and how fast it notices a
//! dead one. Off unless `bind` is set (a single edge has no one to gossip with); `freya dev`
//! turns it on with an ephemeral port. The defaults detect a killed edge in about 1.5 s (at most
//! 3 s) at the cost of a few packets per second per member: see ARCHITECTURE.md, "Cluster".

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use freya_shared::config::{check_socket_addr, ConfigProblem};

use super::membership::MembershipSettings;

/// The `[cluster]` section of the edge's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// UDP address gossip listens on (`IP:PORT`, port 0 for any); absent: no cluster.
    pub bind: Option<String>,
    /// The address peers reach this edge's gossip at, when `bind` is a wildcard or behind NAT.
    pub advertise: Option<String>,
    /// Peers' gossip addresses to join through; the control plane adds those it knows.
    pub seeds: Vec<String>,
    /// One peer is probed per period.
    pub probe_period_ms: u32,
    /// A probe unanswered this long is retried through `indirect_probes` other peers.
    pub probe_rtt_ms: u32,
    pub indirect_probes: u32,
    /// A suspected peer that does not refute within this is declared down.
    pub suspect_to_down_ms: u32,
    /// How often news is pushed to two peers besides the probes.
    pub gossip_period_ms: u32,
    /// How often this edge re-announces its health (at once when its load or draining changes).
    pub health_period_ms: u32,
    /// Largest gossip datagram sent or accepted; larger ones are dropped and counted.
    pub max_datagram_bytes: u32,
    /// A datagram stamped further than this from our clock is dropped (replays, skewed clocks).
    pub replay_window_ms: u32,
    /// Most peers remembered.
    pub max_members: u32,
    /// A starting edge takes no call (503 with `Retry-After`) until it has seen a peer alive,
    /// or the control plane named none, or this long has passed (`cluster/join.rs`).
    pub join_wait_ms: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        let d = MembershipSettings::default();
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Self {
            bind: None,
            advertise: None,
            seeds: Vec::new(),
            probe_period_ms: ms(d.probe_period),
            probe_rtt_ms: ms(d.probe_rtt),
            indirect_probes: u32::try_from(d.indirect_probes).unwrap_or(u32::MAX),
            suspect_to_down_ms: ms(d.suspect_to_down_after),
            gossip_period_ms: ms(d.gossip_period),
            health_period_ms: ms(d.health_period),
            max_datagram_bytes: u32::try_from(d.max_datagram).unwrap_or(u32::MAX),
            replay_window_ms: ms(d.replay_window),
            max_members: u32::try_from(d.max_members).unwrap_or(u32::MAX),
            join_wait_ms: 3_000,
        }
    }
}

impl ClusterConfig {
    /// The core's settings.
    pub fn settings(&self) -> MembershipSettings {
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        MembershipSettings {
            probe_period: ms(self.probe_period_ms),
            probe_rtt: ms(self.probe_rtt_ms),
            indirect_probes: self.indirect_probes as usize,
            suspect_to_down_after: ms(self.suspect_to_down_ms),
            gossip_period: ms(self.gossip_period_ms),
            health_period: ms(self.health_period_ms),
            announce_period: ms(self.probe_period_ms.max(500)),
            max_datagram: self.max_datagram_bytes as usize,
            replay_window: ms(self.replay_window_ms),
            max_members: self.max_members as usize,
        }
    }

    /// The configured seeds that parse (validation names the others).
    /// How long a starting edge waits to see a peer before it takes calls alone.
    pub fn join_wait(&self) -> Duration {
        Duration::from_millis(u64::from(self.join_wait_ms))
    }

    pub fn seed_addrs(&self) -> Vec<SocketAddr> {
        self.seeds.iter().filter_map(|s| s.parse().ok()).collect()
    }

    /// Problems with the section, each naming its key.
    pub fn problems(&self, problems: &mut Vec<ConfigProblem>) {
        if let Some(bind) = &self.bind {
            check_socket_addr("cluster.bind", bind, problems);
        }
        if let Some(advertise) = &self.advertise {
            check_socket_addr("cluster.advertise", advertise, problems);
        }
        for seed in &self.seeds {
            check_socket_addr("cluster.seeds", seed, problems);
        }
        if self.probe_period_ms < 50 || self.probe_rtt_ms == 0 {
            problems.push(ConfigProblem::new(
                "cluster.probe_period_ms",
                "must be at least 50, with cluster.probe_rtt_ms above 0",
            ));
        }
        if self.probe_rtt_ms >= self.probe_period_ms {
            problems.push(ConfigProblem::new(
                "cluster.probe_rtt_ms",
                "must be below cluster.probe_period_ms",
            ));
        }
        for (key, value, min) in [
            ("cluster.indirect_probes", self.indirect_probes, 1),
            ("cluster.suspect_to_down_ms", self.suspect_to_down_ms, 50),
            ("cluster.gossip_period_ms", self.gossip_period_ms, 50),
            ("cluster.health_period_ms", self.health_period_ms, 100),
            ("cluster.max_datagram_bytes", self.max_datagram_bytes, 512),
            ("cluster.replay_window_ms", self.replay_window_ms, 1_000),
            ("cluster.max_members", self.max_members, 2),
            ("cluster.join_wait_ms", self.join_wait_ms, 1),
        ] {
            if value < min {
                problems.push(ConfigProblem::new(key, format!("must be at least {min}")));
            }
        }
        if self.max_datagram_bytes > 65_000 {
            problems.push(ConfigProblem::new(
                "cluster.max_datagram_bytes",
                "must be at most 65000",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &ClusterConfig) -> Vec<String> {
        let mut found = Vec::new();
        config.problems(&mut found);
        found
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn the_defaults_are_valid_and_off() {
        let config = ClusterConfig::default();
        assert!(config.bind.is_none());
        assert!(problems(&config).is_empty(), "{:?}", problems(&config));
        assert_eq!(config.settings().probe_period, Duration::from_millis(400));
    }

    #[test]
    fn each_bad_value_is_named_by_its_key() {
        let config = ClusterConfig {
            bind: Some("nowhere".into()),
            seeds: vec!["10.0.0.1".into()],
            probe_rtt_ms: 500,
            max_datagram_bytes: 100,
            ..ClusterConfig::default()
        };
        let found = problems(&config).join("\n");
        for key in [
            "cluster.bind",
            "cluster.seeds",
            "cluster.probe_rtt_ms",
            "cluster.max_datagram_bytes",
        ] {
            assert!(found.contains(key), "{key} missing from:\n{found}");
        }
    }
}

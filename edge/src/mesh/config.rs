//! `[mesh]`: whether and where the edge takes QUIC connections from its peers for cross-edge
//! legs, with which certificates, and how much one peer may ask of it. Off unless `listen` is
//! set. An enrolled edge uses its cluster certificate; `ca_file`, `cert_file` and `key_file`
//! serve only a mesh without any control plane (the mesh never runs without mutual TLS: with
//! neither, the edge refuses to start). `freya dev --edges N` sets `listen`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use freya_shared::config::{check_socket_addr, ConfigProblem};

use super::host::HostSettings;
use super::peers::PeerSettings;
use super::shell::MeshSettings;

/// The `[mesh]` section of the edge's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// UDP address the QUIC endpoint binds (`IP:PORT`, port 0 for any); absent: no mesh.
    pub listen: Option<String>,
    /// The address peers dial, when `listen` is a wildcard or behind NAT (gossiped).
    pub advertise: Option<String>,
    /// Without a control plane only: the CA's certificate (PEM), the only issuer trusted for
    /// peers. An enrolled edge uses its cluster certificate and ignores the three files.
    pub ca_file: Option<PathBuf>,
    /// Without a control plane only: this edge's certificate (PEM), issued by that CA.
    pub cert_file: Option<PathBuf>,
    /// This edge's private key (PEM); keep it 0600.
    pub key_file: Option<PathBuf>,
    /// Most legs carried with one peer.
    pub max_legs_per_peer: u32,
    /// Most audio datagrams per second taken from one peer connection; more are dropped.
    pub max_frames_per_sec_per_peer: u32,
    /// A connection no leg has used for this long is closed.
    pub idle_close_ms: u32,
    /// First wait after a failed connection, doubling up to `backoff_max_ms`.
    pub backoff_min_ms: u32,
    pub backoff_max_ms: u32,
    /// Dial requests per second one peer may send for its calls' legs; more are refused.
    pub dials_per_sec_per_peer: u32,
    /// Legs one call of another edge may have dialled on this edge at once.
    pub max_remote_legs_per_call: u8,
}

impl Default for MeshConfig {
    fn default() -> Self {
        let d = PeerSettings::default();
        let h = HostSettings::default();
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Self {
            listen: None,
            advertise: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            max_legs_per_peer: d.max_legs,
            max_frames_per_sec_per_peer: d.max_frames_per_sec,
            idle_close_ms: ms(d.idle_close),
            backoff_min_ms: ms(d.backoff_min),
            backoff_max_ms: ms(d.backoff_max),
            dials_per_sec_per_peer: h.dials_per_sec_per_peer,
            max_remote_legs_per_call: h.max_legs_per_call,
        }
    }
}

impl MeshConfig {
    /// The shell's settings.
    pub fn settings(&self) -> MeshSettings {
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        MeshSettings {
            peers: PeerSettings {
                backoff_min: ms(self.backoff_min_ms),
                backoff_max: ms(self.backoff_max_ms),
                idle_close: ms(self.idle_close_ms),
                max_legs: self.max_legs_per_peer,
                max_frames_per_sec: self.max_frames_per_sec_per_peer,
            },
            ..MeshSettings::default()
        }
    }

    /// The dialling side's limits.
    pub fn host_settings(&self) -> HostSettings {
        HostSettings {
            dials_per_sec_per_peer: self.dials_per_sec_per_peer,
            max_legs_per_call: self.max_remote_legs_per_call,
            ..HostSettings::default()
        }
    }

    /// Problems with the section, each naming its key.
    pub fn problems(&self, problems: &mut Vec<ConfigProblem>) {
        if let Some(listen) = &self.listen {
            check_socket_addr("mesh.listen", listen, problems);
        }
        // The files go together: one without the others is a mistake whatever the trust.
        let files = [
            ("mesh.ca_file", &self.ca_file),
            ("mesh.cert_file", &self.cert_file),
            ("mesh.key_file", &self.key_file),
        ];
        if files.iter().any(|(_, f)| f.is_some()) {
            for (key, file) in files {
                if file.is_none() {
                    problems.push(ConfigProblem::new(
                        key,
                        "is required with the other mesh certificate files",
                    ));
                }
            }
        }
        if let Some(advertise) = &self.advertise {
            check_socket_addr("mesh.advertise", advertise, problems);
        }
        for (key, value, min) in [
            ("mesh.max_legs_per_peer", self.max_legs_per_peer, 1),
            (
                "mesh.max_frames_per_sec_per_peer",
                self.max_frames_per_sec_per_peer,
                50,
            ),
            ("mesh.idle_close_ms", self.idle_close_ms, 1_000),
            ("mesh.backoff_min_ms", self.backoff_min_ms, 10),
            (
                "mesh.dials_per_sec_per_peer",
                self.dials_per_sec_per_peer,
                1,
            ),
            (
                "mesh.max_remote_legs_per_call",
                u32::from(self.max_remote_legs_per_call),
                1,
            ),
        ] {
            if value < min {
                problems.push(ConfigProblem::new(key, format!("must be at least {min}")));
            }
        }
        if self.backoff_max_ms < self.backoff_min_ms {
            problems.push(ConfigProblem::new(
                "mesh.backoff_max_ms",
                "must be at least mesh.backoff_min_ms",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &MeshConfig) -> String {
        let mut found = Vec::new();
        config.problems(&mut found);
        found
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_defaults_are_valid_and_off() {
        assert!(MeshConfig::default().listen.is_none());
        assert_eq!(problems(&MeshConfig::default()), "");
    }

    #[test]
    fn half_the_certificate_files_and_bad_limits_are_refused_by_key() {
        let config = MeshConfig {
            listen: Some("127.0.0.1:0".into()),
            ca_file: Some("ca.pem".into()),
            max_legs_per_peer: 0,
            backoff_max_ms: 1,
            ..MeshConfig::default()
        };
        let found = problems(&config);
        for key in [
            "mesh.cert_file",
            "mesh.key_file",
            "mesh.max_legs_per_peer",
            "mesh.backoff_max_ms",
        ] {
            assert!(found.contains(key), "{key} missing from:\n{found}");
        }
    }
}

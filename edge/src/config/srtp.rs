//! The `[srtp]` section: whether calls to the edge may or must encrypt their media (SRTP with
//! SDES keys, RFC 3711 and RFC 4568), whether keys may travel in SIP that is not over TLS, and
//! the replay window. Checked once at start with errors naming the key.

use freya_shared::config::ConfigProblem;
use serde::Deserialize;

use super::EdgeConfig;
use crate::sip::sdp::SrtpPolicy;

/// SRTP for calls. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SrtpConfig {
    /// Calls to the edge: `disabled` (plain RTP only; an offer of only `RTP/SAVP` gets 488),
    /// `optional` (SRTP when offered, default) or `required` (a plain RTP offer gets 488).
    pub inbound: SrtpMode,
    /// Whether SDES keys may be exchanged in SIP that is not over TLS (default false: the keys
    /// ride in the SDP, so over UDP or TCP anyone on the path could read them). When false, an
    /// offer over UDP/TCP is treated as if SRTP were `disabled` (and refused with 488 when
    /// `inbound` is `required`). Set it only where the signalling path is private.
    pub allow_without_tls: bool,
    /// How many packets behind the newest the replay list remembers (RFC 3711 section 3.3.2;
    /// 64 to 32768, default 128). Larger tolerates more reordering, costs a bit per packet.
    pub replay_window: u32,
}

/// `disabled`, `optional` or `required`, as configuration writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP only.
    Disabled,
    /// SRTP when the peer offers it.
    #[default]
    Optional,
    /// SRTP or no call.
    Required,
}

impl SrtpMode {
    /// The SDP core's policy.
    pub fn policy(self) -> SrtpPolicy {
        match self {
            Self::Disabled => SrtpPolicy::Disabled,
            Self::Optional => SrtpPolicy::Optional,
            Self::Required => SrtpPolicy::Required,
        }
    }
}

impl Default for SrtpConfig {
    fn default() -> Self {
        Self {
            inbound: SrtpMode::Optional,
            allow_without_tls: false,
            replay_window: crate::rtp::srtp::DEFAULT_REPLAY_WINDOW,
        }
    }
}

impl SrtpConfig {
    /// The policy for a call whose INVITE came over TLS (`secure`) or not: keys never go over
    /// plain signalling unless `allow_without_tls`. `None`: SRTP is required and the INVITE
    /// came in the clear, so the call is refused (488) rather than keyed where anyone can read.
    pub fn inbound_policy(&self, secure: bool) -> Option<SrtpPolicy> {
        match (self.inbound, secure || self.allow_without_tls) {
            (mode, true) => Some(mode.policy()),
            (SrtpMode::Required, false) => None,
            (_, false) => Some(SrtpPolicy::Disabled),
        }
    }
}

impl EdgeConfig {
    /// `[srtp]`: a replay window RFC 3711 allows and we can keep.
    pub(super) fn srtp_problems(&self, problems: &mut Vec<ConfigProblem>) {
        if !(64..=32_768).contains(&self.srtp.replay_window) {
            problems.push(ConfigProblem::new(
                "srtp.replay_window",
                "must be between 64 (RFC 3711's least) and 32768",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cross_plain_sip_only_when_allowed() {
        let mut srtp = SrtpConfig::default();
        assert_eq!(srtp.inbound_policy(true), Some(SrtpPolicy::Optional));
        assert_eq!(srtp.inbound_policy(false), Some(SrtpPolicy::Disabled));
        srtp.inbound = SrtpMode::Required;
        assert_eq!(srtp.inbound_policy(true), Some(SrtpPolicy::Required));
        assert_eq!(srtp.inbound_policy(false), None, "refused, no key made");
        srtp.allow_without_tls = true;
        assert_eq!(srtp.inbound_policy(false), Some(SrtpPolicy::Required));
        srtp.inbound = SrtpMode::Disabled;
        assert_eq!(srtp.inbound_policy(true), Some(SrtpPolicy::Disabled));
    }

    #[test]
    fn the_section_reads_from_toml() {
        let srtp: SrtpConfig =
            toml::from_str("inbound = \"required\"\nreplay_window = 1024\n").unwrap();
        assert_eq!(
            (srtp.inbound, srtp.replay_window),
            (SrtpMode::Required, 1024)
        );
        assert!(!srtp.allow_without_tls);
        assert!(toml::from_str::<SrtpConfig>("inbound = \"sometimes\"").is_err());
    }
}

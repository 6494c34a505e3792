//! The configuration turned into the plain values the call, SIP and link tasks take: durations
//! from milliseconds, codec names into codecs. Validated before (`Validate for EdgeConfig`).

use std::time::Duration;

use crate::call::core::LegSettings;
use crate::call::media::MediaSettings;
use crate::config::{LegsConfig, RtpConfig, SipConfig};
use crate::control_link::PingSettings;
use crate::sip::sdp::Codec;
use crate::sip::transport::registrations::RegistrationRetry;

/// A config key in milliseconds as a duration.
fn millis(value: u32) -> Duration {
    Duration::from_millis(u64::from(value))
}

/// Each call's media timers and the codecs it answers with, from `[rtp]`.
pub(super) fn media(rtp: &RtpConfig) -> MediaSettings {
    MediaSettings {
        inactivity_timeout: millis(rtp.inactivity_timeout_ms),
        hold_timeout: millis(rtp.hold_timeout_ms),
        rtcp_interval: millis(rtp.rtcp_interval_ms),
        codecs: rtp
            .codecs
            .iter()
            .filter_map(|name| Codec::from_name(name))
            .collect(),
    }
}

/// Limits on each call's added parties, from `[legs]`.
pub(super) fn legs(legs: &LegsConfig) -> LegSettings {
    LegSettings {
        max_legs: legs.max_per_call,
        remote_silence: millis(legs.remote_silence_ms),
        dial_timeout: millis(legs.dial_timeout_ms),
    }
}

/// The backoff of failed registrations with PBXs and trunks, from `[sip]`.
pub(super) fn registration_retry(sip: &SipConfig) -> RegistrationRetry {
    RegistrationRetry {
        base: millis(sip.registration_retry_base_ms),
        max: millis(sip.registration_retry_max_ms),
    }
}

/// How trunks are pinged with `OPTIONS`, from `[sip]`; `None` when pings are off.
pub(super) fn trunk_pings(sip: &SipConfig) -> Option<PingSettings> {
    (sip.options_interval_ms != 0).then(|| PingSettings {
        interval: millis(sip.options_interval_ms),
        timeout: millis(sip.options_timeout_ms),
    })
}

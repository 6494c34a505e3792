//! A load-test scenario: where to call, how many calls, how fast, for how long, and what the
//! caller says. It comes from a TOML file, from command-line flags, or both (flags win), and is
//! validated once into a [`Scenario`] of plain values, with errors that name the setting.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::uac::HangupSide;

/// Why a scenario is unusable; each variant names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The scenario file is not valid TOML for a scenario.
    #[error("scenario file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        source: toml::de::Error,
    },
    /// A setting has a value that cannot work.
    #[error("`{key}`: {reason}")]
    Invalid {
        /// The setting, by its TOML key (the flag is the same with dashes).
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The codec the caller offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CodecChoice {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus (`opus/48000/2`), encoded from the caller's 8 kHz audio.
    Opus,
}

impl CodecChoice {
    /// The SDP codec offered.
    pub fn codec(self) -> freya_edge::sip::sdp::Codec {
        use freya_edge::sip::sdp::Codec;
        match self {
            Self::Pcmu => Codec::Pcmu,
            Self::Pcma => Codec::Pcma,
            Self::Opus => Codec::Opus,
        }
    }
}

/// Every setting, each optional: the shape of both the TOML file and the flag overrides.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSettings {
    /// SIP target, HOST:PORT (e.g. 127.0.0.1:5060 for `freya dev`); several separated by
    /// commas spread the calls over them in turn (`freya dev --edges 3`'s edges).
    #[arg(long)]
    pub target: Option<String>,
    /// Number (user part) to dial.
    #[arg(long)]
    pub number: Option<String>,
    /// Our user part in From and Contact.
    #[arg(long)]
    pub caller: Option<String>,
    /// Total calls to place.
    #[arg(long)]
    pub calls: Option<u64>,
    /// Most calls up at once.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// New calls per second once ramped up.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds over which the call rate rises linearly from 0 to `rate`.
    #[arg(long)]
    pub ramp_up: Option<f64>,
    /// Seconds each answered call lasts (hold time).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Hard bound on the whole run, in seconds (default: enough for every call, plus a margin).
    #[arg(long)]
    pub max_run: Option<f64>,
    /// Codec offered.
    #[arg(long, value_enum)]
    pub codec: Option<CodecChoice>,
    /// Who hangs up.
    #[arg(long, value_enum)]
    pub hangup: Option<HangupSide>,
    /// What the caller says, turn by turn: `say:TEXT`, `wav:PATH` or `tone:MS`, or parts with
    /// pauses inside the turn (`tone:800,gap:700,tone:800`) (repeatable).
    #[arg(long = "turn")]
    #[serde(default)]
    pub turns: Vec<String>,
    /// Keys to press, `DIGITS@SECONDS` after the answer (plain `DIGITS`: after 1 s), as RFC 4733
    /// events (repeatable).
    #[arg(long = "dtmf")]
    #[serde(default)]
    pub dtmf: Vec<String>,
    /// Milliseconds after the answer before the first turn.
    #[arg(long)]
    pub first_turn_ms: Option<u64>,
    /// Milliseconds to wait for a reply before the next turn.
    #[arg(long)]
    pub reply_timeout_ms: Option<u64>,
    /// Milliseconds of pause after a reply before the next turn.
    #[arg(long)]
    pub pause_after_reply_ms: Option<u64>,
    /// Talk over each reply this many milliseconds after it starts, with the next turn, and
    /// measure how fast the far end stops (barge-in reaction).
    #[arg(long)]
    pub barge_in_after_ms: Option<u64>,
    /// Received audio louder than this (dBFS) counts as the far end talking.
    #[arg(long)]
    pub threshold_dbfs: Option<f64>,
    /// Local address for the SIP socket and the RTP sockets.
    #[arg(long)]
    pub local_ip: Option<IpAddr>,
    /// Local SIP port (0: any).
    #[arg(long)]
    pub sip_port: Option<u16>,
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scenario {
    /// SIP target (the first of `targets`).
    pub target: SocketAddr,
    /// Every SIP target, calls spread over them in turn.
    pub targets: Vec<SocketAddr>,
    /// Number dialled.
    pub number: String,
    /// Our user part.
    pub caller: String,
    /// Total calls.
    pub calls: u64,
    /// Most concurrent calls.
    pub concurrency: usize,
    /// Calls per second after ramp-up.
    pub rate: f64,
    /// Ramp-up time.
    pub ramp_up: Duration,
    /// Hold time of an answered call.
    pub duration: Duration,
    /// Bound on the run.
    pub max_run: Duration,
    /// Codec offered.
    pub codec: CodecChoice,
    /// Who hangs up.
    pub hangup: HangupSide,
    /// Turn specifications.
    pub turns: Vec<String>,
    /// Key presses, in time order.
    pub dtmf: Vec<crate::uac::DtmfPress>,
    /// Delay before the first turn.
    pub first_turn: Duration,
    /// Wait for a reply.
    pub reply_timeout: Duration,
    /// Pause after a reply.
    pub pause_after_reply: Duration,
    /// Interrupt each reply this long after it starts.
    pub barge_in_after: Option<Duration>,
    /// Talk threshold.
    pub threshold_dbfs: f64,
    /// Local address.
    pub local_ip: IpAddr,
    /// Local SIP port.
    pub sip_port: u16,
}

impl ScenarioSettings {
    /// Reads a TOML scenario file.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ScenarioError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// These settings, with `overrides` (flags) winning where set.
    pub fn overridden_by(self, o: ScenarioSettings) -> Self {
        Self {
            target: o.target.or(self.target),
            number: o.number.or(self.number),
            caller: o.caller.or(self.caller),
            calls: o.calls.or(self.calls),
            concurrency: o.concurrency.or(self.concurrency),
            rate: o.rate.or(self.rate),
            ramp_up: o.ramp_up.or(self.ramp_up),
            duration: o.duration.or(self.duration),
            max_run: o.max_run.or(self.max_run),
            codec: o.codec.or(self.codec),
            hangup: o.hangup.or(self.hangup),
            turns: if o.turns.is_empty() {
                self.turns
            } else {
                o.turns
            },
            dtmf: if o.dtmf.is_empty() { self.dtmf } else { o.dtmf },
            first_turn_ms: o.first_turn_ms.or(self.first_turn_ms),
            reply_timeout_ms: o.reply_timeout_ms.or(self.reply_timeout_ms),
            pause_after_reply_ms: o.pause_after_reply_ms.or(self.pause_after_reply_ms),
            barge_in_after_ms: o.barge_in_after_ms.or(self.barge_in_after_ms),
            threshold_dbfs: o.threshold_dbfs.or(self.threshold_dbfs),
            local_ip: o.local_ip.or(self.local_ip),
            sip_port: o.sip_port.or(self.sip_port),
        }
    }

    /// Validates and fills in defaults.
    pub fn validate(self) -> Result<Scenario, ScenarioError> {
        let invalid = |key: &'static str, reason: String| ScenarioError::Invalid { key, reason };
        let target_text = self
            .target
            .ok_or_else(|| invalid("target", "required (HOST:PORT)".into()))?;
        let targets = target_text
            .split(',')
            .map(|one| {
                one.trim()
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        invalid("target", format!("{one:?} is not a reachable HOST:PORT"))
                    })
            })
            .collect::<Result<Vec<SocketAddr>, ScenarioError>>()?;
        let target = *targets
            .first()
            .ok_or_else(|| invalid("target", "required (HOST:PORT)".into()))?;
        let calls = self.calls.unwrap_or(10);
        let concurrency = self.concurrency.unwrap_or(10);
        let rate = self.rate.unwrap_or(10.0);
        let ramp_up = self.ramp_up.unwrap_or(0.0);
        let duration = self.duration.unwrap_or(10.0);
        if calls == 0 {
            return Err(invalid("calls", "must be at least 1".into()));
        }
        if concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1".into()));
        }
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(invalid("rate", format!("{rate} is not a positive number")));
        }
        for (key, secs) in [("ramp_up", ramp_up), ("duration", duration)] {
            if !(secs >= 0.0 && secs.is_finite()) {
                return Err(invalid(key, format!("{secs} is not a number of seconds")));
            }
        }
        let dtmf = crate::dtmf_spec::parse_all(&self.dtmf).map_err(|e| invalid("dtmf", e))?;
        let threshold_dbfs = self.threshold_dbfs.unwrap_or(-40.0);
        if !(-100.0..0.0).contains(&threshold_dbfs) {
            return Err(invalid(
                "threshold_dbfs",
                format!("{threshold_dbfs} is not within -100..0"),
            ));
        }
        let reply_timeout = Duration::from_millis(self.reply_timeout_ms.unwrap_or(5000));
        // Launching takes calls/rate (plus half the ramp), then the last call runs its course.
        let launch = calls as f64 / rate + ramp_up / 2.0;
        let default_max = launch + duration + 45.0;
        let max_run = self.max_run.unwrap_or(default_max);
        if !(max_run > 0.0 && max_run.is_finite()) {
            return Err(invalid(
                "max_run",
                format!("{max_run} is not a positive number of seconds"),
            ));
        }
        Ok(Scenario {
            target,
            targets,
            number: self.number.unwrap_or_else(|| "demo".into()),
            caller: self.caller.unwrap_or_else(|| "loadtest".into()),
            calls,
            concurrency,
            rate,
            ramp_up: Duration::from_secs_f64(ramp_up),
            duration: Duration::from_secs_f64(duration),
            max_run: Duration::from_secs_f64(max_run),
            codec: self.codec.unwrap_or(CodecChoice::Pcmu),
            hangup: self.hangup.unwrap_or(HangupSide::Caller),
            turns: if self.turns.is_empty() {
                vec!["say:Hello, I would like to check the status of my order.".into()]
            } else {
                self.turns
            },
            dtmf,
            first_turn: Duration::from_millis(self.first_turn_ms.unwrap_or(500)),
            reply_timeout,
            pause_after_reply: Duration::from_millis(self.pause_after_reply_ms.unwrap_or(400)),
            barge_in_after: self.barge_in_after_ms.map(Duration::from_millis),
            threshold_dbfs,
            local_ip: self.local_ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            sip_port: self.sip_port.unwrap_or(0),
        })
    }
}

/// When call `n` (from 0) starts, for `rate` calls/s reached by a linear ramp over `ramp_up`.
pub fn launch_offset(n: u64, rate: f64, ramp_up: Duration) -> Duration {
    let n = n as f64;
    let ramp = ramp_up.as_secs_f64();
    // Calls launched by time t during the ramp: rate·t²/(2·ramp); after it: rate·ramp/2 + rate·(t-ramp).
    let during_ramp = rate * ramp / 2.0;
    let secs = if ramp > 0.0 && n < during_ramp {
        (2.0 * ramp * n / rate).sqrt()
    } else {
        ramp + (n - during_ramp) / rate
    };
    Duration::from_secs_f64(secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: ScenarioSettings = toml::from_str(
            "target = \"127.0.0.1:5060\"\ncalls = 50\nrate = 5.0\nturns = [\"tone:300\"]",
        )
        .unwrap();
        let flags = ScenarioSettings {
            calls: Some(7),
            ..Default::default()
        };
        let s = file.overridden_by(flags).validate().unwrap();
        assert_eq!((s.calls, s.rate, s.concurrency), (7, 5.0, 10));
        assert_eq!(s.turns, ["tone:300"]);
        assert!(s.dtmf.is_empty());
        let with_keys: ScenarioSettings =
            toml::from_str("target = \"127.0.0.1:5060\"\ndtmf = [\"12@1.5\"]\ncodec = \"opus\"")
                .unwrap();
        let s = with_keys.validate().unwrap();
        assert_eq!(s.codec, CodecChoice::Opus);
        assert_eq!(s.dtmf.len(), 2);
        assert_eq!(s.dtmf[1].at, Duration::from_millis(1750));
        assert_eq!(s.target, "127.0.0.1:5060".parse().unwrap());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_setting() {
        let err = toml::from_str::<ScenarioSettings>("calss = 3").unwrap_err();
        assert!(err.to_string().contains("calss"), "{err}");
        let bad = ScenarioSettings {
            target: Some("127.0.0.1:5060".into()),
            rate: Some(0.0),
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ScenarioError::Invalid { key: "rate", .. })
        ));
        let bad_keys = ScenarioSettings {
            target: Some("127.0.0.1:5060".into()),
            dtmf: vec!["Z@1".into()],
            ..Default::default()
        };
        assert!(matches!(
            bad_keys.validate(),
            Err(ScenarioError::Invalid { key: "dtmf", .. })
        ));
        assert!(matches!(
            ScenarioSettings::default().validate(),
            Err(ScenarioError::Invalid { key: "target", .. })
        ));
    }

    #[test]
    fn ramp_up_spreads_the_first_calls_then_keeps_the_rate() {
        let ramp = Duration::from_secs(2);
        assert_eq!(launch_offset(0, 10.0, ramp), Duration::ZERO);
        // 10 calls/s over a 2 s ramp: 10 calls launched by t = 2 s.
        assert!((launch_offset(10, 10.0, ramp).as_secs_f64() - 2.0).abs() < 1e-9);
        assert!((launch_offset(20, 10.0, ramp).as_secs_f64() - 3.0).abs() < 1e-9);
        assert!((launch_offset(5, 10.0, Duration::ZERO).as_secs_f64() - 0.5).abs() < 1e-9);
    }
}

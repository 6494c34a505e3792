//! A telephony provider: the SIP trunk or the Twilio account (see [`super::twilio`]) outbound
//! calls leave through (and inbound calls may come from). Workspaces list several in priority
//! order; edges fail over from one to the next.

use serde::{Deserialize, Serialize};

use super::twilio::TwilioAccountSpec;
use super::FieldError;

/// A provider of either kind, tagged by `kind` (`sip_trunk` or `twilio`) when serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", from = "ProviderSpecWire")]
pub enum ProviderSpec {
    SipTrunk(SipTrunkSpec),
    Twilio(TwilioAccountSpec),
}

/// What a stored or cached provider spec may look like: tagged, or an untagged trunk written
/// before providers had kinds.
#[derive(Deserialize)]
#[serde(untagged)]
enum ProviderSpecWire {
    Tagged(TaggedProviderSpec),
    Legacy(SipTrunkSpec),
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TaggedProviderSpec {
    SipTrunk(SipTrunkSpec),
    Twilio(TwilioAccountSpec),
}

impl From<ProviderSpecWire> for ProviderSpec {
    fn from(wire: ProviderSpecWire) -> Self {
        match wire {
            ProviderSpecWire::Tagged(TaggedProviderSpec::SipTrunk(t))
            | ProviderSpecWire::Legacy(t) => ProviderSpec::SipTrunk(t),
            ProviderSpecWire::Tagged(TaggedProviderSpec::Twilio(a)) => ProviderSpec::Twilio(a),
        }
    }
}

impl ProviderSpec {
    /// The kind's name, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderSpec::SipTrunk(_) => "sip_trunk",
            ProviderSpec::Twilio(_) => "twilio",
        }
    }

    /// The name the customer gave it.
    pub fn name(&self) -> &str {
        match self {
            ProviderSpec::SipTrunk(t) => &t.name,
            ProviderSpec::Twilio(a) => &a.name,
        }
    }

    /// Lower is tried first.
    pub fn priority(&self) -> i32 {
        match self {
            ProviderSpec::SipTrunk(t) => t.priority,
            ProviderSpec::Twilio(a) => a.priority,
        }
    }

    /// Regions whose edges may use it; empty for all.
    pub fn regions(&self) -> &[String] {
        match self {
            ProviderSpec::SipTrunk(t) => &t.regions,
            ProviderSpec::Twilio(a) => &a.regions,
        }
    }

    /// Whether an edge of `region` may use it.
    pub fn serves(&self, region: &str) -> bool {
        let regions = self.regions();
        regions.is_empty() || regions.iter().any(|r| r == region)
    }

    /// The secret: a trunk's password or an account's auth token.
    pub fn secret(&self) -> Option<&str> {
        match self {
            ProviderSpec::SipTrunk(t) => t.password.as_deref(),
            ProviderSpec::Twilio(a) => a.auth_token.as_deref(),
        }
    }

    /// Replaces the secret.
    pub fn set_secret(&mut self, secret: Option<String>) {
        match self {
            ProviderSpec::SipTrunk(t) => t.password = secret,
            ProviderSpec::Twilio(a) => a.auth_token = secret,
        }
    }

    /// The JSON field the secret is written in.
    pub fn secret_field(&self) -> &'static str {
        match self {
            ProviderSpec::SipTrunk(_) => "password",
            ProviderSpec::Twilio(_) => "auth_token",
        }
    }

    /// Every problem, by field.
    pub fn validate(&self) -> Vec<FieldError> {
        match self {
            ProviderSpec::SipTrunk(t) => t.validate(),
            ProviderSpec::Twilio(a) => a.validate(),
        }
    }
}

/// How SIP reaches the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    #[default]
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 section 26): the edge verifies the trunk's certificate against
    /// its trust roots and the trunk's `host` name, and sends `sips:` URIs.
    Tls,
}

/// Whether calls placed through a trunk encrypt their media (SRTP with SDES keys, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkSrtp {
    /// Plain RTP (`RTP/AVP`, no keys): what most carriers speak.
    #[default]
    Off,
    /// Keys offered in a plain `RTP/AVP` offer (best-effort SRTP, as Asterisk's
    /// `media_encryption_optimistic` and FreeSWITCH's `rtp_secure_media=optional` do): SRTP
    /// when the answer carries a key, plain RTP when it carries none.
    Optional,
    /// `RTP/SAVP` only: an answer without usable SRTP ends the call.
    Required,
}

/// What a customer writes to define a SIP trunk. `password` is a secret: stored encrypted by the
/// control plane, never returned by the API, and sent to edges only inside their snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipTrunkSpec {
    pub name: String,
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub transport: SipTransport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The user part put in From for calls through this trunk (the caller id), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: i32,
    /// Regions whose edges may use it; empty for all.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Give up on an INVITE with no final answer after this long and try the next trunk.
    #[serde(default = "default_invite_timeout_ms")]
    pub invite_timeout_ms: u32,
    /// A proxy every call through this trunk passes (`sip:10.0.0.5:5060;lr`): the INVITE
    /// carries it as a preloaded Route and is sent there (RFC 3261 section 8.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_proxy: Option<String>,
    /// Register with the trunk or PBX (RFC 3261 section 10) as `username`, so that calls to
    /// the registered contact reach the edge; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<RegistrationSpec>,
    /// SRTP on calls placed through this trunk; off when absent. Keys travel in the SDP, so
    /// anything but `off` needs `transport: tls` unless `srtp_allow_without_tls` says otherwise.
    #[serde(default)]
    pub srtp: TrunkSrtp,
    /// Offer SRTP keys over unencrypted signalling (`udp`, `tcp`): anyone who sees the SIP
    /// sees the keys, so this is for private links only (the inbound `[srtp]
    /// allow_without_tls` of the edge, per trunk).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub srtp_allow_without_tls: bool,
}

/// How a trunk registers: the registrar and the binding's lifetime. The account is the
/// trunk's `username` and `password`; the transport is the trunk's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSpec {
    /// `host` or `host:port` of the registrar; the trunk's `host` and `port` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    /// The binding lifetime asked for, in seconds (60-86400, default 3600); the edge
    /// refreshes before it runs out.
    #[serde(default = "default_registration_expires")]
    pub expires_seconds: u32,
    /// The number calls to the registered contact are routed as (its agent answers them);
    /// absent: the number in the INVITE's To header, as the PBX forwards it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

impl RegistrationSpec {
    /// The registrar's host and port (`None` for the port when not given).
    pub fn registrar_host_port(&self) -> Option<(String, Option<u16>)> {
        let registrar = self.registrar.as_deref()?.trim();
        if let Some(rest) = registrar.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return Some((host.to_owned(), port));
        }
        match registrar.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                Some((host.to_owned(), Some(port.parse().ok()?)))
            }
            _ => Some((registrar.to_owned(), None)),
        }
    }
}

fn default_registration_expires() -> u32 {
    3600
}

fn default_port() -> u16 {
    5060
}

fn default_invite_timeout_ms() -> u32 {
    30_000
}

impl SipTrunkSpec {
    /// Every problem with this trunk, by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(FieldError::new("name", "must not be empty"));
        }
        let host_ok = !self.host.is_empty()
            && self.host.len() <= 253
            && self
                .host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !host_ok {
            errors.push(FieldError::new("host", "must be a host name or IP address"));
        }
        if self.port == 0 {
            errors.push(FieldError::new("port", "must be between 1 and 65535"));
        }
        if let Some(problem) = self
            .caller_id
            .as_deref()
            .and_then(super::sip_user::sip_user_problem)
        {
            errors.push(FieldError::new("caller_id", problem));
        }
        if self.password.is_some() && self.username.is_none() {
            errors.push(FieldError::new("username", "is required with a password"));
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !super::number::is_region_name(region) {
                errors.push(FieldError::new(
                    format!("regions[{i}]"),
                    "not a region name",
                ));
            }
        }
        if !(1_000..=120_000).contains(&self.invite_timeout_ms) {
            errors.push(FieldError::new(
                "invite_timeout_ms",
                "must be between 1000 and 120000",
            ));
        }
        if let Some(registration) = &self.registration {
            if self.username.is_none() {
                errors.push(FieldError::new(
                    "registration",
                    "needs the trunk's username (and password) to register as",
                ));
            }
            if !(60..=86_400).contains(&registration.expires_seconds) {
                errors.push(FieldError::new(
                    "registration.expires_seconds",
                    "must be between 60 and 86400",
                ));
            }
            let registrar_ok = match &registration.registrar {
                None => true,
                Some(_) => registration
                    .registrar_host_port()
                    .is_some_and(|(host, port)| {
                        !host.is_empty()
                            && host
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
                            && port != Some(0)
                    }),
            };
            if let Some(problem) = registration
                .number
                .as_deref()
                .and_then(super::sip_user::sip_user_problem)
            {
                errors.push(FieldError::new("registration.number", problem));
            }
            if !registrar_ok {
                errors.push(FieldError::new(
                    "registration.registrar",
                    "must be host or host:port",
                ));
            }
        }
        if self.srtp != TrunkSrtp::Off
            && self.transport != SipTransport::Tls
            && !self.srtp_allow_without_tls
        {
            errors.push(FieldError::new(
                "srtp",
                "sends SRTP keys in the SDP, so it needs transport \"tls\" (or srtp_allow_without_tls: true on a private link)",
            ));
        }
        if let Some(Err(problem)) = self
            .outbound_proxy
            .as_deref()
            .map(super::outbound_proxy::parse_proxy_uri)
        {
            errors.push(FieldError::new("outbound_proxy", problem));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_specs_are_tagged_by_kind_and_untagged_trunks_still_read() {
        let legacy: ProviderSpec =
            serde_json::from_str(r#"{"name":"Old","host":"sip.example.com"}"#).expect("legacy");
        assert_eq!(legacy.kind(), "sip_trunk");
        let twilio: ProviderSpec = serde_json::from_str(
            r#"{"kind":"twilio","name":"T","account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"x"}"#,
        )
        .expect("twilio");
        assert_eq!((twilio.kind(), twilio.secret()), ("twilio", Some("x")));
        let json = serde_json::to_value(&twilio).expect("serializes");
        assert_eq!(json["kind"], "twilio");
        let again: ProviderSpec = serde_json::from_value(json).expect("round trip");
        assert_eq!(again, twilio);
    }

    #[test]
    fn a_registering_trunk_needs_a_username_and_a_sane_registrar_and_lifetime() {
        let trunk: SipTrunkSpec = serde_json::from_str(
            r#"{"name":"PBX","host":"pbx.example","transport":"tls","username":"1001","password":"pw","registration":{"registrar":"reg.example:5071"}}"#,
        )
        .expect("parses");
        assert_eq!(trunk.transport, SipTransport::Tls);
        let registration = trunk.registration.clone().expect("registration");
        assert_eq!(registration.expires_seconds, 3600);
        assert_eq!(
            registration.registrar_host_port(),
            Some(("reg.example".into(), Some(5071)))
        );
        assert!(trunk.validate().is_empty());
        let bad: SipTrunkSpec = serde_json::from_str(
            r#"{"name":"PBX","host":"pbx.example","registration":{"registrar":"bad host:x","expires_seconds":5}}"#,
        )
        .expect("parses");
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "registration",
                "registration.expires_seconds",
                "registration.registrar"
            ]
        );
    }

    #[test]
    fn srtp_on_a_trunk_needs_tls_signalling_unless_allowed() {
        let parse = |json: &str| serde_json::from_str::<SipTrunkSpec>(json).expect("parses");
        let plain = parse(r#"{"name":"C","host":"sip.example.com"}"#);
        assert_eq!(plain.srtp, TrunkSrtp::Off);
        assert!(!serde_json::to_string(&plain)
            .expect("serializes")
            .contains("srtp_allow"));
        let tls = parse(r#"{"name":"C","host":"h","transport":"tls","srtp":"required"}"#);
        assert_eq!(tls.srtp, TrunkSrtp::Required);
        assert!(tls.validate().is_empty());
        for json in [
            r#"{"name":"C","host":"h","srtp":"required"}"#,
            r#"{"name":"C","host":"h","transport":"tcp","srtp":"optional"}"#,
        ] {
            let fields: Vec<String> = parse(json)
                .validate()
                .into_iter()
                .map(|e| e.field)
                .collect();
            assert_eq!(fields, ["srtp"], "{json}");
        }
        let allowed =
            parse(r#"{"name":"C","host":"h","srtp":"required","srtp_allow_without_tls":true}"#);
        assert!(allowed.validate().is_empty());
        assert!(
            serde_json::from_str::<SipTrunkSpec>(r#"{"name":"C","host":"h","srtp":"maybe"}"#)
                .is_err()
        );
    }

    #[test]
    fn a_minimal_trunk_gets_defaults_and_bad_fields_are_named() {
        let trunk: SipTrunkSpec =
            serde_json::from_str(r#"{"name":"Carrier","host":"sip.example.com"}"#).expect("parses");
        assert_eq!(
            (trunk.port, trunk.transport, trunk.invite_timeout_ms),
            (5060, SipTransport::Udp, 30_000)
        );
        assert!(trunk.validate().is_empty());
        let bad: SipTrunkSpec = serde_json::from_str(
            r#"{"name":"","host":"bad host","port":0,"password":"x","regions":["EU"],"invite_timeout_ms":5,"outbound_proxy":"10.0.0.5"}"#,
        )
        .expect("parses");
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "host",
                "port",
                "username",
                "regions[0]",
                "invite_timeout_ms",
                "outbound_proxy"
            ]
        );
    }
}

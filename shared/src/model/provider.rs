//! A telephony provider: the SIP trunk outbound calls leave through (and inbound calls may come
//! from). Workspaces list several in priority order; edges fail over from one to the next.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// How SIP reaches the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    #[default]
    Udp,
    Tcp,
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
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            r#"{"name":"","host":"bad host","port":0,"password":"x","regions":["EU"],"invite_timeout_ms":5}"#,
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
                "invite_timeout_ms"
            ]
        );
    }
}

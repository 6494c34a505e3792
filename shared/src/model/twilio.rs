//! A Twilio account as a telephony provider: calls reach an edge through Twilio's voice webhook
//! and a Media Streams WebSocket instead of SIP, and outbound calls are placed through Twilio's
//! REST API. The auth token is a secret (it signs Twilio's webhooks and authenticates our REST
//! calls): stored encrypted by the control plane, never returned by the API, and sent to edges
//! only inside their snapshot.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// Where Twilio's REST API lives unless an account says otherwise.
pub const TWILIO_API_BASE_URL: &str = "https://api.twilio.com";

/// What a customer writes to connect a Twilio account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioAccountSpec {
    pub name: String,
    /// `AC` followed by 32 hexadecimal digits.
    pub account_sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: i32,
    /// Regions whose edges may use it; empty for all.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The REST API's base URL: Twilio's own, or a compatible service (and fakes in tests).
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
}

fn default_api_base_url() -> String {
    TWILIO_API_BASE_URL.to_owned()
}

/// Whether `sid` looks like a Twilio account SID.
pub fn is_account_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
}

impl TwilioAccountSpec {
    /// Every problem with this account, by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(FieldError::new("name", "must not be empty"));
        }
        if !is_account_sid(&self.account_sid) {
            errors.push(FieldError::new(
                "account_sid",
                "must be `AC` followed by 32 hexadecimal digits",
            ));
        }
        match &self.auth_token {
            None => errors.push(FieldError::new("auth_token", "is required")),
            Some(token) if token.trim().is_empty() || token.len() > 256 => {
                errors.push(FieldError::new("auth_token", "must be 1-256 characters"))
            }
            Some(_) => {}
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !super::number::is_region_name(region) {
                errors.push(FieldError::new(
                    format!("regions[{i}]"),
                    "not a region name",
                ));
            }
        }
        let url = self.api_base_url.trim_end_matches('/');
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        let host_ok = url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(char::is_whitespace));
        if !scheme_ok || !host_ok || url.contains(['?', '#']) {
            errors.push(FieldError::new(
                "api_base_url",
                "must be an http:// or https:// base URL without query or fragment",
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_twilios_api_and_bad_fields_are_named() {
        let account: TwilioAccountSpec = serde_json::from_str(
            r#"{"name":"Twilio","account_sid":"AC0123456789abcdef0123456789abcdef","auth_token":"t"}"#,
        )
        .expect("parses");
        assert_eq!(account.api_base_url, "https://api.twilio.com");
        assert!(account.validate().is_empty());
        let bad: TwilioAccountSpec = serde_json::from_str(
            r#"{"name":" ","account_sid":"AC12","regions":["EU"],"api_base_url":"ftp://x"}"#,
        )
        .expect("parses");
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "account_sid",
                "auth_token",
                "regions[0]",
                "api_base_url"
            ]
        );
    }
}

//! The `[sip]` keys of TLS and NAT, checked once at start with errors naming the key: the
//! listener's address, both certificate files when it is on, and the public addresses.

use freya_shared::config::{check_socket_addr, ConfigProblem};

use super::EdgeConfig;

impl EdgeConfig {
    /// `[sip]`'s TLS keys: an address that parses, and both files when the listener is on.
    pub(super) fn tls_problems(&self, problems: &mut Vec<ConfigProblem>) {
        let sip = &self.sip;
        if sip.tls_listen.is_some() && sip.tls_listen_addr().is_none() {
            problems.push(ConfigProblem::new(
                "sip.tls_listen",
                "must be an address such as 0.0.0.0:5061 (or an IP, for port 5061)",
            ));
        }
        if let Some(ip) = &sip.external_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                problems.push(ConfigProblem::new(
                    "sip.external_ip",
                    "must be an IP address",
                ));
            }
        }
        if let Some(public) = &sip.tls_public_addr {
            check_socket_addr("sip.tls_public_addr", public, problems);
        }
        if sip.tls_listen.is_some() {
            for (key, value) in [
                ("sip.tls_cert_file", &sip.tls_cert_file),
                ("sip.tls_key_file", &sip.tls_key_file),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    problems.push(ConfigProblem::new(key, "is required with sip.tls_listen"));
                }
            }
        }
    }
}

//! Checks the HTTPS certificate files (`freya doctor --tls-cert FILE --tls-key FILE`, the
//! `[http] tls_cert`/`tls_key` of either binary) as the listener would load them: both
//! readable, the key fitting the certificate, and the certificate not expired or about to.

use std::path::Path;
use std::time::{Duration, SystemTime};

use freya_edge::serve::certificate::{certified_key, CertificateKeys};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Check;

/// A certificate expiring sooner than this is worth a warning: renewals are due well before.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

const NAMES: CertificateKeys = CertificateKeys {
    listener: "HTTPS",
    cert: "http.tls_cert",
    key: "http.tls_key",
};

/// One line for the pair, or none when neither file was given.
pub(super) fn check(cert: Option<&Path>, key: Option<&Path>) -> Option<Check> {
    let name = "HTTPS certificate";
    let (cert, key) = match (cert, key) {
        (None, None) => return None,
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Some(Check::failed(
                name,
                "only one of the certificate and its key was given",
                "pass both --tls-cert and --tls-key (http.tls_cert and http.tls_key)",
            ))
        }
    };
    let certified = match certified_key(NAMES, cert, key) {
        Ok(certified) => certified,
        Err(e) => {
            return Some(Check::failed(
                name,
                e.to_string(),
                "point http.tls_cert and http.tls_key at a PEM chain and its own private key",
            ))
        }
    };
    let Some(leaf) = certified.cert.first() else {
        return Some(Check::failed(name, "no certificate", "check http.tls_cert"));
    };
    let Ok((_, parsed)) = X509Certificate::from_der(leaf.as_ref()) else {
        return Some(Check::failed(
            name,
            format!("{} does not parse as X.509", cert.display()),
            "check http.tls_cert",
        ));
    };
    let not_after = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0));
    let subject = parsed.subject().to_string();
    let left = not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let fix = Some("renew it (or use [http.acme]); the listener reloads the files".to_owned());
    Some(if left.is_zero() {
        Check::failed(
            name,
            format!("{} ({subject}) has expired", cert.display()),
            "renew it (or use [http.acme]); the listener reloads the files",
        )
    } else if left < EXPIRY_WARNING {
        Check::warning(
            name,
            format!(
                "{} ({subject}) expires in {} days",
                cert.display(),
                left.as_secs() / 86_400
            ),
            fix,
        )
    } else {
        Check::passed(
            name,
            format!(
                "{} ({subject}), key fits, {} days left",
                cert.display(),
                left.as_secs() / 86_400
            ),
        )
    })
}

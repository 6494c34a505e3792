//! `freya_certificate_expiry_timestamp_seconds{kind}`: when each certificate this process
//! depends on stops being valid, so an alert fires before a renewal that silently failed (or a
//! SIP TLS certificate nobody replaced) takes the process off the cluster or off its trunks. It
//! is Freya's own metric, not a scraper's probe of one listener: it covers the certificates a
//! probe cannot see (an edge's client certificate, the CA). Files are read at each scrape, so a
//! renewed or reloaded certificate shows at once; a file that cannot be read drops its series
//! (the alert on its absence then fires). Unprefixed, and one name in every process.

use std::path::PathBuf;
use std::sync::Mutex;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The metric's name, as alerts and `check_metrics.py` spell it.
pub const CERTIFICATE_EXPIRY_METRIC: &str = "freya_certificate_expiry_timestamp_seconds";

/// Where each certificate comes from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// A PEM file read at each scrape (it may be renewed or reloaded).
    File(PathBuf),
    /// A PEM held in memory for the process's life.
    Pem(String),
}

/// The expiry gauge and the certificates it reports, by kind.
pub struct CertificateExpiry {
    registry: Registry,
    expiry: Family<Vec<(String, String)>, Gauge>,
    sources: Mutex<Vec<(String, CertificateSource)>>,
}

impl Default for CertificateExpiry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let expiry = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            CERTIFICATE_EXPIRY_METRIC,
            "When the certificate stops being valid (its notAfter), Unix seconds, by kind: \
             cluster (the edge's certificate from the cluster CA), ca (the cluster CA), sip_tls \
             (the SIP TLS listener's)",
            expiry.clone(),
        );
        Self {
            registry,
            expiry,
            sources: Mutex::new(Vec::new()),
        }
    }
}

impl CertificateExpiry {
    /// Reports the certificate of `kind` from `source` (replacing an earlier one of that kind).
    pub fn watch(&self, kind: &str, source: CertificateSource) {
        if let Ok(mut sources) = self.sources.lock() {
            sources.retain(|(k, _)| k != kind);
            sources.push((kind.to_owned(), source));
        }
    }

    /// The exposition of the gauge, read now, without the closing `# EOF`.
    pub fn render(&self) -> String {
        let sources = self.sources.lock().map(|s| s.clone()).unwrap_or_default();
        self.expiry.clear();
        for (kind, source) in sources {
            let pem = match source {
                CertificateSource::File(path) => std::fs::read_to_string(path).ok(),
                CertificateSource::Pem(pem) => Some(pem),
            };
            if let Some(at) = pem.as_deref().and_then(not_after) {
                self.expiry
                    .get_or_create(&vec![("kind".into(), kind)])
                    .set(at);
            }
        }
        super::exposition::without_eof(&self.registry)
    }
}

/// The first certificate's notAfter in `pem`, Unix seconds.
pub fn not_after(pem: &str) -> Option<i64> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reports_its_not_after_and_an_unreadable_file_drops_its_series() {
        let pki = crate::mesh::tls::dev_pki("t", &["e"]).expect("pki");
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, &pki[0].cert_pem).expect("write");
        let expiry = CertificateExpiry::default();
        expiry.watch("cluster", CertificateSource::File(file.clone()));
        expiry.watch("ca", CertificateSource::Pem(pki[0].ca_cert_pem.clone()));
        let text = expiry.render();
        let want = not_after(&pki[0].cert_pem).expect("not after");
        assert!(
            text.contains(&format!(
                "{CERTIFICATE_EXPIRY_METRIC}{{kind=\"cluster\"}} {want}"
            )),
            "{text}"
        );
        assert!(text.contains("kind=\"ca\""), "{text}");
        assert!(!text.contains("# EOF"));
        std::fs::remove_file(&file).expect("rm");
        let text = expiry.render();
        assert!(!text.contains("kind=\"cluster\""), "{text}");
        assert!(text.contains("kind=\"ca\""), "{text}");
    }
}

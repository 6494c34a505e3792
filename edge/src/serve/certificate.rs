//! A TLS listener's certificate from PEM files, loaded again when the files change: shared by
//! SIP over TLS (`sip/transport/tls.rs`) and the HTTPS listeners (`serve/tls.rs`) of the edge and
//! the control plane.
//!
//! The certificate is looked up per handshake ([`ReloadingCertificate`]): the files' inode, size
//! and modification time are compared with those last loaded, and a change loads them again. A
//! change that does not load (half-written, mismatched) keeps the old certificate and logs why.
//! Established connections keep their session, so a renewal drops nothing. A certificate that
//! does not exist yet (ACME's first order still running) is [`ReloadingCertificate::awaiting`]:
//! handshakes fail until the files appear.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self};

/// Why a certificate could not be loaded from its files.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file could not be read or holds no PEM item of the kind needed.
    #[error("{key} = {path:?}: {reason}")]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("{key} = {path:?} does not fit {cert_key}: {source}")]
    Key {
        key: &'static str,
        path: PathBuf,
        cert_key: &'static str,
        source: rustls::Error,
    },
}

/// The config keys a listener's files come from, named in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateKeys {
    /// What serves with it in log lines: `"SIP TLS"`, `"REST API"`, `"edge HTTP"`.
    pub listener: &'static str,
    /// The certificate chain's key, `sip.tls_cert_file`, `http.tls_cert`.
    pub cert: &'static str,
    /// The private key's key, `sip.tls_key_file`, `http.tls_key`.
    pub key: &'static str,
}

/// The files' identity when last loaded: a renewal writes a new file (inode) or changes the
/// size or the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// What was last seen of the files and the certificate they held.
#[derive(Debug)]
struct Loaded {
    stamps: (Option<Stamp>, Option<Stamp>),
    key: Option<Arc<CertifiedKey>>,
}

/// A listener's certificate, loaded again from its files when they change.
#[derive(Debug)]
pub struct ReloadingCertificate {
    names: CertificateKeys,
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Mutex<Loaded>,
}

impl ReloadingCertificate {
    /// Loads the files now; an error names the key and the file.
    pub fn load(
        names: CertificateKeys,
        cert_file: &Path,
        key_file: &Path,
    ) -> Result<Self, CertificateError> {
        let stamps = (stamp(cert_file), stamp(key_file));
        let key = certified_key(names, cert_file, key_file)?;
        Ok(Self {
            names,
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: Mutex::new(Loaded {
                stamps,
                key: Some(Arc::new(key)),
            }),
        })
    }

    /// Files that may not exist yet (an ACME certificate being ordered): loaded if they are
    /// there and valid, and otherwise on the first handshake after they appear.
    pub fn awaiting(names: CertificateKeys, cert_file: &Path, key_file: &Path) -> Self {
        let stamps = (stamp(cert_file), stamp(key_file));
        let key = certified_key(names, cert_file, key_file).ok().map(Arc::new);
        Self {
            names,
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: Mutex::new(Loaded { stamps, key }),
        }
    }

    /// The certificate to serve: the loaded one, or the files' new one if they changed; `None`
    /// while an awaited certificate has not arrived.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        // Every update below is a plain assignment: a panic elsewhere leaves it consistent.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if stamps != current.stamps {
            // Remember the stamps so that one bad write is logged once, not per handshake.
            current.stamps = stamps;
            match certified_key(self.names, &self.cert_file, &self.key_file) {
                Ok(key) => {
                    tracing::info!(listener = self.names.listener, cert = ?self.cert_file, "TLS certificate reloaded");
                    current.key = Some(Arc::new(key));
                }
                Err(e) => {
                    tracing::warn!(listener = self.names.listener, error = %e, "TLS certificate changed but does not load; serving the previous one");
                }
            }
        }
        current.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The chain and key in the files, checked to belong together.
pub fn certified_key(
    names: CertificateKeys,
    cert_file: &Path,
    key_file: &Path,
) -> Result<CertifiedKey, CertificateError> {
    let certs = read_certs(names.cert, cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| CertificateError::File {
        key: names.key,
        path: key_file.to_owned(),
        reason: e.to_string(),
    })?;
    let key_error = |source| CertificateError::Key {
        key: names.key,
        path: key_file.to_owned(),
        cert_key: names.cert,
        source,
    };
    let signer = provider::sign::any_supported_type(&key).map_err(key_error)?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(key_error)?;
    Ok(certified)
}

/// The certificates in a PEM file (a chain, or CA roots); at least one.
pub fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let file_error = |reason: String| CertificateError::File {
        key,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

//! Certificates for the HTTPS listeners from an ACME CA (RFC 8555, `instant-acme`), for a
//! public hostname without a reverse proxy: `[http.acme]`.
//!
//! [`run`] is the task: it orders a certificate when [`Renewal`] says so (at once without
//! one, at two thirds of its lifetime otherwise), proves control of the domain with the
//! HTTP-01 challenge answered by [`challenge_router`] on `challenge_addr`, and writes the key
//! and chain into `cache_dir` (0600, through a rename so a reader never sees half a file). The
//! listener's [`ReloadingCertificate`](super::certificate::ReloadingCertificate) reads those
//! files, so a new certificate reaches the next handshake and open connections are left alone.
//! A failed order is logged and retried with a doubling backoff while the old certificate
//! keeps serving. The account key is kept in `cache_dir` too, one file per directory URL, so a
//! restart neither creates a new account nor orders again.

mod renewal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::AcmeConfig;
pub use renewal::{Renewal, Validity};

/// The longest one order may take, challenges and polling included, before it counts as
/// failed and backs off.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// Why an order did not produce a certificate.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA or the protocol refused (a problem document, a transport error).
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The CA offered no HTTP-01 challenge, or an authorization ended invalid.
    #[error("ACME authorization for {domain}: {reason}")]
    Authorization { domain: String, reason: String },
    /// The order ended in another state than ready.
    #[error("ACME order ended {0:?}")]
    Order(OrderStatus),
    /// The cache directory or a file in it could not be read or written.
    #[error("http.acme.cache_dir {path:?}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The cached account does not parse.
    #[error("http.acme.cache_dir {path:?}: the account file does not parse: {source}")]
    Account {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The certificate received does not parse.
    #[error("the CA's certificate does not parse: {0}")]
    Certificate(String),
    /// The whole order took longer than [`ORDER_TIMEOUT`].
    #[error("ACME order took longer than {0:?}")]
    TimedOut(Duration),
}

/// The tokens of the HTTP-01 challenges in progress and their key authorizations: what the
/// CA fetches from `/.well-known/acme-challenge/{token}`.
#[derive(Debug, Clone, Default)]
pub struct Challenges(Arc<Mutex<HashMap<String, String>>>);

impl Challenges {
    fn set(&self, token: &str, key_authorization: &str) {
        self.lock()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Inserts and removals only: a panic elsewhere leaves the map usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The challenge listener's routes: the key authorization for a known token, 404 for the rest.
pub fn challenge_router(challenges: Challenges) -> Router {
    let router = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer_challenge))
        .with_state(challenges);
    crate::http::body_limit(router, 1024)
}

async fn answer_challenge(
    State(challenges): State<Challenges>,
    UrlPath(token): UrlPath<String>,
) -> Response {
    match challenges.get(&token) {
        Some(answer) => answer.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Where `[http.acme]` keeps its files.
#[derive(Debug, Clone)]
pub struct AcmeFiles {
    /// The certificate chain, PEM: the listener's `tls_cert`.
    pub cert: PathBuf,
    /// Its private key, PEM: the listener's `tls_key`.
    pub key: PathBuf,
    /// The account's credentials for this directory URL.
    pub account: PathBuf,
}

impl AcmeFiles {
    /// The files under `cache_dir`; the account's name carries a digest of the directory URL,
    /// so switching from a staging CA to the production one makes a new account.
    pub fn of(config: &AcmeConfig) -> Self {
        let dir = Path::new(&config.cache_dir);
        let digest = hex::encode(&Sha256::digest(config.directory_url.as_bytes())[..8]);
        Self {
            cert: dir.join(format!("{}.crt.pem", config.domain)),
            key: dir.join(format!("{}.key.pem", config.domain)),
            account: dir.join(format!("account-{digest}.json")),
        }
    }
}

/// Orders and renews the certificate until `shutdown`.
pub async fn run(config: AcmeConfig, challenges: Challenges, shutdown: CancellationToken) {
    let files = AcmeFiles::of(&config);
    let mut renewal = Renewal::new(held_validity(&files.cert));
    loop {
        let due = renewal.poll_timeout();
        // Checked again at least hourly: the wall clock may jump (suspend, NTP step).
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(Duration::from_secs(3600));
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => continue,
                () = shutdown.cancelled() => return,
            }
        }
        let ordered = tokio::select! {
            ordered = tokio::time::timeout(ORDER_TIMEOUT, order(&config, &files, &challenges)) => ordered,
            () = shutdown.cancelled() => return,
        };
        challenges.clear();
        match ordered.unwrap_or(Err(AcmeError::TimedOut(ORDER_TIMEOUT))) {
            Ok(validity) => {
                tracing::info!(domain = %config.domain, renew_at = %humantime_at(validity.renew_at()), "ACME certificate issued");
                renewal.handle_issued(validity);
            }
            Err(e) => {
                let backoff = renewal.handle_failure(SystemTime::now());
                tracing::warn!(domain = %config.domain, error = %e, ?backoff, "ACME order failed; the current certificate (if any) keeps serving");
            }
        }
    }
}

fn humantime_at(at: SystemTime) -> String {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => format!("unix {}", since.as_secs()),
        Err(_) => "before 1970".into(),
    }
}

/// The validity of the certificate in `cert_file`, if there is one that parses.
pub fn held_validity(cert_file: &Path) -> Option<Validity> {
    let pem = std::fs::read(cert_file).ok()?;
    validity_of(&pem).ok()
}

fn validity_of(pem: &[u8]) -> Result<Validity, AcmeError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| AcmeError::Certificate(e.to_string()))?;
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    Ok(Validity {
        not_before: at(cert.validity().not_before.timestamp()),
        not_after: at(cert.validity().not_after.timestamp()),
    })
}

/// One order: account, HTTP-01 for the domain, key and CSR, the chain written to the cache.
pub async fn order(
    config: &AcmeConfig,
    files: &AcmeFiles,
    challenges: &Challenges,
) -> Result<Validity, AcmeError> {
    let account = account(config, files).await?;
    let identifiers = [Identifier::Dns(config.domain.clone())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Authorization {
                    domain: config.domain.clone(),
                    reason: format!("is {other:?}"),
                })
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Authorization {
                domain: config.domain.clone(),
                reason: "the CA offers no http-01 challenge".into(),
            })?;
        challenges.set(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(status));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    let validity = validity_of(chain_pem.as_bytes())?;
    // The key first: a handshake between the two renames sees a mismatch, logs it and keeps
    // the old pair, and the chain's rename then completes the new one.
    write_private(&files.key, key_pem.as_bytes())?;
    write_private(&files.cert, chain_pem.as_bytes())?;
    Ok(validity)
}

/// The cached account for this directory, or a new one (saved before it is used).
async fn account(config: &AcmeConfig, files: &AcmeFiles) -> Result<Account, AcmeError> {
    let builder = match &config.directory_ca_file {
        Some(ca) => Account::builder_with_root(ca)?,
        None => Account::builder()?,
    };
    match std::fs::read(&files.account) {
        Ok(bytes) => {
            let credentials: AccountCredentials =
                serde_json::from_slice(&bytes).map_err(|source| AcmeError::Account {
                    path: files.account.clone(),
                    source,
                })?;
            return Ok(builder.from_credentials(credentials).await?);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(AcmeError::Cache {
                path: files.account.clone(),
                source,
            })
        }
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder
        .create(&new, config.directory_url.clone(), None)
        .await?;
    let json = serde_json::to_vec(&credentials).map_err(|source| AcmeError::Account {
        path: files.account.clone(),
        source,
    })?;
    write_private(&files.account, &json)?;
    Ok(account)
}

/// Writes `bytes` to `path` owner-only, through a sibling temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let cache = |source| AcmeError::Cache {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        freya_shared::private_files::create_dir(dir).map_err(cache)?;
    }
    let temporary = path.with_extension("tmp");
    freya_shared::private_files::write(&temporary, bytes).map_err(cache)?;
    std::fs::rename(&temporary, path).map_err(cache)
}

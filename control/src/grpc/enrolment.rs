//! `EdgeEnrolment.Enrol` and `EdgeControl.RenewCertificate`: a new edge spends a one-time join
//! token on a certificate for its own key, and an enrolled edge renews over its mTLS link. Every
//! outcome (refusals included) is written to the trust audit, with the source address. Attempts
//! are limited per source address (`edges.enrolments_per_minute_per_ip`), the CSR's size is
//! capped, and a token is spent only once the CSR has produced a certificate, by one conditional
//! update (two racing enrolments with one token: one wins, the other is `used_token`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tonic::{Request, Response, Status};

use crate::grpc_listener::EdgePeer;
use crate::store::{Store, TokenRefusal, TrustEvent};
use crate::trust::anchors::{CaSet, ClusterTrust};
use crate::trust::{IssuedCertificate as Issued, TrustError};
use freya_proto::v1::edge_enrolment_server::EdgeEnrolment;
use freya_proto::v1::{EnrolRequest, IssuedCertificate};
use freya_shared::ids::now_ms;
use freya_shared::join_token::{JoinToken, TOKEN_LEN};

/// What enrolment and renewal need: the trusted CAs, how long certificates live, the attempt
/// limiter.
#[derive(Debug)]
pub(crate) struct EnrolmentSettings {
    pub ca: ClusterTrust,
    pub certificate_lifetime: Duration,
    pub limiter: AttemptLimiter,
}

/// At most `per_minute` attempts per source address in each minute-long window.
#[derive(Debug)]
pub(crate) struct AttemptLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses remembered at most; past it, windows that ended are forgotten first.
const MAX_TRACKED_SOURCES: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

impl AttemptLimiter {
    /// A limiter allowing `per_minute` attempts a minute per address.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::default(),
        }
    }

    /// Counts an attempt from `ip` at `now`; false when over the limit.
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(mut windows) = self.windows.lock() else {
            return false;
        };
        if windows.len() >= MAX_TRACKED_SOURCES {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= self.per_minute
    }
}

/// The enrolment service, served without a client certificate.
pub(crate) struct EnrolmentService {
    pub store: Store,
    pub settings: Arc<EnrolmentSettings>,
}

/// Longest edge id accepted; it becomes a certificate's common name (at most 64 characters).
const MAX_EDGE_ID_LEN: usize = 64;

fn valid_edge_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_EDGE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[tonic::async_trait]
impl EdgeEnrolment for EnrolmentService {
    async fn enrol(
        &self,
        request: Request<EnrolRequest>,
    ) -> Result<Response<IssuedCertificate>, Status> {
        let remote = request
            .extensions()
            .get::<EdgePeer>()
            .and_then(|p| p.remote);
        if let Some(ip) = remote.map(|r| r.ip()) {
            if !self.settings.limiter.admit(ip, Instant::now()) {
                tracing::warn!(%ip, "too many enrolment attempts from one address");
                return Err(Status::resource_exhausted(
                    "too many enrolment attempts from this address; wait a minute",
                ));
            }
        }
        let r = request.into_inner();
        let audit = Audit {
            store: &self.store,
            action: "edge.enrol",
            edge_id: &r.edge_id,
            remote,
        };
        if !valid_edge_id(&r.edge_id) {
            audit.write("bad_edge_id", None, json!({})).await;
            return Err(Status::invalid_argument(
                "`edge_id` must be 1-64 letters, digits, `-`, `_` or `.`",
            ));
        }
        let token = match (r.join_token.len() <= TOKEN_LEN * 2)
            .then(|| JoinToken::parse(&r.join_token).ok())
            .flatten()
        {
            Some(token) => token,
            None => {
                audit.write("malformed_token", None, json!({})).await;
                return Err(Status::permission_denied(
                    "join token refused: not a join token",
                ));
            }
        };
        let cas = self.settings.ca.current();
        if !cas.trusts_fingerprint(&token.ca_fingerprint) {
            let current = cas.serving().fingerprint();
            audit
                .write(
                    "token_for_another_ca",
                    Some(&token.id),
                    json!({"pinned": token.ca_fingerprint, "current": current}),
                )
                .await;
            return Err(Status::permission_denied(format!(
                "join token refused: it pins CA {}, which this cluster does not trust (another \
                 cluster's, or a CA retired by a rotation); the cluster's CA is now {current}: \
                 make a new join token",
                token.ca_fingerprint
            )));
        }
        let issued = match issue(&cas, &self.settings, &r.edge_id, &r.csr_der) {
            Ok(issued) => issued,
            Err(status) => {
                audit
                    .write(
                        "bad_csr",
                        Some(&token.id),
                        json!({"error": status.message()}),
                    )
                    .await;
                return Err(status);
            }
        };
        let spent = self
            .store
            .spend_join_token(&token.id, &token.secret_hash(), &r.edge_id, now_ms())
            .await
            .map_err(super::status_of)?;
        if let Err(refusal) = spent {
            audit
                .write(refusal.name(), Some(&token.id), json!({}))
                .await;
            tracing::warn!(edge = %r.edge_id, token = %token.id, reason = refusal.name(), "refused an enrolment");
            return Err(Status::permission_denied(match refusal {
                TokenRefusal::Unknown | TokenRefusal::WrongSecret => {
                    "join token refused: unknown or wrong token"
                }
                TokenRefusal::Expired => "join token refused: it has expired",
                TokenRefusal::Used => "join token refused: it was already used",
                TokenRefusal::EdgeIdTaken => {
                    "join token refused: this edge id holds a live certificate; \
                     revoke it first (DELETE /v1/edges/{id}) or choose another id"
                }
            }));
        }
        self.store
            .record_edge_certificate(&issued.serial, &r.edge_id, issued.not_after_unix * 1000)
            .await
            .map_err(super::status_of)?;
        audit
            .write("ok", Some(&token.id), json!({"serial": issued.serial}))
            .await;
        tracing::info!(edge = %r.edge_id, serial = %issued.serial, "an edge enrolled");
        Ok(Response::new(answer(&cas, issued)))
    }
}

/// A renewal for `edge_id`, whose current certificate authenticated the connection.
pub(crate) async fn renew(
    store: &Store,
    settings: &EnrolmentSettings,
    edge_id: &str,
    remote: Option<SocketAddr>,
    csr_der: &[u8],
) -> Result<IssuedCertificate, Status> {
    let audit = Audit {
        store,
        action: "edge.renew",
        edge_id,
        remote,
    };
    let cas = settings.ca.current();
    let issued = match issue(&cas, settings, edge_id, csr_der) {
        Ok(issued) => issued,
        Err(status) => {
            audit
                .write("bad_csr", None, json!({"error": status.message()}))
                .await;
            return Err(status);
        }
    };
    store
        .record_edge_certificate(&issued.serial, edge_id, issued.not_after_unix * 1000)
        .await
        .map_err(super::status_of)?;
    audit
        .write(
            "ok",
            None,
            json!({"serial": issued.serial, "ca": cas.issuing().fingerprint()}),
        )
        .await;
    tracing::info!(edge = %edge_id, serial = %issued.serial, "renewed an edge's certificate");
    Ok(answer(&cas, issued))
}

/// A certificate for `edge_id` from the issuing CA (the newest trusted).
fn issue(
    cas: &CaSet,
    settings: &EnrolmentSettings,
    edge_id: &str,
    csr_der: &[u8],
) -> Result<Issued, Status> {
    cas.issuing()
        .issue_for_edge(edge_id, csr_der, settings.certificate_lifetime)
        .map_err(|e| match e {
            TrustError::CsrTooLarge | TrustError::BadCsr(_) => {
                Status::invalid_argument(e.to_string())
            }
            other => {
                tracing::error!(error = %other, "could not issue a certificate");
                Status::internal("could not issue a certificate")
            }
        })
}

/// The answer: the certificate and the trust bundle (every trusted CA, the serving one first,
/// so an edge checking the first against its join token's pin finds it there).
fn answer(cas: &CaSet, issued: Issued) -> IssuedCertificate {
    IssuedCertificate {
        certificate_pem: issued.certificate_pem,
        ca_certificate_pem: cas.bundle_pem(),
        not_after_unix: issued.not_after_unix,
        cluster_id: cas.serving().cluster_id().to_owned(),
        cluster_secret: cas.serving().cluster_secret(),
    }
}

/// Writes one outcome of an attempt to the trust audit; a failed write is logged, not fatal.
struct Audit<'a> {
    store: &'a Store,
    action: &'a str,
    edge_id: &'a str,
    remote: Option<SocketAddr>,
}

impl Audit<'_> {
    async fn write(&self, outcome: &str, token_id: Option<&str>, detail: serde_json::Value) {
        let edge_id = (!self.edge_id.is_empty() && self.edge_id.len() <= MAX_EDGE_ID_LEN)
            .then_some(self.edge_id);
        let event = TrustEvent {
            action: self.action,
            outcome,
            edge_id,
            token_id,
            source_ip: self.remote.map(|r| r.ip().to_string()),
            detail,
        };
        if let Err(e) = self.store.record_trust_event(event).await {
            tracing::error!(error = %e, "could not write the trust audit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_admits_its_rate_per_address_and_window() {
        let limiter = AttemptLimiter::new(2);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(limiter.admit(a, t0));
        assert!(limiter.admit(a, t0));
        assert!(!limiter.admit(a, t0 + Duration::from_secs(1)));
        assert!(limiter.admit(b, t0 + Duration::from_secs(1)));
        assert!(limiter.admit(a, t0 + WINDOW));
    }

    #[test]
    fn edge_ids_fit_a_common_name() {
        assert!(valid_edge_id("edge-1.eu_west"));
        assert!(!valid_edge_id(""));
        assert!(!valid_edge_id("edge 1"));
        assert!(!valid_edge_id(&"e".repeat(65)));
    }
}

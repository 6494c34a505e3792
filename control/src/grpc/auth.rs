//! Edge authentication, before any handler runs. In a cluster, the connection's verified client
//! certificate names the edge (`EdgePeer`); a request without one, with a revoked serial, or
//! naming another edge in its `x-freya-edge-id` is refused, and the certificate's edge id is what
//! handlers trust. In `freya dev`'s shared-secret mode every RPC carries the shared secret as
//! `authorization: Bearer <secret>` instead.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::grpc_listener::EdgePeer;
use crate::trust::revoked::RevokedSerials;

/// Metadata key naming the calling edge on streams whose messages do not carry it.
pub(crate) const EDGE_ID_HEADER: &str = "x-freya-edge-id";

/// The secret edges must present, as a tonic interceptor.
#[derive(Clone)]
pub(crate) struct EdgeSecret(Arc<str>);

impl EdgeSecret {
    /// The interceptor for `secret`.
    pub(crate) fn new(secret: &str) -> Self {
        Self(Arc::from(secret))
    }
}

impl tonic::service::Interceptor for EdgeSecret {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(secret) if constant_time_eq(secret.as_bytes(), self.0.as_bytes()) => Ok(request),
            Some(_) => {
                tracing::warn!("refused an edge with a wrong shared secret");
                Err(Status::unauthenticated("wrong edge shared secret"))
            }
            None => Err(Status::unauthenticated(
                "missing `authorization: Bearer <edge shared secret>`",
            )),
        }
    }
}

/// The edge a verified certificate named, put in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub(crate) struct AuthenticatedEdge(pub String);

/// How `EdgeControl` requests are authenticated: one interceptor type for either mode.
#[derive(Clone)]
pub(crate) enum EdgeAuth {
    /// `freya dev`'s shared-secret mode.
    Secret(EdgeSecret),
    /// Mutual TLS: the client certificate, checked again against the revocation list.
    Certificate(RevokedSerials),
}

impl tonic::service::Interceptor for EdgeAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match self {
            Self::Secret(secret) => secret.call(request),
            Self::Certificate(revoked) => by_certificate(revoked, request),
        }
    }
}

fn by_certificate(
    revoked: &RevokedSerials,
    mut request: Request<()>,
) -> Result<Request<()>, Status> {
    let Some(certificate) = request
        .extensions()
        .get::<EdgePeer>()
        .and_then(|peer| peer.certificate.clone())
    else {
        return Err(Status::unauthenticated(
            "a client certificate from this cluster's CA is required: enrol with a join token",
        ));
    };
    if revoked.contains(&certificate.serial) {
        return Err(Status::permission_denied(
            "this edge's certificate has been revoked",
        ));
    }
    let named = request
        .metadata()
        .get(EDGE_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    if named.is_some_and(|named| named != certificate.edge_id) {
        tracing::warn!(edge = %certificate.edge_id, "refused an edge speaking for another edge id");
        return Err(Status::permission_denied(
            "`x-freya-edge-id` differs from the edge the client certificate names",
        ));
    }
    request
        .extensions_mut()
        .insert(AuthenticatedEdge(certificate.edge_id));
    Ok(request)
}

/// Refuses a request whose body names an edge other than the one its certificate names (in the
/// shared-secret mode, which names no edge, anything goes).
pub(crate) fn check_named_edge<T>(request: &Request<T>, edge_id: &str) -> Result<(), Status> {
    match request.extensions().get::<AuthenticatedEdge>() {
        Some(AuthenticatedEdge(own)) if own != edge_id => Err(Status::permission_denied(
            "`edge_id` differs from the edge the client certificate names",
        )),
        _ => Ok(()),
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The calling edge's id: the one its certificate names, else (shared-secret mode) the request
/// metadata's.
pub(crate) fn edge_id_of<T>(request: &Request<T>) -> Result<String, Status> {
    if let Some(AuthenticatedEdge(own)) = request.extensions().get::<AuthenticatedEdge>() {
        return Ok(own.clone());
    }
    request
        .metadata()
        .get(EDGE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Status::invalid_argument(format!("missing `{EDGE_ID_HEADER}` metadata")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn with_auth(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(v) = value {
            request
                .metadata_mut()
                .insert("authorization", v.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn only_the_right_secret_passes() {
        let mut secret = EdgeSecret::new("s3cret-s3cret-s3cret");
        assert!(secret
            .call(with_auth(Some("Bearer s3cret-s3cret-s3cret")))
            .is_ok());
        let wrong = secret
            .call(with_auth(Some("Bearer s3cret-s3cret-s3creT")))
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        let missing = secret.call(with_auth(None)).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    }
}

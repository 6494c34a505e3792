//! Edge authentication: every RPC carries the shared secret as `authorization: Bearer <secret>`;
//! a wrong or missing secret is refused before any handler runs.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

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

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The calling edge's id from the request metadata.
pub(crate) fn edge_id_of(metadata: &MetadataMap) -> Result<String, Status> {
    metadata
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

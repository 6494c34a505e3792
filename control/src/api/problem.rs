//! API errors as RFC 9457 `application/problem+json`, with `errors: [{field, message}]` naming
//! each offending field, so a client can show the problem next to the input that caused it. A
//! workflow's problems also name their node: `errors: [{node, field, message}]`.
//!
//! A store error becomes a problem here and only here: a storage fault ([`StorageFault`]) is 507
//! (the disk is full) or 503 (the database is unavailable), and the response carries the fault
//! as an extension for `health::watch_storage`, which marks the store unhealthy.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::grpc::RelayError;
use crate::store::{StorageFault, StoreError};
use freya_shared::model::FieldError;
use freya_shared::workflow::WorkflowError;

/// An error response.
#[derive(Debug)]
pub(crate) struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    /// A workflow's problems, node by node (answered as `errors` instead of `errors` above).
    pub node_errors: Vec<WorkflowError>,
    pub www_authenticate: bool,
    /// The storage fault behind this problem, put on the response for the layer that marks the
    /// store unhealthy (the database's own message is logged where the fault is met).
    pub storage_fault: Option<StorageFault>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(rename = "errors", skip_serializing_if = "<[_]>::is_empty")]
    node_errors: &'a [WorkflowError],
}

impl Problem {
    /// A problem with a status, a fixed title and a detail for this occurrence.
    pub(crate) fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: Some(detail.into()),
            errors: Vec::new(),
            node_errors: Vec::new(),
            www_authenticate: false,
            storage_fault: None,
        }
    }

    /// 422: the document parsed but some fields are wrong.
    pub(crate) fn invalid(errors: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "Invalid request body",
            detail: Some(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            errors,
            node_errors: Vec::new(),
            www_authenticate: false,
            storage_fault: None,
        }
    }

    /// 422: a workflow with these problems, every one at once, each naming its node and field.
    pub(crate) fn invalid_workflow(errors: Vec<WorkflowError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "Invalid workflow",
            detail: Some(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            errors: Vec::new(),
            node_errors: errors,
            www_authenticate: false,
            storage_fault: None,
        }
    }

    /// 404 for anything the caller may not see — another workspace's resources included, so
    /// existence does not leak.
    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "no such resource in this workspace",
        )
    }

    /// 401 with a `WWW-Authenticate` challenge.
    pub(crate) fn unauthorized(detail: &str) -> Self {
        Self {
            www_authenticate: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
        }
    }

    /// 507 or 503 for a storage fault: the change was not stored, and the client is told so.
    pub(crate) fn storage(fault: StorageFault) -> Self {
        let problem = match fault {
            StorageFault::InsufficientStorage => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "Insufficient storage",
                "the database could not store the change (its disk is full or failing); \
                 nothing was saved, try again later",
            ),
            StorageFault::Unavailable => {
                Self::unavailable("the database is unavailable; nothing was saved, try again")
            }
        };
        Self {
            storage_fault: Some(fault),
            ..problem
        }
    }

    /// 403: authenticated, but the role does not allow it.
    pub(crate) fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    /// 409: the request is understood, but the thing it acts on is not in a state to take it.
    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    /// 503: something the request needs (the database, an edge, a file) cannot serve it now;
    /// the client may try again.
    pub(crate) fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            detail,
        )
    }

    /// 500: a fault of the control plane itself, not of the request.
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", detail)
    }

    /// 429 with the given `title` and `detail`, answered with `Retry-After` in whole seconds
    /// ([`retry_seconds`] of `wait`, at least 1) so that every refusal tells a client the same
    /// way when to come back.
    pub(crate) fn too_many_requests(
        title: &'static str,
        detail: impl Into<String>,
        wait: Duration,
    ) -> Response {
        let mut response = Self::new(StatusCode::TOO_MANY_REQUESTS, title, detail).into_response();
        if let Ok(value) = HeaderValue::from_str(&retry_seconds(wait).max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// `wait` in whole seconds, rounded up: what a refusal tells a client to wait.
pub(crate) fn retry_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            errors: &self.errors,
            node_errors: if self.errors.is_empty() {
                &self.node_errors
            } else {
                &[]
            },
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"freya\""),
            );
        }
        if let Some(fault) = self.storage_fault {
            response.extensions_mut().insert(fault);
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Problem::not_found(),
            StoreError::Conflict(message) => Problem::conflict(message),
            StoreError::Forbidden(message) => Problem::forbidden(message),
            StoreError::InvalidReference { field, message } => {
                Problem::invalid(vec![FieldError::new(field, message)])
            }
            other => {
                if let Some(fault) = other.storage_fault() {
                    tracing::error!(error = %other, %fault, "storage fault behind an API request");
                    return Problem::storage(fault);
                }
                tracing::error!(error = %other, "store failure behind an API request");
                Problem::unavailable("the database is unavailable; try again")
            }
        }
    }
}

impl From<RelayError> for Problem {
    fn from(error: RelayError) -> Self {
        match error {
            RelayError::Store(e) => e.into(),
            unreachable @ (RelayError::Unreachable(_) | RelayError::Full { .. }) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                unreachable.to_string(),
            ),
        }
    }
}

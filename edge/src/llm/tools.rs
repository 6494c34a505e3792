//! Running a customer's tool: when the model calls one, the edge POSTs the arguments as JSON to
//! the tool's URL and gives the model the response. The request carries the call id and the same
//! signature as a webhook delivery (`freya_shared::signature`):
//! `Freya-Signature: t=<seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}" under the agent's tool
//! secret>`; [`verify_signature`] is the receiver's side, in Rust. A runner without a secret
//! sends nothing: a signature under an empty key is one anybody can forge. A failure is a typed
//! [`ToolError`] that the call task turns into a `tool.failed` event and a short apology. Only a
//! connection that could not be made is retried: a request that reached the tool may have acted
//! (booked, charged), so it is never sent twice.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::types::excerpt;
use crate::egress::{Egress, EgressError};
use freya_shared::error_chain::error_chain;

/// Header naming the call the tool runs for.
pub const CALL_ID_HEADER: &str = "X-Freya-Call-Id";
pub use freya_shared::signature::{
    sign, verify as verify_signature, SignatureError, SIGNATURE_HEADER, TOLERANCE,
};

/// Largest tool response accepted; the model could not use more in a phone call anyway.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How many times a connection that could not be made is tried again.
const CONNECT_RETRIES: u32 = 1;

/// One tool as the agent configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolEndpoint {
    /// The tool's name, for errors and events.
    pub name: String,
    /// Where to POST (`https://…`, or `http://…` for local endpoints).
    pub url: String,
    /// Budget for one attempt: connect, send, and read the whole response.
    pub timeout: Duration,
}

/// What the tool answered, for the model.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutput {
    /// A JSON response body.
    Json(Value),
    /// Any other response body, as text.
    Text(String),
}

impl ToolOutput {
    /// The result as the text of a tool-result message.
    pub fn to_model_content(&self) -> String {
        match self {
            ToolOutput::Json(value) => value.to_string(),
            ToolOutput::Text(text) => text.clone(),
        }
    }
}

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The configured URL is not an absolute http(s) URL.
    #[error("tool `{tool}` has an unusable url `{url}`: {reason}")]
    InvalidUrl {
        /// Tool name.
        tool: String,
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL leads to an address the egress guard refuses (loopback, private, ...).
    #[error("tool `{tool}` may not be called: {reason}")]
    Refused {
        /// Tool name.
        tool: String,
        /// The guard's reason.
        reason: String,
    },
    /// No answer within the tool's timeout.
    #[error("tool `{tool}` did not answer within {after:?}")]
    Timeout {
        /// Tool name.
        tool: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The request could not be sent.
    #[error("tool `{tool}` could not be reached: {reason}")]
    Connect {
        /// Tool name.
        tool: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The tool answered with a non-success status.
    #[error("tool `{tool}` answered HTTP {status}: {body}")]
    Status {
        /// Tool name.
        tool: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The agent has no tool secret, so the request could not be signed and was not sent.
    #[error("tool `{tool}` was not called: the agent has no `tool_secret` to sign it with")]
    Unsigned {
        /// Tool name.
        tool: String,
    },
    /// The response body could not be read or was too large.
    #[error("tool `{tool}` sent an unusable response: {reason}")]
    Response {
        /// Tool name.
        tool: String,
        /// What went wrong.
        reason: String,
    },
}

/// Runs tools for one agent: signs with its tool secret, over the edge's egress guard.
#[derive(Clone)]
pub struct ToolRunner {
    egress: Egress,
    secret: Vec<u8>,
}

impl std::fmt::Debug for ToolRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRunner").finish_non_exhaustive() // never print the secret
    }
}

impl ToolRunner {
    /// A runner signing with `secret`; with an empty one, every [`ToolRunner::run`] is refused
    /// as [`ToolError::Unsigned`] before anything is sent.
    pub fn new(egress: Egress, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            egress,
            secret: secret.into(),
        }
    }

    /// POSTs `arguments` to the tool for call `call_id` and returns its answer.
    pub async fn run(
        &self,
        tool: &ToolEndpoint,
        call_id: &str,
        arguments: &Value,
    ) -> Result<ToolOutput, ToolError> {
        if self.secret.is_empty() {
            return Err(ToolError::Unsigned {
                tool: tool.name.clone(),
            });
        }
        let url = self
            .egress
            .check_url(&tool.url)
            .map_err(|error| match error {
                EgressError::NonPublic { .. } => ToolError::Refused {
                    tool: tool.name.clone(),
                    reason: error.to_string(),
                },
                other => ToolError::InvalidUrl {
                    tool: tool.name.clone(),
                    url: tool.url.clone(),
                    reason: other.to_string(),
                },
            })?;
        let body = arguments.to_string().into_bytes();
        let mut attempt = 0;
        loop {
            let result =
                tokio::time::timeout(tool.timeout, self.attempt(tool, &url, call_id, &body))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Attempt::Failed(ToolError::Timeout {
                            tool: tool.name.clone(),
                            after: tool.timeout,
                        }))
                    });
            match result {
                Ok(output) => return Ok(output),
                Err(Attempt::NotConnected(reason)) if attempt < CONNECT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(tool = %tool.name, %reason, "tool unreachable, trying again");
                }
                Err(Attempt::NotConnected(reason)) => {
                    return Err(ToolError::Connect {
                        tool: tool.name.clone(),
                        reason,
                    })
                }
                Err(Attempt::Failed(error)) => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        tool: &ToolEndpoint,
        url: &reqwest::Url,
        call_id: &str,
        body: &[u8],
    ) -> Result<ToolOutput, Attempt> {
        let timestamp = freya_shared::signature::unix_seconds(SystemTime::now());
        let signature = sign(&self.secret, timestamp, body).map_err(|_| {
            Attempt::Failed(ToolError::Unsigned {
                tool: tool.name.clone(),
            })
        })?;
        let response = self
            .egress
            .client()
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(CALL_ID_HEADER, call_id)
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|error| {
                let reason = error_chain(&error);
                if error.is_connect() {
                    Attempt::NotConnected(reason)
                } else {
                    Attempt::Failed(ToolError::Connect {
                        tool: tool.name.clone(),
                        reason,
                    })
                }
            })?;
        let status = response.status();
        let bytes = read_capped(tool, response).await.map_err(Attempt::Failed)?;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(Attempt::Failed(ToolError::Status {
                tool: tool.name.clone(),
                status: status.as_u16(),
                body: excerpt(text.trim(), 300),
            }));
        }
        Ok(match serde_json::from_slice::<Value>(&bytes) {
            Ok(json) => ToolOutput::Json(json),
            Err(_) => ToolOutput::Text(text.trim().to_string()),
        })
    }
}

enum Attempt {
    /// The connection was never made, so the tool cannot have acted: safe to retry.
    NotConnected(String),
    Failed(ToolError),
}

async fn read_capped(
    tool: &ToolEndpoint,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, ToolError> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(ToolError::Response {
                        tool: tool.name.clone(),
                        reason: format!("larger than {MAX_RESPONSE_BYTES} bytes"),
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(bytes),
            Err(error) => {
                return Err(ToolError::Response {
                    tool: tool.name.clone(),
                    reason: error_chain(&error),
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;

//! `POST /v1/calls`: placing an outbound call through an online edge of the calling number's
//! home region, or else of its further regions (see `edge_choice`), through whichever
//! control-plane replica holds that edge's command stream (`grpc/relay.rs`); an edge that accepts the
//! call but cannot place it hands it back, and the control plane places it once more elsewhere
//! (`grpc/retry.rs`). Honours `Idempotency-Key`: the same key with the same body answers the
//! stored response again (marked `Idempotent-Replayed: true`); with another body, 422.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::calls::CallView;
use super::json::strict_from_value;
use super::problem::Problem;
use super::AppState;
use crate::grpc::RelayError;
use crate::store::{IdempotencyClaim, NewOutboundCall};
use freya_proto::v1::{edge_command::Command, EdgeCommand, PlaceCall};
use freya_shared::ids::{is_uuid, new_id};
use freya_shared::model::{FieldError, PhoneNumberSpec};

/// `POST /v1/calls`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct PlaceCallRequest {
    /// One of the workspace's numbers, as written on it (`+15551234567`).
    from: String,
    /// Whom to call (E.164).
    to: String,
    /// The agent that talks; the `from` number's agent when absent.
    #[serde(default)]
    agent_id: Option<String>,
}

fn request_hash(body: &serde_json::Value) -> String {
    // serde_json's maps are sorted, so equal documents serialize equally.
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

#[utoipa::path(
    post,
    path = "/v1/calls",
    tag = "calls",
    summary = "Place an outbound call (editor); honours Idempotency-Key",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the same request answer the first response again")),
    request_body = PlaceCallRequest,
    responses((status = 201, description = "Queued on an edge", body = CallView))
)]
pub(super) async fn place(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let document = super::json::parse_body(&headers, &body)?;
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::trim).map(str::to_owned))
        .transpose()
        .ok()
        .flatten()
        .filter(|k| (1..=255).contains(&k.len()));
    if headers.contains_key("idempotency-key") && key.is_none() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1-255 visible characters",
        ));
    }
    let Some(key) = key else {
        let request = strict_from_value(document)?;
        let (status, view) = place_call(&state, &caller, request).await?;
        return Ok((status, Json(view)).into_response());
    };
    match state
        .store
        .claim_idempotency_key(&caller.scope, &key, &request_hash(&document))
        .await?
    {
        IdempotencyClaim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        IdempotencyClaim::Mismatch => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request body",
            ))
        }
        IdempotencyClaim::InProgress => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "Request in progress",
                "a request with this Idempotency-Key is still running; retry later",
            ))
        }
        IdempotencyClaim::Claimed => {}
    }
    let outcome = match strict_from_value(document) {
        Ok(request) => place_call(&state, &caller, request).await,
        Err(problem) => Err(problem),
    };
    match outcome {
        Ok((status, view)) => {
            let text = serde_json::to_string(&view).unwrap_or_default();
            state
                .store
                .complete_idempotency_key(&caller.scope, &key, status.as_u16(), &text)
                .await?;
            Ok((
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                text,
            )
                .into_response())
        }
        Err(problem) => {
            // Nothing was done: let a corrected or later retry with the same key run.
            state
                .store
                .release_idempotency_key(&caller.scope, &key)
                .await?;
            Err(problem)
        }
    }
}

async fn place_call(
    state: &AppState,
    caller: &Caller,
    request: PlaceCallRequest,
) -> Result<(StatusCode, CallView), Problem> {
    let probe = PhoneNumberSpec {
        number: request.to.clone(),
        region: None,
        regions: Vec::new(),
        agent_id: Some(new_id()),
        workflow_id: None,
    };
    if !request.to.starts_with('+') || !probe.validate().is_empty() {
        return Err(Problem::invalid(vec![FieldError::new(
            "to",
            "must be an E.164 number (`+` followed by 2-15 digits)",
        )]));
    }
    // The number becomes the SIP From user of the call; nothing outside RFC 3261's user-part
    // grammar is ever sent (a number may hold `#`, which that grammar does not allow).
    if let Some(problem) = freya_shared::model::sip_user::sip_user_problem(&request.from) {
        return Err(Problem::invalid(vec![FieldError::new("from", problem)]));
    }
    let number = state
        .store
        .numbers(&caller.scope)
        .await?
        .into_iter()
        .find(|n| n.spec.number == request.from)
        .ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "from",
                format!("{} is not a number of this workspace", request.from),
            )])
        })?;
    let agent_id = match request.agent_id {
        Some(id) => {
            if !is_uuid(&id) || state.store.agent(&caller.scope, &id).await.is_err() {
                return Err(Problem::invalid(vec![FieldError::new(
                    "agent_id",
                    format!("no agent {id} in this workspace"),
                )]));
            }
            id
        }
        None => number.spec.agent_id.clone().ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "agent_id",
                format!(
                    "{} is answered by a workflow; name the agent that places this call",
                    request.from
                ),
            )])
        })?,
    };
    let reachable = number.spec.reachable_regions();
    let edges = super::edge_choice::edges_in_preference(
        state.store.edges(state.offline_after_ms).await?,
        &reachable,
    );
    let call_id = new_id();
    let mut recorded = false;
    for edge in edges {
        let call = NewOutboundCall {
            id: call_id.clone(),
            edge_id: edge.id.clone(),
            from_number: number.spec.number.clone(),
            to_number: request.to.clone(),
            agent_id: agent_id.clone(),
        };
        if recorded {
            state
                .store
                .move_call_to_edge(&caller.scope, &call_id, &edge.id)
                .await?;
        } else {
            state
                .store
                .create_outbound_call(&caller.scope, &caller.actor, &call)
                .await?;
            recorded = true;
        }
        let command = EdgeCommand {
            id: new_id(),
            command: Some(Command::PlaceCall(PlaceCall {
                call_id: call_id.clone(),
                workspace_id: caller.scope.workspace_id.clone(),
                from: call.from_number,
                to: call.to_number,
                agent_id: call.agent_id,
            })),
        };
        // The answer describes the call as it was handed over: read before sending, because
        // an edge may start (or fail) the call before this request returns.
        let handed_over = state.store.call(&caller.scope, &call_id).await?;
        // Through whichever replica holds the edge's command stream.
        match state.relay.place(&edge.id, &call_id, command).await {
            Ok(_) => return Ok((StatusCode::ACCEPTED, handed_over.into())),
            Err(RelayError::Store(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(edge = %edge.id, error = %e, "edge cannot take the call; trying another")
            }
        }
    }
    if recorded {
        state
            .store
            .fail_call(&caller.scope, &call_id, "no_edge_reachable")
            .await?;
    }
    let tried = if reachable.is_empty() {
        "any region".to_owned()
    } else {
        format!("regions {}", reachable.join(", "))
    };
    Err(Problem::unavailable(format!(
        "no online edge in {tried} is connected to the control plane; try again shortly"
    )))
}
